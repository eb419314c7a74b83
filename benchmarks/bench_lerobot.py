"""LeRobotDataset v3.0 export and import speed on a generated demonstration set.

Generates N episodes (default 400) of the synthetic reach task (training/synthetic.py: 2 cameras,
3 joints, T steps at 10 Hz, SIZExSIZE images) in our format, then per case:

    export fps    frames (time steps, every camera) per second of `export_lerobot` (stats,
                  parquet, video encoding) from our npz episodes
    import fps    frames per second of reading every episode back as our Episode
                  (`LeRobotDemoDataset.episode`: parquet + video decoding), in order
    open s        seconds to open the LeRobot folder (metadata, frame table, action check)
    MB            size of the LeRobot folder (ours: the npz folder)
    px err        mean |decoded - original| per pixel and channel (0 for embedded PNG)

Cases: mp4 with LeRobot's default encoding (libsvtav1, crf 30, g 2), mp4 h264, PNG images
embedded in parquet (`--images`). Prints a table and writes JSON (default
build/benchmarks/lerobot.json). Single-threaded numpy/torch; PyAV codecs use their own threads.

    .venv/bin/python benchmarks/bench_lerobot.py [--episodes 400] [--steps 30] [--size 96] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from report_file import write_report

from moe_vla_ros.data.lerobot.reader import LeRobotDemoDataset
from moe_vla_ros.data.lerobot.schema import check_dataset
from moe_vla_ros.data.lerobot.writer import ExportOptions, export_lerobot
from moe_vla_ros.model.config import tiny_contract
from moe_vla_ros.training.synthetic import generate_synthetic_dataset

CASES = {
    "mp4 av1 (LeRobot default)": dict(video=True, codec="libsvtav1", crf=30, gop=2),
    "mp4 h264 crf 23": dict(video=True, codec="h264", crf=23, gop=2),
    "png in parquet": dict(video=False),
}


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def run_case(name: str, ours, work: Path, kwargs: dict, progress: bool, error_episodes: int) -> dict:
    from tqdm import tqdm

    out = work / name.split()[0].replace("/", "_") / kwargs.get("codec", "png")
    frames = ours.num_steps
    t0 = time.perf_counter()
    export_lerobot(ours, out, ExportOptions(progress=progress, **kwargs))
    export_s = time.perf_counter() - t0
    problems = check_dataset(out)
    t0 = time.perf_counter()
    data = LeRobotDemoDataset(out)
    open_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in tqdm(range(len(data)), disable=not progress, desc="import", unit="episode"):
        data.episode(i)
    import_s = time.perf_counter() - t0
    errors = []
    for i in range(min(error_episodes, len(data))):
        a, b = ours.episode(i), data.episode(i)
        errors += [np.abs(a.images[c].astype(np.int16) - b.images[c]).mean() for c in a.images]
    data.close()
    return {
        "case": name, "frames": frames, "export_s": export_s, "export_fps": frames / export_s,
        "open_s": open_s, "import_s": import_s, "import_fps": frames / import_s, "mb": folder_mb(out),
        "pixel_error_mean": float(np.mean(errors)), "layout_problems": problems,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench_lerobot", description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=400, help="episodes in the generated set (default 400)")
    p.add_argument("--steps", type=int, default=30, help="steps per episode (default 30)")
    p.add_argument("--size", type=int, default=96, help="image height and width (default 96, the simulator's)")
    p.add_argument("--cases", nargs="*", choices=list(CASES), default=list(CASES), help="cases to run")
    p.add_argument("--quick", action="store_true", help="20 episodes (a smoke run)")
    p.add_argument("--out", type=Path, default=REPO / "build" / "benchmarks" / "lerobot.json", help="JSON result file")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    args = p.parse_args(argv)
    episodes = 20 if args.quick else args.episodes
    sensors = dataclasses.replace(tiny_contract().sensors, image_height=args.size, image_width=args.size)
    work = Path(tempfile.mkdtemp(prefix="bench_lerobot_"))
    try:
        t0 = time.perf_counter()
        ours = generate_synthetic_dataset(work / "ours", sensors, episodes, args.steps, seed=0)
        generate_s = time.perf_counter() - t0
        rows = [run_case(name, ours, work, CASES[name], args.progress, error_episodes=5) for name in args.cases]
        ours_mb = folder_mb(work / "ours")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "benchmark": "lerobot", "episodes": episodes, "steps_per_episode": args.steps, "frames": episodes * args.steps,
        "cameras": list(sensors.camera_names), "image_size": [args.size, args.size], "joints": sensors.num_joints,
        "ours_mb": ours_mb, "generate_s": generate_s, "cases": rows,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }
    print(f"\n{episodes} episodes x {args.steps} steps = {episodes * args.steps} frames, 2 cameras {args.size}x{args.size}, "
          f"3 joints; our npz dataset {ours_mb:.1f} MB")
    header = f"{'case':28} {'export fps':>10} {'import fps':>10} {'open s':>7} {'MB':>7} {'px err':>7}  layout"
    print(header + "\n" + "-" * len(header))
    for r in rows:
        print(f"{r['case']:28} {r['export_fps']:10.0f} {r['import_fps']:10.0f} {r['open_s']:7.2f} {r['mb']:7.1f} "
              f"{r['pixel_error_mean']:7.2f}  {'ok' if not r['layout_problems'] else r['layout_problems']}")
    write_report(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
