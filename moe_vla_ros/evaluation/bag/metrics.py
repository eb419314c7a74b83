"""Metrics of a policy run against a recording: pure numpy on `RunRecords` and a `Reference`.

Definitions (times in s, positions in contract units, J joints, dt the control period):

- Executed path and chunk seams: evaluation/seams.py (the definition both evaluators share).
- Executed points: the points of each trajectory that were not replaced by the next one (due at
  or before the next takeover). Action error = executed point - reference target at its due
  time; its chunk step is round((due - observation stamp) / dt) - 1. Raw chunks (offline only)
  are scored step by step the same way, whether or not a step was executed.
- Staleness: receipt of a trajectory - stamp of the observation it was computed from.
- Reasoning: traces, distinct texts, changes (text differs from the previous trace) per minute.
- Expert-usage drift, per MoE layer: Jensen-Shannon divergence (bits: 0 same, 1 disjoint)
  between the mean expert load of each window (`window_s`, sliding by half a window) and of the
  first window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from moe_vla_ros.evaluation.bag.records import ChunkRecord, TraceRecord, UsageRecord
from moe_vla_ros.evaluation.records import CommandRecord
from moe_vla_ros.evaluation.seams import takeover_s
from moe_vla_ros.evaluation.stats import summary_stats
from moe_vla_ros.runtime.usage_distance import jensen_shannon

_EPS = 1e-6


def error_stats(errors: np.ndarray, joint_names: Sequence[str]) -> dict:
    """MAE / RMSE / max |error| overall and per joint of float [K, J] errors (NaN rows ignored)."""
    e = np.asarray(errors, dtype=np.float64).reshape(-1, len(joint_names))
    e = e[np.all(np.isfinite(e), axis=1)]
    if e.shape[0] == 0:
        return {"samples": 0, "mae": None, "rmse": None, "max": None, "per_joint": {}}
    a = np.abs(e)
    per_joint = {
        name: {"mae": float(a[:, j].mean()), "rmse": float(np.sqrt((e[:, j] ** 2).mean())), "max": float(a[:, j].max())}
        for j, name in enumerate(joint_names)
    }
    return {"samples": int(e.shape[0]), "mae": float(a.mean()), "rmse": float(np.sqrt((e**2).mean())),
            "max": float(a.max()), "per_joint": per_joint}


def per_step_mae(errors: np.ndarray, steps: np.ndarray, horizon: int) -> list[float | None]:
    """Mean |error| over joints and samples for each chunk step 0..horizon-1 (None: no sample)."""
    a = np.abs(np.asarray(errors, dtype=np.float64))  # [K, J]
    steps = np.asarray(steps, dtype=np.int64)
    out: list[float | None] = []
    for k in range(horizon):
        rows = a[(steps == k) & np.all(np.isfinite(a), axis=1)]
        out.append(float(rows.mean()) if rows.size else None)
    return out


# -- executed points ------------------------------------------------------------------------
@dataclass(frozen=True)
class ExecutedPoints:
    """Points of the published trajectories that were executed (not replaced)."""

    times_s: np.ndarray  # [P]
    positions: np.ndarray  # [P, J]
    steps: np.ndarray  # [P] chunk step (-1 when the observation stamp is unknown)
    command: np.ndarray  # [P] index into the command list


def executed_points(commands: Sequence[CommandRecord], period_s: float, num_joints: int) -> ExecutedPoints:
    """See the module docstring."""
    takeovers = np.array([takeover_s(c) for c in commands] + [math.inf])
    next_takeover = np.minimum.accumulate(takeovers[::-1])[::-1]  # [n + 1]: earliest takeover from i on
    times, positions, steps, index = [], [], [], []
    for i, c in enumerate(commands):
        if c.is_hold:
            continue
        end = next_takeover[i + 1]
        keep = (c.times_s <= end + _EPS) & (c.times_s >= takeovers[i] - _EPS)
        times.append(c.times_s[keep])
        positions.append(c.positions[keep])
        if math.isfinite(c.obs_stamp_s):
            steps.append(np.round((c.times_s[keep] - c.obs_stamp_s) / period_s).astype(np.int64) - 1)
        else:
            steps.append(np.full(int(keep.sum()), -1, dtype=np.int64))
        index.append(np.full(int(keep.sum()), i, dtype=np.int64))
    if not times:
        return ExecutedPoints(np.zeros(0), np.zeros((0, num_joints)), np.zeros(0, np.int64), np.zeros(0, np.int64))
    return ExecutedPoints(*(np.concatenate(parts) for parts in (times, positions, steps, index)))


def chunk_errors(chunks: Sequence[ChunkRecord], period_s: float, reference) -> tuple[np.ndarray, np.ndarray]:
    """(errors [K, J] NaN where the reference is invalid, steps [K]) of every raw chunk step."""
    if not chunks:
        return np.zeros((0, 0)), np.zeros(0, np.int64)
    horizon = chunks[0].actions.shape[0]
    due = np.concatenate([c.obs_stamp_s + period_s * np.arange(1, horizon + 1) for c in chunks])
    actions = np.concatenate([c.actions for c in chunks], axis=0)
    targets, valid = reference.targets(due)
    errors = np.where(valid[:, None], actions - targets, np.nan)
    return errors, np.tile(np.arange(horizon), len(chunks))


# -- staleness, reasoning, expert usage ---------------------------------------------------------
def staleness(commands: Sequence[CommandRecord]) -> dict:
    ages = [c.received_s - c.obs_stamp_s for c in commands if not c.is_hold and math.isfinite(c.obs_stamp_s)]
    return summary_stats(ages)


def reasoning_metrics(traces: Sequence[TraceRecord], duration_s: float) -> dict:
    texts = [t.text for t in sorted(traces, key=lambda r: r.stamp_s)]
    changes = sum(1 for a, b in zip(texts, texts[1:]) if a != b)
    minutes = duration_s / 60.0
    return {"traces": len(texts), "distinct": len(set(texts)), "changes": changes,
            "changes_per_minute": changes / minutes if minutes > 0 else None}


def usage_series(usage: Sequence[UsageRecord]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{layer: (stamps [N], loads [N, E])} in stamp order (records lacking the layer skipped)."""
    ordered = sorted(usage, key=lambda r: r.stamp_s)
    layers = list(dict.fromkeys(name for r in ordered for name in r.layers))
    out = {}
    for layer in layers:
        rows = [(r.stamp_s, r.layers[layer]) for r in ordered if layer in r.layers]
        width = max(len(load) for _, load in rows)
        loads = np.zeros((len(rows), width))
        for i, (_, load) in enumerate(rows):
            loads[i, : len(load)] = load
        out[layer] = (np.array([t for t, _ in rows]), loads)
    return out


def usage_drift(usage: Sequence[UsageRecord], window_s: float) -> dict:
    """Per layer: mean load, windowed drift series [(window centre s, JS bits)], max and final."""
    result = {}
    for layer, (times, loads) in usage_series(usage).items():
        step = window_s / 2.0
        count = max(1, int(math.floor((times[-1] - times[0] - window_s) / step + _EPS)) + 1)
        starts = times[0] + step * np.arange(count)
        base, series = None, []
        for s in starts:
            rows = (times >= s - _EPS) & (times < s + window_s - _EPS) if len(starts) > 1 else np.ones(times.size, bool)
            if not rows.any():
                continue
            mean = loads[rows].mean(axis=0)
            base = mean if base is None else base
            series.append((float(s + window_s / 2), jensen_shannon(mean, base)))
        drifts = [d for _, d in series]
        result[layer] = {
            "num_experts": int(loads.shape[1]), "inferences": int(times.size),
            "mean_load": [float(x) for x in loads.mean(axis=0)],
            "drift_max_bits": max(drifts), "drift_final_bits": drifts[-1], "windows": series,
        }
    return result
