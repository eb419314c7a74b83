"""Codec loss of LeRobot video encodings on a demonstration dataset: all pixels and the cube pixels.

    .venv/bin/python scripts/lerobot_codec_loss.py DATASET [-o OUT.json] [--stride N]

Each encoding (codec, pixel format, crf; g=2) is exported with `export_lerobot`, decoded with
`LeRobotDemoDataset` and compared with the npz images: mean / 99th percentile / max absolute error
(grey levels of 255, over every pixel and channel) and the mean error on the cube pixels
(saturated pixels far from the frame's median colour: the coloured cubes whose colour names the
target, ~1-3 % of a frame), plus the mp4 size; `--stride N` compares every N-th episode only (all
are encoded). Used for models/lerobot_parity.md.
"""

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from moe_vla_ros.data.dataset import DemoDataset
from moe_vla_ros.data.lerobot.reader import LeRobotDemoDataset
from moe_vla_ros.data.lerobot.writer import ExportOptions, export_lerobot

ENCODINGS = [("libsvtav1", "yuv420p", 30), ("h264", "yuv420p", 30), ("h264", "yuv444p", 30),
             ("h264", "yuv420p", 23), ("h264", "yuv444p", 23)]


def cube_mask(frames: np.ndarray) -> np.ndarray:
    """[T, H, W] True on strongly coloured pixels far (> 90 in RGB) from each frame's median colour."""
    x = frames.astype(np.int16)  # [T, H, W, 3]
    median = np.median(x.reshape(len(x), -1, 3), axis=1)[:, None, None, :]  # [T, 1, 1, 3]
    saturation = x.max(-1) - x.min(-1)  # [T, H, W]
    return (saturation >= 80) & (np.linalg.norm(x - median, axis=-1) > 90)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset", type=Path)
    p.add_argument("-o", "--out", type=Path, default=None)
    p.add_argument("--stride", type=int, default=1, help="compare every N-th episode")
    args = p.parse_args()
    src = DemoDataset(args.dataset)
    result = {}
    with tempfile.TemporaryDirectory(prefix="codec_loss_") as tmp:
        for codec, pix_fmt, crf in ENCODINGS:
            out = Path(tmp) / f"{codec}_{pix_fmt}_{crf}"
            export_lerobot(src, out, ExportOptions(codec=codec, pix_fmt=pix_fmt, crf=crf, gop=2, progress=False))
            decoded = LeRobotDemoDataset(out)
            hist, total, cube_sum, cube_count = np.zeros(256), 0, 0.0, 0
            for i in range(0, len(src), args.stride):
                a, b = src.episode(i), decoded.episode(i)
                for cam in src.contract.camera_names:
                    d = np.abs(a.images[cam].astype(np.int16) - b.images[cam].astype(np.int16))  # [T, H, W, 3]
                    hist += np.bincount(d.ravel(), minlength=256)
                    total += d.size
                    on_cubes = d[cube_mask(a.images[cam])]  # [N, 3]
                    cube_sum += float(on_cubes.sum())
                    cube_count += on_cubes.size
            decoded.close()
            cdf = np.cumsum(hist) / total
            r = {"mean_abs_error": float((hist * np.arange(256)).sum() / total), "p99_abs_error": int(np.searchsorted(cdf, 0.99)),
                 "max_abs_error": int(np.nonzero(hist)[0].max()), "cube_mean_abs_error": cube_sum / cube_count,
                 "cube_pixel_share": cube_count / total, "mp4_mb": sum(f.stat().st_size for f in out.rglob("*.mp4")) / 1e6}
            result[f"{codec} {pix_fmt} crf {crf}"] = r
            print(f"{codec:9} {pix_fmt} crf {crf}: mean {r['mean_abs_error']:.2f} p99 {r['p99_abs_error']} max "
                  f"{r['max_abs_error']}, cube pixels mean {r['cube_mean_abs_error']:.2f} "
                  f"({100 * r['cube_pixel_share']:.1f} % of pixels), mp4 {r['mp4_mb']:.1f} MB", flush=True)
            shutil.rmtree(out)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
