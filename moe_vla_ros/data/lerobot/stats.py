"""Feature statistics as LeRobot v3.0 stores them (compute_stats.py in huggingface/lerobot).

Per episode and feature: min, max, mean, std (population), count ([1]) and the quantiles
q01, q10, q50, q90, q99, over the frames; vectors per dimension ([n]), scalars as [1], images
per RGB channel as [3, 1, 1] in [0, 1] over a sample of the episode's frames (the first axis is
time). The dataset's stats.json aggregates the episodes the way `aggregate_stats` does: min of
mins, max of maxes, count-weighted mean, pooled variance, count-weighted mean of each quantile
(an approximation LeRobot makes too). Quantiles of one episode are exact here (LeRobot
estimates them from 5000-bin histograms).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from moe_vla_ros.data.lerobot.schema import QUANTILE_KEYS, QUANTILES

MAX_IMAGE_SAMPLES = 100  # compute_stats.py estimate_num_samples: 100 frames for episodes up to ~500


def sample_indices(length: int) -> np.ndarray:
    """Evenly spaced frame indices used for image stats (LeRobot's sample_indices, <= 100 frames here)."""
    count = min(length, MAX_IMAGE_SAMPLES)
    return np.round(np.linspace(0, length - 1, count)).astype(int)


def feature_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Stats of `values` [T] or [T, n] over time: each stat [n] ([1] for [T]), count [1]."""
    x = np.asarray(values, dtype=np.float64)
    x = x.reshape(len(x), -1)  # [T, n]
    stats = {
        "min": x.min(axis=0), "max": x.max(axis=0), "mean": x.mean(axis=0), "std": x.std(axis=0),
        "count": np.array([len(x)], dtype=np.int64),
    }
    for key, q in zip(QUANTILE_KEYS, np.quantile(x, QUANTILES, axis=0)):
        stats[key] = q
    return stats


def image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel stats of uint8 RGB `frames` [T, H, W, 3] (sampled), scaled to [0, 1]: [3, 1, 1] each.

    Computed from each channel's 256-bin histogram: exact (the quantiles as np.quantile's linear
    interpolation) and ~10x faster than sorting the pixels."""
    sampled = frames[sample_indices(len(frames))]  # [S, H, W, 3]
    pixels = sampled.reshape(-1, 3)  # [P, 3] uint8
    n = pixels.shape[0]
    levels = np.arange(256, dtype=np.float64)
    out: dict[str, list[float]] = {k: [] for k in ("min", "max", "mean", "std", *QUANTILE_KEYS)}
    for c in range(3):
        counts = np.bincount(pixels[:, c], minlength=256)  # [256]
        cum = np.cumsum(counts)  # [256]
        present = np.flatnonzero(counts)
        mean = float(counts @ levels) / n
        out["min"].append(float(present[0]))
        out["max"].append(float(present[-1]))
        out["mean"].append(mean)
        out["std"].append(float(np.sqrt(counts @ np.square(levels - mean) / n)))
        for key, q in zip(QUANTILE_KEYS, QUANTILES):
            pos = q * (n - 1)
            lo, hi = np.searchsorted(cum, [np.floor(pos), np.ceil(pos)], side="right")  # value of sorted[k]
            out[key].append(float(lo + (pos - np.floor(pos)) * (hi - lo)))
    stats = {k: (np.asarray(v, dtype=np.float64) / 255.0).reshape(3, 1, 1) for k, v in out.items()}
    stats["count"] = np.array([len(sampled)], dtype=np.int64)
    return stats


def aggregate(stats_list: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One feature's stats over several episodes (compute_stats.py aggregate_feature_stats)."""
    counts = np.stack([np.asarray(s["count"], dtype=np.float64) for s in stats_list])  # [E, 1]
    means = np.stack([s["mean"] for s in stats_list])  # [E, ...]
    variances = np.stack([np.square(s["std"]) for s in stats_list])
    total = counts.sum(axis=0)
    w = counts.reshape(counts.shape[:1] + (1,) * (means.ndim - 1))  # [E, 1, ...] broadcast over the stat shape
    mean = (means * w).sum(axis=0) / total.reshape((1,) * (means.ndim - 1))
    var = ((variances + np.square(means - mean)) * w).sum(axis=0) / total.reshape((1,) * (means.ndim - 1))
    out = {
        "min": np.min(np.stack([s["min"] for s in stats_list]), axis=0),
        "max": np.max(np.stack([s["max"] for s in stats_list]), axis=0),
        "mean": mean, "std": np.sqrt(var), "count": total.astype(np.int64),
    }
    for key in QUANTILE_KEYS:
        qs = np.stack([s[key] for s in stats_list])
        out[key] = (qs * w).sum(axis=0) / total.reshape((1,) * (means.ndim - 1))
    return out


def to_json(stats: Mapping[str, np.ndarray]) -> dict[str, list]:
    """Stats as JSON lists (what stats.json and the episodes' stats/ columns hold)."""
    return {k: np.asarray(v).tolist() for k, v in stats.items()}
