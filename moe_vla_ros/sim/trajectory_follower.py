"""A pure-numpy trajectory follower with the semantics of ros2_control's joint_trajectory_controller.

Messages mirror trajectory_msgs/JointTrajectory: joint names, points with positions, optional
velocities and a time_from_start, and a start time (header.stamp; 0 = "start now").

Behaviour (the parts of joint_trajectory_controller a policy relies on):
  - the start time is the stamp, or the time of receipt when the stamp is 0;
  - points whose absolute time (start + time_from_start) is already past at receipt are
    dropped; a trajectory with no point left is rejected (TrajectoryError) and the
    follower keeps what it had;
  - before the first point, the setpoint moves from the state at the trajectory start to the
    first point: the given current state when the trajectory starts at receipt, otherwise the
    follower's own setpoint at the (future) start time;
  - between points: cubic Hermite spline when the points carry velocities, linear otherwise
    (the first segment too, starting from the start state's velocity);
  - after the last point the setpoint holds it with zero velocity;
  - a new trajectory replaces the current one from its start time on: until then the old one
    keeps running; anything scheduled at or after the new start time is discarded;
  - joints are matched by name; a trajectory may name a subset (the other joints hold their
    setpoint at the start time); unknown or duplicate names are an error.

All times are in seconds on one clock (e.g. the sim time); the follower never reads a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np


class TrajectoryError(ValueError):
    """A trajectory is malformed or cannot be executed; the follower's state is unchanged."""


def _finite_tuple(name: str, values: Sequence[float]) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    if not all(math.isfinite(v) for v in out):
        raise TrajectoryError(f"{name} must be finite, got {list(out)}")
    return out


@dataclass(frozen=True)
class TrajectoryPoint:
    """One waypoint: positions (and optionally velocities) per joint, reached at time_from_start (s)."""

    positions: tuple[float, ...]
    time_from_start: float
    velocities: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "positions", _finite_tuple("positions", self.positions))
        if self.velocities is not None:
            object.__setattr__(self, "velocities", _finite_tuple("velocities", self.velocities))
            if len(self.velocities) != len(self.positions):
                raise TrajectoryError(
                    f"point has {len(self.positions)} positions but {len(self.velocities)} velocities"
                )
        if not (math.isfinite(self.time_from_start) and self.time_from_start >= 0.0):
            raise TrajectoryError(f"time_from_start must be finite and >= 0, got {self.time_from_start!r}")
        object.__setattr__(self, "time_from_start", float(self.time_from_start))


@dataclass(frozen=True)
class JointTrajectory:
    """A trajectory_msgs/JointTrajectory equivalent; `start_time` 0 means "start at receipt"."""

    joint_names: tuple[str, ...]
    points: tuple[TrajectoryPoint, ...]
    start_time: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.joint_names, str):
            raise TrajectoryError(f"joint_names must be a list of names, got the string {self.joint_names!r}")
        names = tuple(str(n) for n in self.joint_names)
        dupes = sorted({n for n in names if names.count(n) > 1})
        if not names or dupes:
            raise TrajectoryError(f"joint_names must be non-empty and unique, got {list(names)}")
        object.__setattr__(self, "joint_names", names)
        points = tuple(self.points)
        if not points:
            raise TrajectoryError("trajectory has no points")
        object.__setattr__(self, "points", points)
        for i, p in enumerate(points):
            if len(p.positions) != len(names):
                raise TrajectoryError(f"point {i} has {len(p.positions)} positions for {len(names)} joints")
        if len({p.velocities is None for p in points}) != 1:
            raise TrajectoryError("either every point or no point must carry velocities")
        times = [p.time_from_start for p in points]
        if any(b <= a for a, b in zip(times, times[1:])):
            raise TrajectoryError(f"time_from_start must be strictly increasing, got {times}")
        if not (math.isfinite(self.start_time) and self.start_time >= 0.0):
            raise TrajectoryError(f"start_time must be finite and >= 0, got {self.start_time!r}")

    @property
    def has_velocities(self) -> bool:
        return self.points[0].velocities is not None

    @classmethod
    def from_arrays(
        cls,
        joint_names: Sequence[str],
        positions: np.ndarray,
        times_from_start: Sequence[float],
        velocities: np.ndarray | None = None,
        start_time: float = 0.0,
    ) -> "JointTrajectory":
        """Build from positions [N, J], times [N] and optional velocities [N, J]."""
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[0] != len(times_from_start):
            raise TrajectoryError(
                f"positions must be [N, J] with N = {len(times_from_start)} times, got shape {positions.shape}"
            )
        if velocities is not None:
            velocities = np.asarray(velocities, dtype=np.float64)
            if velocities.shape != positions.shape:
                raise TrajectoryError(f"velocities shape {velocities.shape} != positions shape {positions.shape}")
        points = tuple(
            TrajectoryPoint(tuple(positions[i]), float(t), None if velocities is None else tuple(velocities[i]))
            for i, t in enumerate(times_from_start)
        )
        return cls(tuple(joint_names), points, start_time)


@dataclass(frozen=True)
class _Plan:
    """A trajectory resolved against the follower's joints: knots at absolute times."""

    start_time: float
    knot_times: np.ndarray  # [K], knot_times[0] = start_time
    knot_positions: np.ndarray  # [K, J] over all follower joints
    knot_velocities: np.ndarray | None  # [K, J]; None = linear interpolation

    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        times, pos = self.knot_times, self.knot_positions
        if t >= times[-1]:
            return pos[-1].copy(), np.zeros(pos.shape[1])
        k = max(int(np.searchsorted(times, t, side="right")) - 1, 0)
        h = times[k + 1] - times[k]
        s = (t - times[k]) / h
        p0, p1 = pos[k], pos[k + 1]
        if self.knot_velocities is None:
            return p0 + s * (p1 - p0), (p1 - p0) / h
        v0, v1 = self.knot_velocities[k], self.knot_velocities[k + 1]
        s2, s3 = s * s, s * s * s
        position = (2 * s3 - 3 * s2 + 1) * p0 + (s3 - 2 * s2 + s) * h * v0 + (-2 * s3 + 3 * s2) * p1 + (s3 - s2) * h * v1
        velocity = ((6 * s2 - 6 * s) * p0 + (-6 * s2 + 6 * s) * p1) / h + (3 * s2 - 4 * s + 1) * v0 + (3 * s2 - 2 * s) * v1
        return position, velocity


class TrajectoryFollower:
    """Samples position/velocity setpoints over time from the trajectories it receives.

    Args:
        joint_names: the controlled joints, in the order of every vector it returns.
        initial_positions: setpoint held until the first trajectory arrives.
    """

    def __init__(self, joint_names: Sequence[str], initial_positions: Sequence[float]) -> None:
        if isinstance(joint_names, str):
            raise TrajectoryError(f"joint_names must be a list of names, got the string {joint_names!r}")
        self.joint_names = tuple(joint_names)
        if not self.joint_names or len(set(self.joint_names)) != len(self.joint_names):
            raise TrajectoryError(f"joint_names must be non-empty and unique, got {list(self.joint_names)}")
        self._plans: list[_Plan] = []
        self.hold(initial_positions, -math.inf)

    def _vector(self, name: str, values: Sequence[float] | None) -> np.ndarray | None:
        if values is None:
            return None
        out = np.asarray(values, dtype=np.float64)
        if out.shape != (len(self.joint_names),) or not np.all(np.isfinite(out)):
            raise TrajectoryError(f"{name} must be {len(self.joint_names)} finite values, got {out.tolist()}")
        return out

    def hold(self, positions: Sequence[float], now: float) -> None:
        """Drop every trajectory and hold `positions` (all joints) from `now` on."""
        held = self._vector("positions", positions)
        plan = _Plan(now, np.array([now]), held[None, :], None)
        self._plans = [p for p in self._plans if p.start_time < now] + [plan]

    def set_trajectory(
        self,
        trajectory: JointTrajectory,
        now: float,
        current_positions: Sequence[float] | None = None,
        current_velocities: Sequence[float] | None = None,
    ) -> int:
        """Accept `trajectory` received at time `now`; returns the number of points kept.

        `current_positions`/`current_velocities` (all joints, follower order) are the state
        the first segment starts from when the trajectory starts at receipt; when omitted,
        the follower's own setpoint at that time is used (open-loop, continuous setpoints).
        Raises TrajectoryError (and changes nothing) on unknown joints or when every point
        lies in the past.
        """
        unknown = [n for n in trajectory.joint_names if n not in self.joint_names]
        if unknown:
            raise TrajectoryError(f"unknown joint names {unknown}; the follower controls {list(self.joint_names)}")
        current_positions = self._vector("current_positions", current_positions)
        current_velocities = self._vector("current_velocities", current_velocities)
        start = now if trajectory.start_time == 0.0 else trajectory.start_time
        kept = [p for p in trajectory.points if start + p.time_from_start >= now]
        if not kept:
            last = start + trajectory.points[-1].time_from_start
            raise TrajectoryError(f"trajectory ends in the past (last point at {last:.4f} s, received at {now:.4f} s)")
        t0 = max(start, now)
        p0, v0 = self.sample(t0)
        if t0 == now and current_positions is not None:
            p0 = current_positions
            v0 = current_velocities if current_velocities is not None else np.zeros_like(p0)
        columns = np.array([self.joint_names.index(n) for n in trajectory.joint_names])
        times = [t0] + [start + p.time_from_start for p in kept]
        positions = np.repeat(p0[None, :], len(times), axis=0)  # other joints hold p0
        positions[1:, columns] = [p.positions for p in kept]
        velocities = None
        if trajectory.has_velocities:
            velocities = np.zeros_like(positions)
            velocities[0] = v0
            velocities[1:, columns] = [p.velocities for p in kept]
        if times[1] <= t0:  # first kept point exactly at t0: it replaces the start state
            times, positions = times[1:], positions[1:]
            velocities = None if velocities is None else velocities[1:]
        plan = _Plan(t0, np.array(times), positions, velocities)
        # Plans that end up fully superseded before `now` are no longer needed.
        plans = [p for p in self._plans if p.start_time < t0]
        while len(plans) > 1 and plans[1].start_time <= now:
            plans.pop(0)
        self._plans = plans + [plan]
        return len(kept)

    def _plan_at(self, t: float) -> _Plan:
        plan = self._plans[0]
        for candidate in self._plans[1:]:
            if candidate.start_time > t:
                break
            plan = candidate
        return plan

    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(positions [J], velocities [J]) setpoint at time `t`."""
        return self._plan_at(t).sample(t)

    def positions_at(self, t: float) -> np.ndarray:
        """Position setpoint [J] at time `t` (usable as `ArmSim.step(setpoint=...)`)."""
        return self.sample(t)[0]

    def end_time(self) -> float:
        """Time of the last point of the latest trajectory (after it, the setpoint is constant)."""
        return float(self._plans[-1].knot_times[-1])
