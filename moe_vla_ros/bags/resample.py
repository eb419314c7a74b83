"""Time alignment for bag -> dataset conversion: pure numpy functions on sorted time arrays.

All times are int64 nanoseconds on one clock. Each function returns, for a grid of query
times, the value it samples and (where sampling can fail) which queries are valid, so the
converter can cut episodes where data is missing instead of inventing it.

- `interpolate_joint_positions`: linear interpolation between the two joint states around each
  query; invalid outside the recorded range or across a gap longer than `max_gap_ns`.
- `nearest_within`: index of the closest sample (e.g. an image) within a slop, or -1.
- `latest_at_or_before`: index of the last event at or before each query (instructions,
  reasoning traces), or -1.
- `sample_trajectories`: the joint-position target an ros2_control joint_trajectory_controller
  would be tracking at each query time, given the JointTrajectory commands it received.
- `valid_runs`: maximal runs of consecutive valid steps (the episodes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def _as_times(name: str, times: np.ndarray) -> np.ndarray:
    times = np.asarray(times, dtype=np.int64)
    if times.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {times.shape}")
    if times.size > 1 and np.any(np.diff(times) < 0):
        raise ValueError(f"{name} must be sorted ascending")
    return times


def interpolate_joint_positions(
    times_ns: np.ndarray, positions: np.ndarray, query_ns: np.ndarray, max_gap_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    """Joint positions at `query_ns` by linear interpolation.

    Args:
        times_ns: int64 [N] sorted stamps of the joint states.
        positions: float [N, J] positions in contract order.
        query_ns: int64 [K] query times.
        max_gap_ns: the two bracketing samples may be at most this far apart.

    Returns:
        (float64 [K, J] positions, NaN where invalid; bool [K] valid).
    """
    times = _as_times("times_ns", times_ns)
    query = np.asarray(query_ns, dtype=np.int64)
    values = np.asarray(positions, dtype=np.float64)  # [N, J]
    out = np.full((query.size, values.shape[1] if values.ndim == 2 else 0), np.nan)  # [K, J]
    if times.size == 0 or query.size == 0:
        return out, np.zeros(query.size, dtype=bool)
    after = np.searchsorted(times, query, side="left")  # first sample >= query
    exact = (after < times.size) & (times[np.minimum(after, times.size - 1)] == query)
    before = np.where(exact, after, after - 1)  # last sample <= query
    valid = (before >= 0) & (after < times.size)
    b, a = np.clip(before, 0, times.size - 1), np.clip(after, 0, times.size - 1)
    span = (times[a] - times[b]).astype(np.float64)  # [K]
    valid &= span <= max_gap_ns
    weight = np.divide(query - times[b], span, out=np.zeros(query.size), where=span > 0)[:, None]  # [K, 1]
    mixed = values[b] * (1.0 - weight) + values[a] * weight  # [K, J]
    out[valid] = mixed[valid]
    return out, valid


def nearest_within(times_ns: np.ndarray, query_ns: np.ndarray, slop_ns: int) -> np.ndarray:
    """Index of the sample nearest to each query if within `slop_ns`, else -1: int64 [K]."""
    times = _as_times("times_ns", times_ns)
    query = np.asarray(query_ns, dtype=np.int64)
    if times.size == 0:
        return np.full(query.size, -1, dtype=np.int64)
    right = np.clip(np.searchsorted(times, query, side="left"), 0, times.size - 1)  # [K]
    left = np.clip(right - 1, 0, times.size - 1)
    pick_left = np.abs(query - times[left]) <= np.abs(times[right] - query)
    index = np.where(pick_left, left, right)
    return np.where(np.abs(times[index] - query) <= slop_ns, index, -1).astype(np.int64)


def latest_at_or_before(times_ns: np.ndarray, query_ns: np.ndarray) -> np.ndarray:
    """Index of the last event with time <= each query, or -1: int64 [K]."""
    times = _as_times("times_ns", times_ns)
    return (np.searchsorted(times, np.asarray(query_ns, dtype=np.int64), side="right") - 1).astype(np.int64)


@dataclass(frozen=True)
class TrajectoryCommand:
    """One JointTrajectory as the controller sees it, in contract joint order.

    Attributes:
        start_ns: when the trajectory starts (header.stamp, or receive time when the stamp is 0).
        offsets_ns: int64 [P] time_from_start of each point, ascending.
        positions: float64 [P, J] target positions of each point.
    """

    start_ns: int
    offsets_ns: np.ndarray
    positions: np.ndarray


def sample_trajectories(
    commands: list[TrajectoryCommand],
    query_ns: np.ndarray,
    state_at: Callable[[int], np.ndarray | None],
) -> tuple[np.ndarray, np.ndarray]:
    """The target each query time falls on, following joint_trajectory_controller semantics.

    The active command at time t is the one with the latest start <= t (a newer trajectory
    replaces the old one from its start on). Within it the target moves linearly between
    points; before the first point it moves from the joint state at the start (`state_at`)
    to the first point; after the last point it holds the last point.

    Returns:
        (float64 [K, J] targets, NaN where no command is active; bool [K] valid).
    """
    query = np.asarray(query_ns, dtype=np.int64)
    if not commands:
        return np.full((query.size, 0), np.nan), np.zeros(query.size, dtype=bool)
    ordered = sorted(commands, key=lambda c: c.start_ns)  # stable: later receipt wins ties
    starts = np.array([c.start_ns for c in ordered], dtype=np.int64)
    which = latest_at_or_before(starts, query)  # [K]
    num_joints = ordered[0].positions.shape[1]
    out = np.full((query.size, num_joints), np.nan)  # [K, J]
    valid = np.zeros(query.size, dtype=bool)
    for c in np.unique(which[which >= 0]):
        cmd = ordered[int(c)]
        rows = np.flatnonzero(which == c)
        offsets, points = cmd.offsets_ns.astype(np.float64), cmd.positions  # [P], [P, J]
        if offsets.size == 0:
            continue
        if offsets[0] > 0:
            start_state = state_at(cmd.start_ns)
            if start_state is not None:
                offsets = np.concatenate([[0.0], offsets])
                points = np.vstack([start_state[None, :], points])
        t = (query[rows] - cmd.start_ns).astype(np.float64)  # [R]
        for j in range(num_joints):
            out[rows, j] = np.interp(t, offsets, points[:, j])  # clamps: holds the ends
        valid[rows] = True
    return out, valid


def valid_runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index ranges of the maximal runs of True in a bool [K] array."""
    flags = np.concatenate([[False], np.asarray(valid, dtype=bool), [False]]).astype(np.int8)
    edges = np.diff(flags)
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))
