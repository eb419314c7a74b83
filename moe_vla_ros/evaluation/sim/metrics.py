"""Metrics of closed-loop episodes: success, time, latency, expert usage, chunk seams.

Pure numpy on the records of records.py (no rclpy, no matplotlib).

Expert usage: the mean `expert_load` vector (fraction of routed token slots per expert) of
every MoE layer over a task family's chunks, and how much two families differ per layer:
total variation distance TV = 1/2 sum |p - q| (0 = same loads, 1 = disjoint experts) and
Jensen-Shannon divergence in bits (0..1).

Failures by phase: where the policy believed it was when a failed episode ended, read from
its last reasoning trace (`phase_of_trace`; "unreadable" when no template writes the trace,
"no trace" when there was none). "push failed, last trace: pushed" says the policy thought it
was done; "approach" says it never got to the cube. How close failures came: the shortfall at
the episode's end (TaskMonitor.shortfall_m: metres still missing to success), median and
maximum per family: "reach failed 1 cm short" is a precision problem, "20 cm" a wrong target.

Chunk seams: the one seam metric of evaluation/seams.py, over every episode's trajectories
(pooled), with the robot's limits when known.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations

import numpy as np

from moe_vla_ros.evaluation.seams import DEFAULT_WINDOW_STEPS, SeamJumps, SeamLimits, seam_jumps, summarize_seams
from moe_vla_ros.evaluation.sim.records import EpisodeRecord, LatencyRecord, TrajectoryRecord
from moe_vla_ros.runtime.usage_distance import jensen_shannon, total_variation
from moe_vla_ros.sim.reasoning_templates import phase_of_trace

OVERALL = "overall"
NO_TRACE = "no trace"
UNREADABLE = "unreadable"


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


def last_phase(record: EpisodeRecord) -> str:
    """The phase named by the episode's last reasoning trace, "unreadable" or "no trace"."""
    if not record.traces:
        return NO_TRACE
    return phase_of_trace(record.traces[-1].text) or UNREADABLE


def failure_phases(records: Iterable[EpisodeRecord]) -> dict[str, dict[str, int]]:
    """{family: {last phase: failed episodes}}, families in first-seen order, phases most common first."""
    table: dict[str, dict[str, int]] = {}
    for r in records:
        if not r.success:
            counts = table.setdefault(r.family, {})
            phase = last_phase(r)
            counts[phase] = counts.get(phase, 0) + 1
    return {f: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))) for f, c in table.items()}


def failure_shortfalls(records: Iterable[EpisodeRecord]) -> dict[str, dict[str, float | int]]:
    """{family: {count, median_m, max_m}} of the failed episodes' shortfall at their end
    (episodes without a measured shortfall are left out; families in first-seen order)."""
    values: dict[str, list[float]] = {}
    for r in records:
        if not r.success and r.shortfall_m is not None:
            values.setdefault(r.family, []).append(float(r.shortfall_m))
    return {f: {"count": len(v), "median_m": float(np.median(v)), "max_m": float(np.max(v))} for f, v in values.items()}


# -- latency ------------------------------------------------------------------------------------
def distribution_ms(seconds: Sequence[float]) -> dict[str, float]:
    """count, mean, p50, p95 and max of durations given in seconds, in milliseconds."""
    x = np.asarray(seconds, dtype=np.float64) * 1e3
    if x.size == 0:
        return {"count": 0, "mean_ms": math.nan, "p50_ms": math.nan, "p95_ms": math.nan, "max_ms": math.nan}
    return {"count": int(x.size), "mean_ms": float(x.mean()), "p50_ms": float(np.percentile(x, 50)),
            "p95_ms": float(np.percentile(x, 95)), "max_ms": float(x.max())}


def inference_latency(records: Sequence[EpisodeRecord]) -> dict[str, float]:
    """The policy node's own inference latency: its last PolicyStatus report of the run (the
    node summarises a rolling window of recent inferences, cold start excluded)."""
    reports: list[LatencyRecord] = [r for rec in records for r in rec.latency if r.count > 0]
    if not reports:
        return distribution_ms([])
    last = max(reports, key=lambda r: (r.stamp_s, r.count))
    return {"count": last.count, "mean_ms": last.mean_ms, "p50_ms": last.p50_ms, "p95_ms": last.p95_ms,
            "max_ms": last.max_ms}


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
                   "js_bits": jensen_shannon(loads[a][name], loads[b][name])}
            for name in shared
        }
    return out


# -- chunk seams --------------------------------------------------------------------------------
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


def _initial_position(record: EpisodeRecord) -> np.ndarray | None:
    """Measured joint positions [J] when the first trajectory took over (None: nothing measured)."""
    if not record.trajectories or not record.joint_times:
        return None
    t = record.trajectories[0].command()
    when = max(t.start_s, t.received_s)
    q = np.asarray(record.joint_positions, dtype=np.float64).reshape(len(record.joint_times), -1)  # [T, J]
    return np.array([np.interp(when, record.joint_times, q[:, j]) for j in range(q.shape[1])])


def control_period(records: Sequence[EpisodeRecord]) -> float | None:
    """The spacing of the trajectories' points (one control period; None without two points)."""
    steps = [d for rec in records for t in rec.trajectories for d in np.diff(t.time_from_start)]
    return float(np.median(steps)) if steps else None


def seam_summary(records: Sequence[EpisodeRecord], period_s: float | None, limits: SeamLimits | None = None,
                 window: int = DEFAULT_WINDOW_STEPS) -> dict[str, object]:
    """The chunk-seam metric (evaluation/seams.py) over every episode's trajectories, pooled;
    `period_s` None: `control_period(records)`."""
    period_s = period_s or control_period(records)
    if period_s is None:
        return summarize_seams(SeamJumps.pooled([]), limits)
    runs = [seam_jumps([t.command() for t in rec.trajectories], period_s, window, _initial_position(rec))
            for rec in records]
    return summarize_seams(SeamJumps.pooled(runs), limits)
