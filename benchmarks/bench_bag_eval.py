"""Offline bag evaluation speed: how fast evaluation/bag/offline.py scores a policy on a recording.

A bag of scripted-expert episodes is recorded from the simulator (96x96 rgb8 cameras at 30 Hz,
joint states at 50 Hz; or --bag), then evaluated offline in four cases:

    model, simulated latency     the random-weight small() model (ONNX Runtime, CPU), chunks
                                 delivered after the measured inference latency (the default)
    model, no latency            the same, inference treated as instantaneous
    oracle, simulated latency    the recorded-actions oracle: no model cost, so what remains is
    oracle, no latency           the evaluator's own cost (bag reading, image decoding, runner)

Reported per case: wall time, bag seconds evaluated, synchronised observations per second of
wall time, inferences, seconds of wall time per minute of bag (below 60: faster than real time)
and the action MAE (for orientation only: the model has random weights). Plots are not drawn.
Prints a table and writes JSON (default build/benchmarks/bag_eval.json).

Without --model the random small() model of bench_policy.py is used (built once under
build/benchmarks/demo_small/).

    .venv/bin/python benchmarks/bench_bag_eval.py [--quick] [--bag BAG] [--model DIR]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from report_file import write_report

REPO = Path(__file__).resolve().parents[1]


def default_model(root: Path) -> Path:
    """The random `small()` model (the sim arm's contract: 2 cameras at 96x96, 7 joints, chunks of 16)."""
    from moe_vla_ros.export.demo_checkpoint import export_demo_model

    return export_demo_model(root, "small", seed=0)[1]


def record_bag(folder: Path, episodes: int) -> Path:
    from moe_vla_ros.bags.from_sim import SimRecordingConfig, record_sim_bag

    cfg = SimRecordingConfig(episodes=episodes, seed=1, image_size=96, camera_rate_hz=30.0, joint_state_rate_hz=50.0,
                             progress=False)
    return record_sim_bag(folder / "expert_bag", cfg).path


def run_case(name: str, bag: Path, model: Path | None, simulate: bool, out: Path) -> dict:
    from moe_vla_ros.evaluation.bag.config import EvaluationConfig
    from moe_vla_ros.evaluation.bag.offline import evaluate_bag
    from moe_vla_ros.evaluation.bag.oracle import RecordedActionsPolicy
    from moe_vla_ros.spec.policy_node import default_params_files

    cfg = EvaluationConfig.from_params_files(default_params_files(), simulate_latency=simulate, plots=False,
                                             progress=False)
    policy = RecordedActionsPolicy.from_bag(bag, config=cfg) if model is None else None
    start = time.perf_counter()
    report = evaluate_bag(bag, model, out / name.replace(", ", "_").replace(" ", "_"), cfg, policy=policy)
    wall = time.perf_counter() - start  # model loading and warm-up included
    d = report.data
    bag_s = d["span_s"]["duration"]
    observations = d["counts"]["observations"]
    return {
        "case": name, "wall_s": wall, "evaluate_s": d["wall_s"], "bag_s": bag_s, "observations": observations,
        "observations_per_s": observations / d["wall_s"], "inferences": d["counts"]["inferences"],
        "seconds_per_bag_minute": d["wall_s"] / (bag_s / 60.0), "latency_p50_ms": (d["latency_s"]["p50"] or 0) * 1e3,
        "staleness_p50_ms": (d["staleness_s"]["p50"] or 0) * 1e3, "action_mae": d["action_error"]["mae"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bag", type=Path, default=None, help="bag to evaluate (default: record expert episodes)")
    parser.add_argument("--model", type=Path, default=None, help="exported model folder (default: random small())")
    parser.add_argument("--episodes", type=int, default=4, help="episodes to record (default 4)")
    parser.add_argument("--quick", action="store_true", help="one recorded episode")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "benchmarks" / "bag_eval.json", help="JSON output")
    args = parser.parse_args(argv)
    model = args.model or default_model(REPO / "build" / "benchmarks" / "demo_small")
    with tempfile.TemporaryDirectory(prefix="bench_bag_eval_") as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        bag = args.bag or record_bag(tmp, 1 if args.quick else args.episodes)
        record_s = time.perf_counter() - started
        plan = (("model, simulated latency", model, True), ("model, no latency", model, False),
                ("oracle, simulated latency", None, True), ("oracle, no latency", None, False))
        cases = [run_case(name, bag, m, simulate, tmp) for name, m, simulate in plan]
    header = (f"{'case':<28}{'bag s':>7}{'wall s':>8}{'obs/s':>8}{'infer':>7}{'s/bag-min':>11}"
              f"{'lat p50 ms':>12}{'MAE':>8}")
    print(header)
    print("-" * len(header))
    for c in cases:
        print(f"{c['case']:<28}{c['bag_s']:>7.1f}{c['evaluate_s']:>8.2f}{c['observations_per_s']:>8.0f}"
              f"{c['inferences']:>7}"
              f"{c['seconds_per_bag_minute']:>11.2f}{c['latency_p50_ms']:>12.1f}"
              f"{c['action_mae'] if c['action_mae'] is not None else math.nan:>8.3f}")
    result = {
        "benchmark": "bag_eval", "model": str(model), "bag": str(args.bag) if args.bag else "recorded expert episodes",
        "record_s": record_s if not args.bag else None, "cases": cases,
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0], "cpus": os.cpu_count()},
    }
    write_report(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
