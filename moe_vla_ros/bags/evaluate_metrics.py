"""Metrics of a policy run against a recording: pure numpy on `RunRecords` and a `Reference`.

Definitions (times in s, positions in contract units, J joints, dt the control period):

- Executed path: the setpoint a joint_trajectory_controller follows from the published
  trajectories. A trajectory takes over at max(header stamp, receipt) from the setpoint there,
  moves linearly to its points (points already due are skipped) and holds the last one; an
  empty trajectory holds where the setpoint is (`command_path`).
- Executed points: the points of each trajectory that were not replaced by the next one (due at
  or before the next takeover). Action error = executed point - reference target at its due
  time; its chunk step is round((due - observation stamp) / dt) - 1. Raw chunks (offline only)
  are scored step by step the same way, whether or not a step was executed.
- Chunk seams: a trajectory that replaces a non-empty one. With tau the new trajectory's first
  point and x_k the executed path at tau + k dt:
    position jump     max |new(t) - old(t)| over the new trajectory's first `window` points,
                      `old` continued as the controller would (held after its end);
    velocity jump     max |v_{k+1} - v_k|, v_k = (x_k - x_{k-1}) / dt, k = -1 .. window-1;
    acceleration jump max |a_k - a_{k-1}|, a_k = (v_{k+1} - v_k) / dt, same k.
  The same velocity / acceleration changes at grid points away from seams are the baseline. A
  seam whose takeover comes after the old trajectory's last point is starved (the arm paused).
- Staleness: receipt of a trajectory - stamp of the observation it was computed from.
- Reasoning: traces, distinct texts, changes (text differs from the previous trace) per minute.
- Expert-usage drift, per MoE layer: Jensen-Shannon divergence (bits: 0 same, 1 disjoint)
  between the mean expert load of each window (`window_s`, sliding by half a window) and of the
  first window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from moe_vla_ros.bags.evaluate_records import ChunkRecord, CommandRecord, TraceRecord, UsageRecord
from moe_vla_ros.runtime.usage_distance import jensen_shannon

_EPS = 1e-6


def summary_stats(values: Sequence[float] | np.ndarray) -> dict:
    """count, mean, p50, p95, max of `values` (None when empty)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"count": 0, "mean": None, "p50": None, "p95": None, "max": None}
    p50, p95 = np.percentile(v, (50.0, 95.0))
    return {"count": int(v.size), "mean": float(v.mean()), "p50": float(p50), "p95": float(p95), "max": float(v.max())}


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
            "max": float(a.max()), "per_joint": per_joint}  # fmt: skip


def per_step_mae(errors: np.ndarray, steps: np.ndarray, horizon: int) -> list[float | None]:
    """Mean |error| over joints and samples for each chunk step 0..horizon-1 (None: no sample)."""
    a = np.abs(np.asarray(errors, dtype=np.float64))  # [K, J]
    steps = np.asarray(steps, dtype=np.int64)
    out: list[float | None] = []
    for k in range(horizon):
        rows = a[(steps == k) & np.all(np.isfinite(a), axis=1)]
        out.append(float(rows.mean()) if rows.size else None)
    return out


# -- the executed path ------------------------------------------------------------------------
@dataclass(frozen=True)
class _Segment:
    switch_s: float  # when it takes over
    knot_times: np.ndarray  # [n + 1]
    knot_positions: np.ndarray  # [n + 1, J]

    def sample(self, t: np.ndarray) -> np.ndarray:
        """Positions [K, J] at times `t` (linear, clamped: holds its last knot)."""
        return np.stack([np.interp(t, self.knot_times, self.knot_positions[:, j])
                         for j in range(self.knot_positions.shape[1])], axis=1)  # fmt: skip


def _segments(commands: Sequence[CommandRecord], initial: np.ndarray | None) -> list[_Segment]:
    """One segment per command in takeover order; each starts where the previous one was."""
    ordered = sorted(commands, key=lambda c: max(c.start_s, c.received_s))
    segments: list[_Segment] = []
    for c in ordered:
        switch = max(c.start_s, c.received_s)
        if segments:
            here = segments[-1].sample(np.array([switch]))[0]
        elif initial is not None:
            here = np.asarray(initial, dtype=np.float64)
        elif not c.is_hold:
            here = c.positions[0]
        else:
            continue  # a hold before any command holds nothing known
        keep = c.times_s >= switch - _EPS
        times = np.concatenate([[switch], c.times_s[keep]])
        positions = np.concatenate([here[None, :], c.positions[keep]], axis=0)
        if times.size > 1 and times[1] <= switch + _EPS:  # a point due right at the takeover replaces the start
            times, positions = times[1:], positions[1:]
        segments.append(_Segment(switch, times, positions))
    return segments


class ExecutedPath:
    """The executed path of a run (module docstring), built once and sampled at any times."""

    def __init__(self, commands: Sequence[CommandRecord], initial: np.ndarray | None = None) -> None:
        self.segments = _segments(commands, initial)
        self.switches = np.array([s.switch_s for s in self.segments])

    def sample(self, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(float64 [K, J] positions; bool [K], False before the first takeover)."""
        t = np.asarray(times_s, dtype=np.float64)
        if not self.segments:
            return np.full((t.size, 0), np.nan), np.zeros(t.size, dtype=bool)
        which = np.searchsorted(self.switches, t, side="right") - 1  # [K]
        out = np.full((t.size, self.segments[0].knot_positions.shape[1]), np.nan)
        for i in np.unique(which[which >= 0]):
            rows = which == i
            out[rows] = self.segments[i].sample(t[rows])
        return out, which >= 0


def command_path(
    commands: Sequence[CommandRecord], times_s: np.ndarray, initial: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The executed path at `times_s` (float64 [K, J]; bool [K], False before the first takeover)."""
    return ExecutedPath(commands, initial).sample(times_s)


@dataclass(frozen=True)
class ExecutedPoints:
    """Points of the published trajectories that were executed (not replaced)."""

    times_s: np.ndarray  # [P]
    positions: np.ndarray  # [P, J]
    steps: np.ndarray  # [P] chunk step (-1 when the observation stamp is unknown)
    command: np.ndarray  # [P] index into the command list


def executed_points(commands: Sequence[CommandRecord], period_s: float, num_joints: int) -> ExecutedPoints:
    """See the module docstring."""
    takeovers = np.array([max(c.start_s, c.received_s) for c in commands] + [math.inf])
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


# -- seams ------------------------------------------------------------------------------------
def seam_metrics(commands: Sequence[CommandRecord], period_s: float, window: int,
                 initial: np.ndarray | None = None) -> dict:  # fmt: skip
    """Position / velocity / acceleration jumps at chunk seams and the baseline away from them."""
    dt = period_s
    pos_jumps, vel_jumps, acc_jumps, starved = [], [], [], []
    seam_zones: list[tuple[float, float]] = []
    ordered = sorted(commands, key=lambda c: max(c.start_s, c.received_s))
    path = ExecutedPath(ordered, initial)
    for prev, new in zip(ordered, ordered[1:]):
        if prev.is_hold or new.is_hold:
            continue
        takeover = max(new.start_s, new.received_s)
        ahead = new.times_s > takeover - _EPS
        if not ahead.any():
            continue
        if takeover > prev.times_s[-1] + _EPS:
            starved.append(takeover - prev.times_s[-1])
        tau = float(new.times_s[ahead][0])
        old = _segments([prev], initial)[0]
        first = new.times_s[ahead][:window]
        jump = np.abs(new.positions[ahead][:window] - old.sample(first))  # [w, J]
        grid = tau + dt * np.arange(-3, window + 1)  # k = -3 .. window
        x, _ = path.sample(grid)  # [window + 4, J]
        v = np.diff(x, axis=0) / dt  # [window + 3, J]: v_k, k = -2 .. window
        a = np.diff(v, axis=0) / dt  # [window + 2, J]: a_k = (v_{k+1} - v_k) / dt, k = -2 .. window - 1
        dv = np.abs(np.diff(v, axis=0))[1:]  # [window + 1, J]: v_{k+1} - v_k, k = -1 .. window - 1
        da = np.abs(np.diff(a, axis=0))  # [window + 1, J]: a_k - a_{k-1}, k = -1 .. window - 1
        pos_jumps.append(float(jump.max()))
        vel_jumps.append(float(dv.max()))
        acc_jumps.append(float(da.max()))
        seam_zones.append((tau - 2 * dt, tau + window * dt))
    baseline = _baseline(ordered, path, dt, seam_zones)
    return {
        "count": len(pos_jumps),
        "position_jump": summary_stats(pos_jumps),
        "velocity_jump": summary_stats(vel_jumps),
        "acceleration_jump": summary_stats(acc_jumps),
        "starved": {"count": len(starved), "total_s": float(sum(starved))},
        "baseline_velocity_change": summary_stats(baseline[0]),
        "baseline_acceleration_change": summary_stats(baseline[1]),
    }


def _baseline(ordered: Sequence[CommandRecord], path: ExecutedPath, dt: float,
              zones: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """|velocity change| and |acceleration change| (max over joints) at grid points of the
    executed path that are neither near a seam nor near a hold."""
    commanded = [c for c in ordered if not c.is_hold]
    if not commanded:
        return np.zeros(0), np.zeros(0)
    t0, t1 = float(commanded[0].times_s[0]), max(float(c.times_s[-1]) for c in commanded)
    grid = t0 + dt * np.arange(int(math.floor((t1 - t0) / dt + _EPS)) + 1)
    if grid.size < 4:
        return np.zeros(0), np.zeros(0)
    x, valid = path.sample(grid)
    v = np.diff(x, axis=0) / dt  # [n - 1, J] per interval
    a = np.diff(v, axis=0) / dt  # [n - 2, J] at grid[1:-1]
    dv = np.abs(np.diff(v, axis=0)).max(axis=1)  # [n - 2] velocity change at grid[1:-1]
    da = np.abs(np.diff(a, axis=0)).max(axis=1)  # [n - 3] acceleration change at grid[2:-1]
    points = grid[1:-1]
    keep = np.ones(points.size, dtype=bool)
    holds = [max(c.start_s, c.received_s) for c in ordered if c.is_hold]
    for lo, hi in zones + [(h - 3 * dt, h + 3 * dt) for h in holds]:
        keep &= ~((points >= lo - _EPS) & (points <= hi + _EPS))
    keep &= valid[:-2] & valid[1:-1] & valid[2:]
    return dv[keep], da[keep[1:]]


# -- staleness, reasoning, expert usage ---------------------------------------------------------
def staleness(commands: Sequence[CommandRecord]) -> dict:
    ages = [c.received_s - c.obs_stamp_s for c in commands if not c.is_hold and math.isfinite(c.obs_stamp_s)]
    return summary_stats(ages)


def reasoning_metrics(traces: Sequence[TraceRecord], duration_s: float) -> dict:
    texts = [t.text for t in sorted(traces, key=lambda r: r.stamp_s)]
    changes = sum(1 for a, b in zip(texts, texts[1:]) if a != b)
    minutes = duration_s / 60.0
    return {"traces": len(texts), "distinct": len(set(texts)), "changes": changes,
            "changes_per_minute": changes / minutes if minutes > 0 else None}  # fmt: skip


def usage_series(usage: Sequence[UsageRecord]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{layer: (stamps [N], loads [N, E])} in stamp order (records lacking the layer skipped)."""
    ordered = sorted(usage, key=lambda r: r.stamp_s)
    layers = list(dict.fromkeys(name for r in ordered for name in r.loads))
    out = {}
    for layer in layers:
        rows = [(r.stamp_s, r.loads[layer]) for r in ordered if layer in r.loads]
        width = max(len(l) for _, l in rows)
        loads = np.zeros((len(rows), width))
        for i, (_, l) in enumerate(rows):
            loads[i, : len(l)] = l
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
        }  # fmt: skip
    return result
