"""Whole-policy and per-stage latency: ONNX Runtime CPU (sparse/dense expert graphs, fp32/int8) vs
PyTorch eager, in one run, plus the peak RSS of an ONNX-Runtime-only process vs a torch process.

Every configuration runs in its own fresh subprocess (one policy per process, as on the robot),
in interleaved rounds so that load changes on a shared machine hit every configuration alike.
The parent samples each child's RSS with psutil; children report per-stage wall times. Two
modes per configuration:

* fresh reasoning: every inference generates a reasoning trace (the worst case);
* cached reasoning: the trace of the same instruction is reused (the steady state when the
  reasoning rate is below the action rate).

Without --model a random-weight model of the `small()` preset is built and exported once
(build/benchmarks/demo_small/; its reasoning never emits EOS, so every trace takes the maximum
R - 1 decoder steps). Both backends get the same intra-op thread budget (default 1: on a
shared 2-core machine torch's OpenMP threads stall badly when another process holds a core);
--threads takes a list (e.g. 1,2) and measures every setting. Prints a table and writes JSON
(default build/benchmarks/policy.json).

    .venv/bin/python benchmarks/bench_policy.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from report_file import write_report

STAGES = ("preprocess", "vision", "trunk", "reasoning", "action_head", "postprocess", "total")
CONFIGS = {  # name -> (backend, formulation, precision)
    "torch_eager": ("torch", "sparse", "fp32"),
    "ort_sparse_fp32": ("onnxruntime", "sparse", "fp32"),
    "ort_dense_fp32": ("onnxruntime", "dense", "fp32"),
    "ort_sparse_int8": ("onnxruntime", "sparse", "int8"),
    "ort_dense_int8": ("onnxruntime", "dense", "int8"),
}
MODES = ("fresh_reasoning", "cached_reasoning")


# --------------------------------------------------------------------------------- child process
def run_child(spec: dict) -> dict:
    """Load one policy, time `spec["iterations"]` inferences per mode; stdout: one JSON line."""
    import resource

    from moe_vla_ros.runtime.config import RuntimeConfig
    from moe_vla_ros.runtime.loader import load_policy
    from moe_vla_ros.runtime.sample_observations import INSTRUCTIONS, random_observation

    backend, formulation, precision = CONFIGS[spec["config"]]
    cfg = RuntimeConfig(backend=backend, providers=("CPUExecutionProvider",), formulation=formulation,
                        precision=precision, intra_op_threads=spec["threads"])
    start = time.perf_counter()
    policy = load_policy(spec["model"], cfg)
    load_s = time.perf_counter() - start
    observations = [random_observation(policy.contract, seed=i, instruction=INSTRUCTIONS[0]) for i in range(4)]
    result = {"load_s": load_s, "modes": {}, "metadata": policy.metadata.__dict__}
    for mode in MODES:
        fresh = mode == "fresh_reasoning"
        policy.reset()
        for i in range(spec["warmup"]):
            policy.infer(observations[i % 4], generate_reasoning=fresh)
        samples = {stage: [] for stage in STAGES}
        tokens = []
        for i in range(spec["iterations"]):
            out = policy.infer(observations[i % 4], generate_reasoning=fresh)
            for stage in STAGES[:-1]:
                samples[stage].append(out.stage_latency_s.get(stage, 0.0) * 1e3)
            samples["total"].append(out.latency_s * 1e3)
            tokens.append(out.reasoning.num_tokens if out.reasoning else 0)
        result["modes"][mode] = {"ms": samples, "reasoning_tokens": statistics.median(tokens)}
    result["torch_imported"] = "torch" in sys.modules
    result["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def launch(spec: dict) -> dict:
    """Run a child for `spec`, sampling its RSS with psutil every 5 ms; returns the child's result."""
    import psutil

    cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.005)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{spec['config']} failed:\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mb"] = peak / 2**20
    return result


# --------------------------------------------------------------------------------- parent
def default_model(root: Path) -> Path:
    """The random `small()` model, exported with int8 variants (gates report only: random weights)."""
    from moe_vla_ros.export.config import ExportConfig, QuantizationGate
    from moe_vla_ros.export.demo_checkpoint import export_demo_model

    report_only = QuantizationGate(max_action_error=1e9, min_router_agreement=0.0)
    cfg = ExportConfig(int8=True, int8_gate=report_only, policy_observations=2, gate_observations=4)
    return export_demo_model(root, "small", seed=0, cfg=cfg)[1]


def summarise(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"median": statistics.median(ordered), "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]}


def available_configs(model: Path) -> list[str]:
    from moe_vla_ros.runtime.manifest import read_manifest

    manifest = read_manifest(model, verify_checksums=False)
    served = set(manifest.available_variants())
    return [n for n, (b, f, p) in CONFIGS.items() if (manifest.checkpoint_dir if b == "torch" else (f, p) in served)]


def table(results: dict, threads: int) -> str:
    lines = []
    for mode in MODES:
        torch_total = results.get("torch_eager", {}).get(mode, {}).get("total", {}).get("median")
        lines.append(f"\n{mode} ({threads} thread(s)), median ms [p90 whole]")
        header = f"{'config':18s}" + "".join(f"{s:>12s}" for s in STAGES[1:5]) + f"{'whole':>9s}{'p90':>8s}{'ORT/torch':>11s}"
        lines.append(header)
        for name, by_mode in results.items():
            stats = by_mode[mode]
            cells = "".join(f"{stats[s]['median']:12.2f}" for s in STAGES[1:5])
            ratio = stats["total"]["median"] / torch_total if torch_total and name != "torch_eager" else float("nan")
            lines.append(f"{name:18s}{cells}{stats['total']['median']:9.2f}{stats['total']['p90']:8.2f}{ratio:11.2f}")
    return "\n".join(lines)


def measure(model: Path, configs: list[str], threads: int, rounds: int, iterations: int) -> dict:
    """Latency summaries, ORT/torch ratios and memory of every config at one thread budget."""
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    for r in range(rounds):
        for name in configs if r % 2 == 0 else configs[::-1]:
            spec = {"config": name, "model": str(model), "threads": threads, "warmup": 3, "iterations": iterations}
            runs[name].append(launch(spec))
            total = statistics.median(runs[name][-1]["modes"]["fresh_reasoning"]["ms"]["total"])
            print(f"threads {threads} round {r + 1}/{rounds} {name}: {total:.1f} ms", file=sys.stderr)
    latency = {
        name: {mode: {s: summarise([v for run in rs for v in run["modes"][mode]["ms"][s]]) for s in STAGES}
               for mode in MODES}
        for name, rs in runs.items()
    }
    ratios = {
        name: {mode: {s: latency[name][mode][s]["median"] / max(latency["torch_eager"][mode][s]["median"], 1e-9)
                      for s in STAGES} for mode in MODES}
        for name in latency if name != "torch_eager" and "torch_eager" in latency
    }
    memory = {name: {"peak_rss_mb": max(r["peak_rss_mb"] for r in rs), "torch_imported": rs[0]["torch_imported"],
                     "ru_maxrss_mb": max(r["ru_maxrss_mb"] for r in rs)} for name, rs in runs.items()}
    return {
        "latency_ms": latency, "ratio_vs_torch": ratios, "memory": memory,
        "reasoning_tokens": {n: rs[0]["modes"]["fresh_reasoning"]["reasoning_tokens"] for n, rs in runs.items()},
        "metadata": {n: rs[0]["metadata"] for n, rs in runs.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of few iterations (a smoke run, noisier)")
    parser.add_argument("--out", type=Path, default=Path("build/benchmarks/policy.json"), help="JSON output path")
    parser.add_argument("--model", type=Path, default=None, help="exported model folder (default: random small())")
    parser.add_argument("--threads", default="1", help="comma-separated intra-op thread budgets, both backends")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 1 quick / 3 full)")
    parser.add_argument("--iterations", type=int, default=None, help="timed inferences per round and mode")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(json.loads(args.child))))
        return 0

    model = args.model or default_model(Path("build/benchmarks/demo_small"))
    rounds = args.rounds or (1 if args.quick else 3)
    iterations = args.iterations or (10 if args.quick else 30)
    configs = available_configs(model)
    budgets = [int(t) for t in args.threads.split(",")]
    load_before = os.getloadavg()
    by_threads = {t: measure(model, configs, t, rounds, iterations) for t in budgets}
    for t, result in by_threads.items():
        print(table(result["latency_ms"], t))
        print("peak RSS (psutil, MB): " + ", ".join(
            f"{n} {m['peak_rss_mb']:.0f}{' (imports torch)' if m['torch_imported'] else ''}"
            for n, m in result["memory"].items()))
    report = {
        "model": str(model), "rounds": rounds, "iterations_per_round": iterations,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg_before": load_before,
                    "load_avg_after": os.getloadavg()},
        "by_threads": {str(t): r for t, r in by_threads.items()},
    }
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
