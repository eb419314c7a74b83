"""Do the experts earn their place? One controlled comparison of three arms, same data, steps and seed:

  (a) moe           the MoE recipe: dense warm-up -> upcycle -> MoE tuning (`moe_vla_train`),
  (b) dense_active  a dense model whose FFN at every MoE layer has the MoE's ACTIVE expert width
                    (top_k + shared experts): equal active parameters, equal FFN compute per token,
  (c) dense_total   the same with ALL experts' width (num_experts + shared): equal total parameters;
                    (b) and (c) train in one dense stage of dense_steps + moe_steps steps
                    (`moe_vla_train --dense-baseline`, model/baselines.py).

    python -m moe_vla_ros.evaluation.compare_experts -o build/moe_vs_dense [--dense-steps N --moe-steps M ...]

Steps (each skipped when its output exists, so an interrupted run continues; a training folder is
reused only when its train_config.json has this run's settings, and an interrupted training goes on
from its last resumable state, saved every SAVE_EVERY steps):
  1. scripted-expert demonstrations (`moe_vla_generate_demos`),
  2. the three trainings, one after the other (`moe_vla_train`, same dataset, split, seed, steps),
  3. export (`moe_vla_export`, fp32 sparse graphs, no checkpoint copy), the three at once,
  4. closed-loop evaluation through the policy node (`moe_vla_eval_sim`) on every held-out seed
     block, block by block with the arms in turn (load drifts hit every arm alike),
  5. ONNX Runtime latency of the three model folders in this process, interleaved rounds
     (1 intra-op thread, CPU provider, fixed observations, cached and fresh reasoning),
  6. report: report.json, report.md (tables) and plots (success with 95 % Wilson intervals, per task,
     latency per stage, expert usage of the MoE arm in closed loop).
Logs of every step go to <out>/logs/.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moe_vla_ros.cli import DefaultsHelpFormatter, add_output_argument, add_progress_argument, bad_input, run_tool, tool_parser
from moe_vla_ros.data.dataset import DemoDataset
from moe_vla_ros.errors import BadInputError, FailedError
from moe_vla_ros.validation import require_int, require_number

PROG = "python -m moe_vla_ros.evaluation.compare_experts"  # a module, not an installed script
ARMS = ("moe", "dense_active", "dense_total")
DENSE_BASELINE = {"moe": None, "dense_active": "active", "dense_total": "total"}
LABELS = {"moe": "(a) MoE recipe", "dense_active": "(b) dense, equal active", "dense_total": "(c) dense, equal total"}
# The bundled recipe's model (scripts/build_default_model.sh): frozen ImageNet EfficientNet-Lite0,
# the target probe feeding the trunk.
BUNDLED_OVERRIDES = {"vision": {"backbone": "efficientnet_lite0", "freeze_backbone": True}, "trunk": {"target_input": True}}
STAGES = ("vision", "trunk", "reasoning", "action_head", "total")
SAVE_EVERY = 250  # training steps between resumable states (moe_vla_train --save-every)
Z95 = 1.959963984540054


@dataclass
class CompareConfig:
    """Settings of one comparison (every arm gets the same).

    Data: demos scripted-expert episodes of `tasks` from seed demo_seed, images image_size^2.
    Training (moe_vla_train): preset + model_overrides, seed, dense_steps + moe_steps (the dense
        arms train all of them densely), batch_size, eval_every, image_shift, start_oversampling,
        start_steps, num_threads (torch threads).
    Evaluation: `episodes` per held-out seed block and arm, blocks starting at `seed_blocks`
        (scene seeds; training scenes come from demo_seed), max_duration per episode (None: the
        task's), latency_rounds x latency_iterations timed inferences per arm and mode.
    Runtime: parallel_trainings trainings run at once (on a shared machine several niced
        processes get more of it; results are the same).
    arms: the arms to run, from ARMS; "moe" (the reference of every ratio and test) must be one.
        A run of some arms reuses, and a later run adds to, the steps already done in `out`.
    """

    demos: int = 400
    demo_seed: int = 7
    tasks: tuple[str, ...] = ("reach",)
    image_size: int = 96
    preset: str = "small"
    model_overrides: dict[str, Any] = field(default_factory=lambda: json.loads(json.dumps(BUNDLED_OVERRIDES)))
    seed: int = 0
    dense_steps: int = 750
    moe_steps: int = 250
    batch_size: int = 32
    eval_every: int = 250
    image_shift: int = 0
    start_oversampling: float = 4.0
    start_steps: int = 3
    num_threads: int = 1
    episodes: int = 40
    seed_blocks: tuple[int, ...] = (10000, 20000)
    max_duration: float | None = None
    latency_rounds: int = 3
    latency_iterations: int = 20
    parallel_trainings: int = 1
    arms: tuple[str, ...] = ARMS

    def __post_init__(self) -> None:
        arms = (self.arms,) if isinstance(self.arms, str) else tuple(self.arms)
        if "moe" not in arms or any(a not in ARMS for a in arms) or len(set(arms)) != len(arms):
            raise BadInputError(f"arms must be distinct names from {list(ARMS)} including 'moe', got {list(arms)}")
        self.arms = tuple(a for a in ARMS if a in arms)  # the reference first
        for name in ("demos", "dense_steps", "batch_size", "eval_every", "start_steps", "num_threads", "episodes",
                     "latency_rounds", "latency_iterations", "image_size", "parallel_trainings"):
            require_int(name, getattr(self, name), 1)
        for name in ("demo_seed", "seed", "moe_steps", "image_shift"):
            require_int(name, getattr(self, name), 0)
        require_number("start_oversampling", self.start_oversampling, 1)
        if self.max_duration is not None:
            require_number("max_duration", self.max_duration, 0, low_open=True)
        if not self.tasks or not self.seed_blocks:
            raise BadInputError(f"tasks and seed_blocks must not be empty, got {self.tasks} / {self.seed_blocks}")
        blocks = sorted(self.seed_blocks)
        if any(require_int("seed block", s, 0) + self.episodes > t for s, t in zip(blocks, blocks[1:])):
            raise BadInputError(f"seed blocks {list(self.seed_blocks)} of {self.episodes} episodes overlap")

    def train_settings(self, arm: str) -> dict[str, Any]:
        """The TrainConfig fields this comparison sets for `arm` (checked against train_config.json)."""
        return {
            "preset": self.preset, "model_overrides": self.model_overrides, "dense_baseline": DENSE_BASELINE[arm],
            "seed": self.seed, "dense_steps": self.dense_steps, "moe_steps": self.moe_steps,
            "batch_size": self.batch_size, "eval_every": self.eval_every, "image_shift_pixels": self.image_shift,
            "start_oversampling": float(self.start_oversampling), "start_steps": self.start_steps,
            "num_threads": self.num_threads,
        }

    def train_args(self, arm: str, feature_cache: Path) -> list[str]:
        """moe_vla_train's arguments for `arm`; the arms share the frozen backbone's features in `feature_cache`."""
        args = ["--preset", self.preset, "--config", json.dumps(self.model_overrides), "--seed", str(self.seed),
                "--dense-steps", str(self.dense_steps), "--moe-steps", str(self.moe_steps),
                "--batch-size", str(self.batch_size), "--eval-every", str(self.eval_every),
                "--image-shift", str(self.image_shift), "--start-oversampling", str(self.start_oversampling),
                "--start-steps", str(self.start_steps), "--num-threads", str(self.num_threads), "--no-progress",
                "--save-every", str(SAVE_EVERY), "--resume", "--feature-cache", str(feature_cache)]
        if DENSE_BASELINE[arm]:
            args += ["--dense-baseline", DENSE_BASELINE[arm]]
        return args


# --------------------------------------------------------------------------------- statistics
def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a success rate (95 % by default); (0, 1) without trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def fisher_exact(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided Fisher exact test of k1/n1 vs k2/n2: the probability, given the margins, of a
    table at most as likely as the observed one."""
    total, succ = n1 + n2, k1 + k2

    def pmf(k: int) -> float:
        return math.comb(succ, k) * math.comb(total - succ, n1 - k) / math.comb(total, n1)

    observed = pmf(k1)
    low, high = max(0, succ - n2), min(succ, n1)
    return min(1.0, sum(p for p in (pmf(k) for k in range(low, high + 1)) if p <= observed * (1 + 1e-7)))


def load_summary(load: Sequence[float]) -> dict[str, float]:
    """Expert load of one layer: normalised entropy (1 = uniform), largest and smallest share."""
    v = np.asarray(load, dtype=np.float64)
    v = v / v.sum() if v.sum() > 0 else v
    nz = v[v > 0]
    entropy = max(0.0, float(-(nz * np.log(nz)).sum() / math.log(len(v)))) if len(v) > 1 else 1.0
    return {"normalised_entropy": entropy, "max_share": float(v.max()), "min_share": float(v.min())}


# --------------------------------------------------------------------------------- steps
class Runner:
    """Runs the steps of one comparison in `out`, logging each tool to out/logs/<name>.log."""

    def __init__(self, out: Path, cfg: CompareConfig, progress: bool) -> None:
        self.out, self.cfg, self.progress = out, cfg, progress
        (out / "logs").mkdir(parents=True, exist_ok=True)
        self.times: dict[str, float] = {}

    def say(self, text: str) -> None:
        if self.progress:
            print(f"[compare] {time.strftime('%H:%M:%S', time.gmtime())} {text}", flush=True)

    def tool(self, name: str, log: str, *args: str) -> None:
        """Run console script `name` of this interpreter's environment; FailedError on failure."""
        self.tools([(name, log, args)])

    def tools(self, jobs: Sequence[tuple[str, str, Sequence[str]]]) -> None:
        """Run console scripts (name, log, args) at the same time, each logging to logs/<log>.log;
        FailedError naming the first that failed once all have ended."""
        running = []
        start = time.perf_counter()
        for name, log, args in jobs:
            exe = Path(sys.executable).with_name(name)
            command = [str(exe) if exe.is_file() else name, *args]
            f = open(self.out / "logs" / f"{log}.log", "w")
            f.write(" ".join(command) + "\n")
            f.flush()
            running.append((name, log, f, subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT)))
        failed = []
        try:
            for name, log, f, proc in running:
                code = proc.wait()
                f.close()
                self.times[log] = time.perf_counter() - start
                if code != 0:
                    tail = (self.out / "logs" / f"{log}.log").read_text().strip().splitlines()[-3:]
                    failed.append(f"{name} failed (exit {code}, log {self.out / 'logs' / log}.log): " + " | ".join(tail))
        finally:
            for _, _, f, proc in running:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait()
                f.close()
        if failed:
            raise FailedError(failed[0])

    @property
    def demos(self) -> Path:
        return self.out / "demos"

    @property
    def feature_cache(self) -> Path:
        return self.out / "backbone_features"

    def arm(self, arm: str) -> Path:
        return self.out / arm

    def make_demos(self) -> None:
        if (self.demos / "meta.json").is_file():
            if DemoDataset(self.demos).complete:
                self.say(f"demonstrations: reusing {self.demos}")
                return
            self.say(f"demonstrations: {self.demos} was cut short: generating them again")
        shutil.rmtree(self.demos, ignore_errors=True)
        c = self.cfg
        self.say(f"demonstrations: {c.demos} episodes of {','.join(c.tasks)}, seed {c.demo_seed}")
        self.tool("moe_vla_generate_demos", "demos", "--out", str(self.demos), "--episodes", str(c.demos),
                  "--seed", str(c.demo_seed), "--tasks", ",".join(c.tasks), "--image-size", str(c.image_size),
                  "--no-progress")

    def train(self, arms: Sequence[str]) -> None:
        """Train the arms without a checkpoint yet, `cfg.parallel_trainings` at a time (each one
        torch process with `num_threads` threads; the results do not depend on it)."""
        todo = []
        for arm in arms:
            ckpt = self.arm(arm) / "checkpoint"
            if (ckpt / "model.safetensors").is_file():
                have = json.loads((ckpt / "train_config.json").read_text())
                want = self.cfg.train_settings(arm)
                differ = {k: (have.get(k), v) for k, v in want.items() if have.get(k) != v}
                if differ:
                    raise BadInputError(f"{ckpt} was trained with other settings {differ} (have, want): "
                                        f"remove it or choose another --out")
                self.say(f"{arm}: reusing the trained checkpoint {ckpt}")
                continue
            todo.append((arm, ckpt))  # an interrupted training resumes from its last saved state
        steps = self.cfg.dense_steps + self.cfg.moe_steps
        width = self.cfg.parallel_trainings
        for i in range(0, len(todo), width):
            group = todo[i : i + width]
            self.say(f"training {steps} steps: " + ", ".join(f"{arm} ({LABELS[arm]})" for arm, _ in group))
            self.tools([("moe_vla_train", f"train_{arm}", ["--dataset", str(self.demos), "--out", str(ckpt),
                                                           *self.cfg.train_args(arm, self.feature_cache)])
                        for arm, ckpt in group])

    def export(self, arms: Sequence[str]) -> dict[str, Path]:
        """Export the arms without a model folder yet, all at once; returns every arm's folder."""
        models = {arm: self.arm(arm) / "model" for arm in arms}
        todo = [arm for arm in arms if not (models[arm] / "manifest.json").is_file()]
        if todo:
            self.say(f"export: {', '.join(todo)}")
            self.tools([("moe_vla_export", f"export_{arm}",
                         ["--checkpoint", str(self.arm(arm) / "checkpoint"), "--out", str(models[arm]), "--name", arm,
                          "--formulations", "sparse", "--no-checkpoint", "--force"]) for arm in todo])
        return models

    def evaluate(self, arm: str, seed_start: int) -> dict[str, Any]:
        folder = self.arm(arm) / f"eval_{seed_start}"
        if not (folder / "report.json").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            c = self.cfg
            self.say(f"{arm}: closed loop, {c.episodes} episodes from seed {seed_start}")
            extra = ["--max-duration", str(c.max_duration)] if c.max_duration is not None else []
            self.tool("moe_vla_eval_sim", f"eval_{arm}_{seed_start}", "--model", str(self.arm(arm) / "model"),
                      "--episodes", str(c.episodes), "--tasks", ",".join(c.tasks), "--seed-start", str(seed_start),
                      "--no-expert", "--no-gif", "--out", str(folder), "--no-progress", *extra)
        return json.loads((folder / "report.json").read_text())


def measure_latency(models: Mapping[str, Path], instruction: str, rounds: int, iterations: int,
                    threads: int = 1) -> dict[str, Any]:
    """Per-stage ONNX Runtime latency [ms] of each model folder (CPU provider, `threads` intra-op
    threads, sparse fp32 graphs), the arms interleaved round by round; median and p90 over every
    timed inference. Modes: "cached" (the reasoning of the same instruction reused: the steady
    state) and "fresh" (a reasoning trace generated every time)."""
    from moe_vla_ros.runtime.config import RuntimeConfig
    from moe_vla_ros.runtime.loader import load_policy
    from moe_vla_ros.runtime.sample_observations import random_observation

    cfg = RuntimeConfig(backend="onnxruntime", providers=("CPUExecutionProvider",), formulation="sparse",
                        precision="fp32", intra_op_threads=threads, report_placement=False)
    policies = {arm: load_policy(path, cfg) for arm, path in models.items()}
    samples = {arm: {mode: {s: [] for s in STAGES} for mode in ("cached", "fresh")} for arm in models}
    for arm, policy in policies.items():
        observations = [random_observation(policy.contract, seed=i, instruction=instruction) for i in range(4)]
        for i in range(3):  # warm-up
            policy.infer(observations[i % 4], generate_reasoning=True)
        policies[arm] = (policy, observations)
    order = list(models)
    for r in range(rounds):
        for arm in order if r % 2 == 0 else order[::-1]:
            policy, observations = policies[arm]
            for mode in ("cached", "fresh"):
                for i in range(iterations):
                    out = policy.infer(observations[i % 4], generate_reasoning=mode == "fresh")
                    for stage in STAGES[:-1]:
                        samples[arm][mode][stage].append(out.stage_latency_s.get(stage, 0.0) * 1e3)
                    samples[arm][mode]["total"].append(out.latency_s * 1e3)
    for policy, _ in policies.values():
        close = getattr(policy, "close", None)
        if close:
            close()

    def summary(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {"p50": statistics.median(ordered), "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]}

    return {arm: {mode: {s: summary(v) for s, v in stages.items()} for mode, stages in modes.items()}
            for arm, modes in samples.items()}


# --------------------------------------------------------------------------------- report
def _success(report: Mapping[str, Any], task: str = "overall") -> tuple[int, int]:
    counts = report["success"]["policy"].get(task, {})
    return int(counts.get("successes", 0)), int(counts.get("episodes", 0))


def _rate(k: int, n: int) -> dict[str, Any]:
    return {"successes": k, "episodes": n, "rate": k / n if n else 0.0, "wilson95": list(wilson_interval(k, n))}


def _mean_usage(reports: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Mean expert load per MoE layer over the evaluation reports (every task, episode-weighted)."""
    sums: dict[str, np.ndarray] = {}
    weights: dict[str, float] = {}
    for report in reports:
        episodes = report["success"]["policy"]
        for task, layers in report.get("expert_usage", {}).get("per_task", {}).items():
            w = float(episodes.get(task, {}).get("episodes", 1))
            for layer, load in layers.items():
                sums[layer] = sums.get(layer, 0) + w * np.asarray(load, dtype=np.float64)
                weights[layer] = weights.get(layer, 0.0) + w
    return {layer: (s / weights[layer]).tolist() for layer, s in sums.items()}


def build_report(cfg: CompareConfig, arms: Mapping[str, Mapping[str, Any]], latency: Mapping[str, Any],
                 times: Mapping[str, float]) -> dict[str, Any]:
    """report.json's content from each arm's parts: "checkpoint_meta" (config.json metadata),
    "evals" {seed_start: eval report}, and the latency measurement."""
    out: dict[str, Any] = {"config": asdict(cfg), "arms": {}, "wall_time_s": dict(times)}
    base = None
    for arm, parts in arms.items():
        training = parts["checkpoint_meta"].get("training", {})
        blocks = {str(seed): _rate(*_success(report)) for seed, report in parts["evals"].items()}
        k = sum(b["successes"] for b in blocks.values())
        n = sum(b["episodes"] for b in blocks.values())
        per_task = {}
        for task in cfg.tasks:
            counts = [_success(report, task) for report in parts["evals"].values()]
            per_task[task] = _rate(sum(c[0] for c in counts), sum(c[1] for c in counts))
        usage = _mean_usage(list(parts["evals"].values()))
        node_inference = [r["latency"]["inference"].get("p50_ms") for r in parts["evals"].values()]
        entry = {
            "label": LABELS[arm],
            "parameters": training.get("parameters", {}),
            "success": {"blocks": blocks, **_rate(k, n), "per_task": per_task},
            "latency_ms": latency.get(arm, {}),
            "node_inference_p50_ms": [v for v in node_inference if v is not None and math.isfinite(v)],
            "expert_usage": {"per_layer": usage, "summary": {layer: load_summary(v) for layer, v in usage.items()}},
            "training": {key: training.get("final_eval", {}).get(key) for key in
                         ("action_l1_rad", "action_l1_rad_episode_start", "target_error_cm",
                          "target_error_cm_episode_start", "reasoning_accuracy")}
                        | {"final_train_loss": training.get("final_train_loss"), "steps": training.get("steps")},
        }
        if base is None:
            base = entry
        else:
            bs = base["success"]
            entry["vs_moe"] = {
                "success_difference": entry["success"]["rate"] - bs["rate"],
                "fisher_exact_p": fisher_exact(bs["successes"], bs["episodes"], k, n),
                "per_task_fisher_exact_p": {
                    task: fisher_exact(bs["per_task"][task]["successes"], bs["per_task"][task]["episodes"],
                                       t["successes"], t["episodes"]) for task, t in per_task.items()},
                "latency_ratio": {mode: {s: entry["latency_ms"][mode][s]["p50"] / base["latency_ms"][mode][s]["p50"]
                                         for s in STAGES if base["latency_ms"].get(mode, {}).get(s, {}).get("p50")}
                                  for mode in entry["latency_ms"] if mode in base["latency_ms"]},
                "parameter_ratio": {kind: entry["parameters"][kind] / base["parameters"][kind]
                                    for kind in ("total", "active")
                                    if base["parameters"].get(kind) and entry["parameters"].get(kind)},
            }
        out["arms"][arm] = entry
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f} %"


def _successes_cell(c: Mapping[str, Any]) -> str:
    """"k/n (rate, low-high)" of a `_rate` entry."""
    return f"{c['successes']}/{c['episodes']} ({_pct(c['rate'])}, {_pct(c['wilson95'][0])}-{_pct(c['wilson95'][1])})"


def markdown(report: Mapping[str, Any]) -> str:
    """The comparison as a markdown table (what the model README quotes)."""
    cfg = report["config"]
    blocks = [str(s) for s in cfg["seed_blocks"]]
    head = ["arm", "params total / active [M]"] + [f"success, seeds {b}+" for b in blocks] + [
        "success (all, 95 % Wilson)", "Fisher p vs (a)", "ORT p50 cached [ms] (trunk / head)", "ratio vs (a)",
        "node inference p50 [ms]", "L1 start [rad]", "probe start [cm]"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for entry in report["arms"].values():
        p = entry["parameters"]
        s = entry["success"]
        lat = entry["latency_ms"].get("cached", {})
        vs = entry.get("vs_moe", {})
        ratio = vs.get("latency_ratio", {}).get("cached", {}).get("total")
        node = entry["node_inference_p50_ms"]
        train = entry["training"]
        cells = [
            entry["label"],
            f"{p.get('total', 0) / 1e6:.3f} / {p.get('active', 0) / 1e6:.3f}",
            *[f"{s['blocks'][b]['successes']}/{s['blocks'][b]['episodes']}" if b in s["blocks"] else "-" for b in blocks],
            _successes_cell(s),
            f"{vs['fisher_exact_p']:.2f}" if "fisher_exact_p" in vs else "-",
            (f"{lat['total']['p50']:.1f} ({lat['trunk']['p50']:.1f} / {lat['action_head']['p50']:.1f})" if lat else "-"),
            f"{ratio:.2f}" if ratio else "1.00" if lat and not vs else "-",
            f"{statistics.median(node):.1f}" if node else "-",
            f"{train['action_l1_rad_episode_start']:.3f}" if train.get("action_l1_rad_episode_start") is not None else "-",
            f"{train['target_error_cm_episode_start']:.1f}" if train.get("target_error_cm_episode_start") is not None else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    tasks = list(cfg["tasks"])
    if len(tasks) > 1:
        lines += ["", "Success per task over every seed block (95 % Wilson; Fisher p vs (a)):", ""]
        lines += ["| arm | " + " | ".join(tasks) + " |", "|" + "---|" * (len(tasks) + 1)]
        for entry in report["arms"].values():
            cells = [entry["label"]]
            for task in tasks:
                p = entry.get("vs_moe", {}).get("per_task_fisher_exact_p", {}).get(task)
                cells.append(_successes_cell(entry["success"]["per_task"][task]) + ("" if p is None else f", p {p:.2f}"))
            lines.append("| " + " | ".join(cells) + " |")
    usage = report["arms"].get("moe", {}).get("expert_usage", {}).get("summary", {})
    if usage:
        lines += ["", "Expert usage of (a) in closed loop (normalised entropy 1 = uniform; shares of routed slots):", ""]
        lines += ["| layer | entropy | max share | min share |", "|---|---|---|---|"]
        lines += [f"| {layer} | {u['normalised_entropy']:.2f} | {u['max_share']:.2f} | {u['min_share']:.2f} |"
                  for layer, u in usage.items()]
    return "\n".join(lines) + "\n"


def write_plots(report: Mapping[str, Any], out: Path) -> dict[str, str]:
    """success.png (rate with 95 % Wilson interval of every task together, with each seed block, and
    of each task when there are several), latency.png
    (ORT p50 per stage, cached reasoning), expert_usage.png (the MoE arm's closed-loop loads)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    arms = report["arms"]
    names = list(arms)
    paths = {}

    # groups: every task together (dots: its seed blocks), then each task; one bar per arm
    tasks = list(report["config"]["tasks"]) if len(report["config"]["tasks"]) > 1 else []
    groups = ["all tasks", *tasks]
    width = 0.8 / len(names)
    fig = Figure(figsize=(3.2 + 1.6 * len(groups), 3.8), layout="constrained")
    ax = fig.add_subplot()
    for i, a in enumerate(names):
        counts = [arms[a]["success"], *(arms[a]["success"]["per_task"][t] for t in tasks)]
        rates = np.array([100 * c["rate"] for c in counts])
        lo = rates - [100 * c["wilson95"][0] for c in counts]
        hi = np.array([100 * c["wilson95"][1] for c in counts]) - rates
        gx = np.arange(len(groups)) + (i - (len(names) - 1) / 2) * width
        ax.bar(gx, rates, width, yerr=[lo, hi], capsize=4, color=["tab:purple", "tab:blue", "tab:cyan"][i],
               alpha=0.8, label=arms[a]["label"])
        for j, block in enumerate(arms[a]["success"]["blocks"].values()):
            ax.plot(gx[0] - width / 4 + width / 2 * j, 100 * block["rate"], "ko", ms=3)
    ax.set_xticks(np.arange(len(groups)), groups)
    ax.set_ylabel("closed-loop success [%]")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7)
    ax.set_title("success per arm (bars: 95 % Wilson; dots: seed blocks)", fontsize=9)
    FigureCanvasAgg(fig)
    fig.savefig(out / "success.png", dpi=100)
    paths["success"] = str(out / "success.png")

    if all(arms[a]["latency_ms"] for a in names):
        fig = Figure(figsize=(7.2, 3.8), layout="constrained")
        ax = fig.add_subplot()
        width = 0.8 / len(names)
        sx = np.arange(len(STAGES))
        for i, a in enumerate(names):
            ax.bar(sx + (i - (len(names) - 1) / 2) * width, [arms[a]["latency_ms"]["cached"][s]["p50"] for s in STAGES],
                   width, label=arms[a]["label"])
        ax.set_xticks(sx, STAGES)
        ax.set_ylabel("ONNX Runtime p50 [ms], 1 thread")
        ax.set_title("latency per stage (cached reasoning)", fontsize=9)
        ax.legend(fontsize=8)
        FigureCanvasAgg(fig)
        fig.savefig(out / "latency.png", dpi=100)
        paths["latency"] = str(out / "latency.png")

    usage = arms.get("moe", {}).get("expert_usage", {}).get("per_layer", {})
    if usage:
        fig = Figure(figsize=(3.0 * len(usage), 3.2), layout="constrained")
        for i, (layer, load) in enumerate(usage.items()):
            ax = fig.add_subplot(1, len(usage), i + 1)
            ax.bar(np.arange(len(load)), load, color="tab:purple")
            ax.axhline(1.0 / len(load), color="k", lw=0.8, ls="--")
            ax.set_title(layer, fontsize=8)
            ax.set_xlabel("expert")
            if i == 0:
                ax.set_ylabel("share of routed slots")
        FigureCanvasAgg(fig)
        fig.savefig(out / "expert_usage.png", dpi=100)
        paths["expert_usage"] = str(out / "expert_usage.png")
    return paths


# --------------------------------------------------------------------------------- command
def compare(out: Path, cfg: CompareConfig, progress: bool = True) -> dict[str, Any]:
    """Run every step (see the module docstring) into `out`; returns the report."""
    runner = Runner(out, cfg, progress)
    (out / "compare_config.json").write_text(json.dumps(asdict(cfg), indent=1))
    runner.make_demos()
    meta = json.loads((runner.demos / "meta.json").read_text())
    instruction = meta["episodes"][0]["instruction"]
    runner.train(cfg.arms)
    models = runner.export(cfg.arms)
    evals: dict[str, dict[int, Any]] = {arm: {} for arm in cfg.arms}
    for b, seed_start in enumerate(cfg.seed_blocks):
        for arm in cfg.arms if b % 2 == 0 else cfg.arms[::-1]:
            evals[arm][seed_start] = runner.evaluate(arm, seed_start)
    runner.say("ONNX Runtime latency, arms interleaved")
    latency = measure_latency(models, instruction, cfg.latency_rounds, cfg.latency_iterations)
    arms = {}
    for arm in cfg.arms:
        ckpt_cfg = json.loads((runner.arm(arm) / "checkpoint" / "config.json").read_text())
        arms[arm] = {"checkpoint_meta": ckpt_cfg.get("metadata", {}), "evals": evals[arm]}
    report = build_report(cfg, arms, latency, runner.times)
    report["files"] = write_plots(report, out)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(markdown(report))
    runner.say(f"report: {out / 'report.md'}")
    return report


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, CompareConfig]:
    d = CompareConfig()
    p = tool_parser(PROG, __doc__, formatter_class=DefaultsHelpFormatter)
    add_output_argument(p, "work and report folder (steps whose output exists there are skipped)")
    p.add_argument("--demos", type=int, default=d.demos, help="scripted-expert demonstration episodes")
    p.add_argument("--demo-seed", type=int, default=d.demo_seed, help="master seed of the demonstrations")
    p.add_argument("--tasks", default=",".join(d.tasks), help="task families, comma-separated")
    p.add_argument("--image-size", type=int, default=d.image_size, help="camera image size of the demos")
    p.add_argument("--preset", choices=("small", "tiny"), default=d.preset, help="model preset")
    p.add_argument("--config", default=json.dumps(d.model_overrides),
                   help="model overrides (JSON file or inline object; default: the bundled model's)")
    p.add_argument("--seed", type=int, default=d.seed, help="training seed (every arm)")
    p.add_argument("--dense-steps", type=int, default=d.dense_steps, help="MoE recipe's dense warm-up steps")
    p.add_argument("--moe-steps", type=int, default=d.moe_steps, help="MoE recipe's MoE-tuning steps")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="samples per step")
    p.add_argument("--eval-every", type=int, default=d.eval_every, help="training steps between held-out evaluations")
    p.add_argument("--image-shift", type=int, default=d.image_shift, help="random-shift augmentation [px]")
    p.add_argument("--start-oversampling", type=float, default=d.start_oversampling, help="episode-start oversampling")
    p.add_argument("--start-steps", type=int, default=d.start_steps, help="episode-start steps oversampled")
    p.add_argument("--num-threads", type=int, default=d.num_threads, help="torch threads of each training")
    p.add_argument("--episodes", type=int, default=d.episodes, help="closed-loop episodes per seed block and arm")
    p.add_argument("--seed-blocks", default=",".join(map(str, d.seed_blocks)),
                   help="first scene seed of each held-out block, comma-separated")
    p.add_argument("--max-duration", type=float, default=None, help="time limit per episode [sim s] (default: the task's)")
    p.add_argument("--latency-rounds", type=int, default=d.latency_rounds, help="interleaved latency rounds")
    p.add_argument("--latency-iterations", type=int, default=d.latency_iterations, help="timed inferences per round, arm and mode")
    p.add_argument("--parallel-trainings", type=int, default=d.parallel_trainings, help="trainings run at once")
    p.add_argument("--arms", default=",".join(d.arms),
                   help="arms to run, comma-separated (moe must be one); a later run with more arms adds to the report")
    add_progress_argument(p)
    args = p.parse_args(argv)
    text = args.config if args.config.lstrip().startswith("{") else Path(args.config).read_text()
    cfg = CompareConfig(
        demos=args.demos, demo_seed=args.demo_seed, tasks=tuple(t for t in args.tasks.split(",") if t),
        image_size=args.image_size, preset=args.preset, model_overrides=json.loads(text), seed=args.seed,
        dense_steps=args.dense_steps, moe_steps=args.moe_steps, batch_size=args.batch_size,
        eval_every=args.eval_every, image_shift=args.image_shift, start_oversampling=args.start_oversampling,
        start_steps=args.start_steps, num_threads=args.num_threads, episodes=args.episodes,
        seed_blocks=tuple(int(s) for s in args.seed_blocks.split(",") if s), max_duration=args.max_duration,
        latency_rounds=args.latency_rounds, latency_iterations=args.latency_iterations,
        parallel_trainings=args.parallel_trainings, arms=tuple(a for a in args.arms.split(",") if a),
    )
    return args, cfg


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 report written, 2 bad arguments (or a trained folder with other settings), 1 a step failed."""
    return run_tool(PROG, lambda: _run(argv))


def _run(argv: Sequence[str] | None) -> int:
    with bad_input((ValueError, OSError)):
        args, cfg = parse_args(argv)
    report = compare(args.out, cfg, args.progress)
    print(markdown(report), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
