"""In-process ONNX Runtime vs a Triton policy server: latency (p50/p99) for 1, 2, 4, 8 concurrent
robots and requests/s with and without dynamic batching, in one run.

Each robot is a thread with its own policy (as each robot's node has one): in-process an
OnnxRuntimePolicy, remote a TritonPolicy (gRPC, reasoning decoded on the server). Every robot
runs the node's pattern: an action inference per step, a fresh reasoning trace every
--reasoning-every steps. The server is the tritonserver bundled in .venv-triton
(scripts/setup_triton_server.sh) with python stand-ins running ONNX Runtime on the CPU in place
of Triton's onnxruntime backend (the same I/O and batching), started twice: a repository with
max_batch_size 0 and one with dynamic batching. Robots and server share this machine's cores
(a real deployment puts the server on a GPU host), so the numbers show the protocol and batching
overheads, not a GPU server's speed. The average batch per stage comes from Triton's metrics
(nv_inference_count / nv_inference_exec_count).

Without --model a random-weight `small()` model is exported with the dynamic batch axis
(build/benchmarks/triton_model/). Prints a table and writes JSON (default
build/benchmarks/triton.json).

    .venv/bin/python benchmarks/bench_triton.py --quick
"""

from __future__ import annotations

import argparse
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from report_file import write_report

from moe_vla_ros.runtime.config import RuntimeConfig
from moe_vla_ros.runtime.onnx_policy import OnnxRuntimePolicy
from moe_vla_ros.runtime.sample_observations import random_observations
from moe_vla_ros.runtime.triton_policy import TritonConfig, TritonPolicy
from moe_vla_ros.serving.triton_repository import RepositoryConfig, build_repository, with_stand_in
from moe_vla_ros.serving.triton_server import TritonServer, read_metrics, server_venv_problem

STAGE_MODELS = ("vision", "trunk", "action_head", "reasoning")


def default_model(root: Path) -> Path:
    from moe_vla_ros.export.config import ExportConfig
    from moe_vla_ros.export.demo_checkpoint import export_demo_model

    cfg = ExportConfig(formulations=("dense",), policy_observations=2)
    return export_demo_model(root, "small", seed=0, cfg=cfg, tag="batch")[1]


def percentiles(samples: list[float]) -> dict:
    a = np.asarray(samples) * 1000.0
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "n": int(a.size)}


def run_clients(make_policy, clients: int, steps: int, reasoning_every: int, contract) -> dict:
    """`clients` robots in threads, each `steps` timed inferences after 2 warm-ups; latency + throughput."""
    policies = [make_policy() for _ in range(clients)]
    observations = [random_observations(contract, 4, seed=1000 + c) for c in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients + 1)

    def robot(c: int) -> None:
        policy, obs = policies[c], observations[c]
        try:
            for i in range(2):
                policy.infer(obs[i % len(obs)], generate_reasoning=True)
            barrier.wait()
            for i in range(steps):
                start = time.perf_counter()
                policy.infer(obs[i % len(obs)], generate_reasoning=(i % reasoning_every == 0))
                latencies[c].append(time.perf_counter() - start)
        except BaseException as e:
            errors.append(e)
            if barrier.n_waiting:
                barrier.abort()

    threads = [threading.Thread(target=robot, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    for p in policies:
        p.close()
    if errors:
        raise errors[0]
    flat = [x for lat in latencies for x in lat]
    return {**percentiles(flat), "requests_per_s": len(flat) / wall, "wall_s": wall}


def measure_server(repo: Path, model: Path, cfg: RuntimeConfig, counts: list[int], steps: int, reasoning_every: int,
                   contract, deadline_s: float) -> tuple[dict, float]:
    results = {}
    with TritonServer(repo) as server:
        triton = TritonConfig(url=server.grpc_url, deadline_s=deadline_s)
        for n in counts:
            before = read_metrics(server.metrics_url)
            r = run_clients(lambda: TritonPolicy.load(model, triton, cfg), n, steps, reasoning_every, contract)
            after = read_metrics(server.metrics_url)
            batch = {}
            for m in STAGE_MODELS:
                reqs = after.get(("nv_inference_count", m), 0) - before.get(("nv_inference_count", m), 0)
                execs = after.get(("nv_inference_exec_count", m), 0) - before.get(("nv_inference_exec_count", m), 0)
                batch[m] = reqs / execs if execs else float("nan")
            results[n] = {**r, "avg_batch": batch}
            print(f"  {repo.name} {n} robots: p50 {r['p50_ms']:.1f} ms, {r['requests_per_s']:.1f} req/s, "
                  f"avg batch trunk {batch['trunk']:.2f}", flush=True)
        startup = server.startup_s
    return results, startup


def table(report: dict) -> str:
    rows = [f"{'robots':>6} | {'in-process p50/p99 ms':>22} {'req/s':>7} | {'Triton no batching p50/p99':>27} {'req/s':>7} | "
            f"{'Triton dyn. batching p50/p99':>29} {'req/s':>7} {'batch':>6}"]
    rows.append("-" * len(rows[0]))
    for n in report["clients"]:
        a, b, c = (report[k][str(n)] for k in ("in_process", "triton_unbatched", "triton_batched"))
        rows.append(
            f"{n:>6} | {a['p50_ms']:>10.1f} / {a['p99_ms']:>9.1f} {a['requests_per_s']:>7.1f} | "
            f"{b['p50_ms']:>13.1f} / {b['p99_ms']:>11.1f} {b['requests_per_s']:>7.1f} | "
            f"{c['p50_ms']:>14.1f} / {c['p99_ms']:>12.1f} {c['requests_per_s']:>7.1f} {c['avg_batch']['trunk']:>6.2f}"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="exported model folder (default: a random small() model)")
    parser.add_argument("--clients", default="1,2,4,8", help="concurrent robots, comma-separated")
    parser.add_argument("--steps", type=int, default=40, help="timed inferences per robot")
    parser.add_argument("--reasoning-every", type=int, default=5, help="a fresh reasoning trace every N steps")
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--max-queue-delay-us", type=int, default=2000)
    parser.add_argument("--deadline-s", type=float, default=10.0, help="TritonPolicy deadline (generous: timing, not holds)")
    parser.add_argument("--quick", action="store_true", help="1,4 robots, 10 steps")
    parser.add_argument("--out", type=Path, default=REPO / "build/benchmarks/triton.json", help="JSON output path")
    args = parser.parse_args(argv)
    problem = server_venv_problem()
    if problem:
        print(f"bench_triton: error: {problem}", file=sys.stderr)
        return 1
    counts = [1, 4] if args.quick else [int(x) for x in args.clients.split(",")]
    steps = 10 if args.quick else args.steps
    work = REPO / "build/benchmarks"
    model = args.model or default_model(work / "triton_model")
    cfg = RuntimeConfig(providers=("CPUExecutionProvider",), formulation="dense", report_placement=False)
    probe = OnnxRuntimePolicy.load(model, cfg)
    contract = probe.contract
    probe.close()
    report: dict = {"model": str(model), "clients": counts, "steps": steps, "reasoning_every": args.reasoning_every,
                    "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()}}
    print(f"in-process ({model.name})", flush=True)
    report["in_process"] = {}
    for n in counts:
        report["in_process"][str(n)] = r = run_clients(lambda: OnnxRuntimePolicy.load(model, cfg), n, steps,
                                                       args.reasoning_every, contract)
        print(f"  {n} robots: p50 {r['p50_ms']:.1f} ms, {r['requests_per_s']:.1f} req/s", flush=True)
    repos = {}
    for name, batch in (("triton_unbatched", 0), ("triton_batched", args.max_batch_size)):
        repo = work / f"triton_repo_{name}"
        rc = with_stand_in(RepositoryConfig(max_batch_size=batch, max_queue_delay_us=args.max_queue_delay_us))
        built = build_repository(model, repo, rc, force=True)
        repos[name] = {"max_batch_size": built.max_batch_size, "batching_reason": built.batching_reason}
        results, startup = measure_server(repo, model, cfg, counts, steps, args.reasoning_every, contract, args.deadline_s)
        report[name] = {str(n): r for n, r in results.items()}
        repos[name]["server_ready_s"] = startup
    report["repositories"] = repos
    print()
    print(table(report))
    for name, r in repos.items():
        why = f" ({r['batching_reason']})" if r["batching_reason"] else ""
        print(f"{name}: max_batch_size {r['max_batch_size']}{why}; server ready in {r['server_ready_s']:.1f} s")
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
