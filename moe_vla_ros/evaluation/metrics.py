"""Metrics of closed-loop episodes: success, time, latency, expert usage, chunk-seam smoothness.

Pure numpy on the records of records.py (no rclpy, no matplotlib).

Expert usage: the mean `expert_load` vector (fraction of routed token slots per expert) of
every MoE layer over a task family's chunks, and how much two families differ per layer:
total variation distance TV = 1/2 sum |p - q| (0 = same loads, 1 = disjoint experts) and
Jensen-Shannon divergence in bits (0..1).

Chunk seams: when trajectory B replaces A, B's first point should continue A. At B's first
point time t, the position jump |p_B(t) - p_A(t)| and velocity jump |v_B(t) - v_A(t)| (A
sampled like joint_trajectory_controller: cubic Hermite through its points) are compared with
what the arm can do in one control period: max_velocity * dt and max_acceleration * dt. A
ratio above 1 is a jerk the limits do not allow. B starting after A's last point is a gap
(the arm stopped between chunks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Iterable, Mapping, Sequence

import numpy as np

from moe_vla_ros.evaluation.records import EpisodeRecord, LatencyRecord, TrajectoryRecord
from moe_vla_ros.runtime.usage_distance import jensen_shannon, total_variation

OVERALL = "overall"


# -- success and time ---------------------------------------------------------------------------
def success_summary(outcomes: Iterable[tuple[str, bool]]) -> dict[str, dict[str, float]]:
    """{family: {episodes, successes, rate}} in first-seen order, then "overall", from (family, success) pairs."""
    table: dict[str, list[int]] = {}
    for family, success in outcomes:
        counts = table.setdefault(family, [0, 0])
        counts[0] += 1
        counts[1] += int(bool(success))
    table[OVERALL] = [sum(n for n, _ in table.values()), sum(s for _, s in table.values())]
    return {k: {"episodes": n, "successes": s, "rate": s / n if n else math.nan} for k, (n, s) in table.items()}


def mean_by_family(values: Iterable[tuple[str, float]]) -> dict[str, float]:
    """{family: mean value} in first-seen order, then "overall" (empty input: {})."""
    groups: dict[str, list[float]] = {}
    for family, value in values:
        groups.setdefault(family, []).append(float(value))
    if groups:
        groups[OVERALL] = [v for values_ in groups.values() for v in values_]
    return {k: float(np.mean(v)) for k, v in groups.items()}


# -- latency ------------------------------------------------------------------------------------
def distribution_ms(seconds: Sequence[float]) -> dict[str, float]:
    """count, mean, p50, p95 and max of durations given in seconds, in milliseconds."""
    x = np.asarray(seconds, dtype=np.float64) * 1e3
    if x.size == 0:
        return {"count": 0, "mean_ms": math.nan, "p50_ms": math.nan, "p95_ms": math.nan, "max_ms": math.nan}
    return {"count": int(x.size), "mean_ms": float(x.mean()), "p50_ms": float(np.percentile(x, 50)),
            "p95_ms": float(np.percentile(x, 95)), "max_ms": float(x.max())}  # fmt: skip


def inference_latency(records: Sequence[EpisodeRecord]) -> dict[str, float]:
    """The policy node's own inference latency: its last PolicyStatus report of the run (the
    node summarises a rolling window of recent inferences, cold start excluded)."""
    reports: list[LatencyRecord] = [r for rec in records for r in rec.latency if r.count > 0]
    if not reports:
        return distribution_ms([])
    last = max(reports, key=lambda r: (r.stamp_s, r.count))
    return {"count": last.count, "mean_ms": last.mean_ms, "p50_ms": last.p50_ms, "p95_ms": last.p95_ms,
            "max_ms": last.max_ms}  # fmt: skip


def observation_to_command(records: Sequence[EpisodeRecord]) -> dict[str, float]:
    """Age of the observation when its chunk's telemetry arrived (sync wait + inference + transport)."""
    return distribution_ms([u.received_s - u.stamp_s for rec in records for u in rec.usage])


# -- expert usage -------------------------------------------------------------------------------
def mean_expert_load(records: Sequence[EpisodeRecord]) -> dict[str, dict[str, list[float]]]:
    """{family: {layer: mean expert_load over the family's chunks}} (layers in first-seen order)."""
    sums: dict[str, dict[str, list]] = {}
    for rec in records:
        for usage in rec.usage:
            layers = sums.setdefault(rec.family, {})
            for name, load in usage.layers.items():
                total = layers.setdefault(name, [np.zeros(len(load)), 0])
                if len(load) != len(total[0]):
                    raise ValueError(f"layer {name!r} reports {len(load)} experts, earlier {len(total[0])}")
                total[0] = total[0] + np.asarray(load, dtype=np.float64)
                total[1] += 1
    return {family: {name: (s / n).tolist() for name, (s, n) in layers.items()} for family, layers in sums.items()}


def usage_divergence(loads: Mapping[str, Mapping[str, Sequence[float]]]) -> dict[str, dict[str, dict[str, float]]]:
    """{"reach vs push": {layer: {"tv", "js_bits"}}} for every pair of families (in the order of
    `loads`), over the layers both have."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for a, b in combinations(list(loads), 2):
        shared = [name for name in loads[a] if name in loads[b]]
        out[f"{a} vs {b}"] = {
            name: {"tv": total_variation(loads[a][name], loads[b][name]),
                   "js_bits": jensen_shannon(loads[a][name], loads[b][name])}  # fmt: skip
            for name in shared
        }
    return out


# -- chunk seams --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeamLimits:
    """Per-joint limits [J] and the control period dt: one period's worth of motion bounds a seam."""

    max_velocity: tuple[float, ...]
    max_acceleration: tuple[float, ...]
    dt: float

    def __post_init__(self) -> None:
        v, a = np.asarray(self.max_velocity, float), np.asarray(self.max_acceleration, float)
        if v.shape != a.shape or v.ndim != 1 or v.size == 0 or not (np.all(v > 0) and np.all(a > 0)):
            raise ValueError(f"limits must be positive vectors of one length, got {list(v)} and {list(a)}")
        if not (math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"dt must be > 0, got {self.dt!r}")

    @property
    def position_bound(self) -> np.ndarray:
        return np.asarray(self.max_velocity, float) * self.dt

    @property
    def velocity_bound(self) -> np.ndarray:
        return np.asarray(self.max_acceleration, float) * self.dt


def sample_trajectory(traj: TrajectoryRecord, t: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(position [J], velocity [J]) of `traj` at absolute time t between its first and last
    point (cubic Hermite with velocities, linear without); None outside that span."""
    times, pos = traj.point_times(), np.asarray(traj.positions, dtype=np.float64)
    if t < times[0] - 1e-9 or t > times[-1] + 1e-9:
        return None
    if len(times) == 1:
        return pos[0], np.zeros(pos.shape[1])
    k = int(np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2))
    h = times[k + 1] - times[k]
    s = (t - times[k]) / h
    p0, p1 = pos[k], pos[k + 1]
    vel = traj.velocities
    if not vel or not vel[k] or not vel[k + 1]:
        return p0 + s * (p1 - p0), (p1 - p0) / h
    v0, v1 = np.asarray(vel[k], float), np.asarray(vel[k + 1], float)
    s2, s3 = s * s, s * s * s
    position = (2 * s3 - 3 * s2 + 1) * p0 + (s3 - 2 * s2 + s) * h * v0 + (-2 * s3 + 3 * s2) * p1 + (s3 - s2) * h * v1
    velocity = ((6 * s2 - 6 * s) * p0 + (-6 * s2 + 6 * s) * p1) / h + (3 * s2 - 4 * s + 1) * v0 + (3 * s2 - 2 * s) * v1
    return position, velocity


def seam_jumps(trajectories: Sequence[TrajectoryRecord]) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
    """([(position jump [J], velocity jump [J]) per seam], number of gaps) for consecutive trajectories."""
    jumps, gaps = [], 0
    for a, b in zip(trajectories, trajectories[1:]):
        t = float(b.point_times()[0])
        if t > a.point_times()[-1] + 1e-9:
            gaps += 1
            continue
        sampled = sample_trajectory(a, t)
        if sampled is None:  # b begins before a's first point: nothing of a was executed yet
            continue
        pb = np.asarray(b.positions[0], dtype=np.float64)
        vb = np.asarray(b.velocities[0], dtype=np.float64) if b.velocities and b.velocities[0] else sampled[1]
        jumps.append((np.abs(pb - sampled[0]), np.abs(vb - sampled[1])))
    return jumps, gaps


def seam_summary(records: Sequence[EpisodeRecord], limits: SeamLimits | None) -> dict[str, object]:
    """Seam counts, the largest position/velocity jumps and, with limits, jump / bound ratios."""
    jumps, gaps = [], 0
    for rec in records:
        j, g = seam_jumps(rec.trajectories)
        jumps += j
        gaps += g
    out: dict[str, object] = {"seams": len(jumps), "gaps": gaps}
    if not jumps:
        return out | {"max_position_jump": math.nan, "max_velocity_jump": math.nan}
    pos, vel = np.stack([p for p, _ in jumps]), np.stack([v for _, v in jumps])  # [S, J] each
    out |= {"max_position_jump": float(pos.max()), "max_velocity_jump": float(vel.max()),
            "mean_position_jump": float(pos.max(axis=1).mean()), "mean_velocity_jump": float(vel.max(axis=1).mean())}
    if limits is not None:
        if pos.shape[1] != len(limits.max_velocity):
            raise ValueError(f"trajectories have {pos.shape[1]} joints, limits {len(limits.max_velocity)}")
        pr, vr = pos / limits.position_bound, vel / limits.velocity_bound  # [S, J]
        out |= {"position_bound": limits.position_bound.tolist(), "velocity_bound": limits.velocity_bound.tolist(),
                "max_position_ratio": float(pr.max()), "max_velocity_ratio": float(vr.max()),
                "within_bounds": float(np.mean((pr.max(axis=1) <= 1.0) & (vr.max(axis=1) <= 1.0)))}  # fmt: skip
    return out
