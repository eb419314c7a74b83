"""A pure-numpy model of ros2_control's joint_trajectory_controller (JTC): what it accepts, how a
new trajectory replaces the running one, how it samples setpoints and when it holds position.

Messages mirror trajectory_msgs/JointTrajectory: joint names, points with positions and optional
velocities/accelerations and a time_from_start, and a start time (header.stamp; 0 = "start on
receipt"). Upstream sources and the acceptance rules: control/jtc_rules.py. Execution, from
``JointTrajectoryController::update`` and ``trajectory.cpp``:

  - acceptance: `set_trajectory` refuses (TrajectoryError, state unchanged) exactly what
    ``validate_trajectory_msg`` refuses (`check_trajectory`): an empty trajectory, a partial
    goal unless allowed, unknown joints, a last point still moving unless allowed, a stamped
    trajectory that ends before the receipt time, ... It also refuses what JTC accepts but
    cannot execute sensibly (duplicate names, non-finite values, accelerations without
    velocities): `JtcVerdict.warnings`.
  - replacement: an accepted trajectory replaces the running one at once (the next control
    cycle), whatever its stamp. ``fill_partial_goal`` completes a partial goal with the last
    command (velocities/accelerations 0), ``sort_to_local_joint_order`` matches names.
  - the first segment (``set_point_before_trajectory_msg``) starts from the state at receipt:
    the measured positions/velocities, or the last command with
    ``interpolate_from_desired_state`` (the sim's ``open_loop_control``); velocities or
    accelerations the state lacks but the first point has count as 0. It ends at the first
    point, due at start + time_from_start[0], start = the stamp, or the receipt time when the
    stamp is 0. A future stamp therefore makes a slow first segment from the state at receipt
    (the old trajectory does NOT run until the stamp), and when the first point is already due
    at receipt the setpoint jumps into the segment that contains now.
  - ``Trajectory::sample`` / ``interpolate_between_points`` (``interpolation_method: splines``):
    per segment, linear when an end lacks velocities, cubic with velocities at both ends,
    quintic with velocities and accelerations at both ends (and 0 commanded when both ends have
    accelerations but not velocities - refused here, see above); past the last point the
    setpoint is the last point (missing velocities 0). ``none``: the state at receipt until the
    first point, then each segment's end point.
  - ``update`` (topic interface, no action goal): while a trajectory runs (not holding), a
    position error |desired - measured| above ``constraints.<joint>.trajectory`` before the last
    point (or at the first sample) makes JTC hold the measured position ("Holding position due
    to state tolerance violation"); after the end, an error above ``constraints.<joint>.goal``
    for longer than ``constraints.goal_time`` (when > 0) too ("Exceeded goal_time_tolerance:
    holding position..."), and so does ``cmd_timeout`` after the end ("Aborted due to command
    timeout"). A tolerance of 0 is not checked. A hold is one point at the measured positions.

All times are in seconds on one clock (e.g. the sim time); the follower never reads a clock.
`positions_at`/`sample` give the setpoint without tolerance checks (open-loop use); `update`
is the controller cycle with the measured state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from moe_vla_ros.control.jtc_rules import JtcParams, JtcVerdict, check_trajectory
from moe_vla_ros.errors import BadInputError


class TrajectoryError(BadInputError):
    """A trajectory the controller refuses (or that is malformed); the follower is unchanged.

    `rule` names the refusing joint_trajectory_controller rule (control/jtc_rules.py), or
    "malformed" / "warning" for what the follower refuses beyond them.
    """

    def __init__(self, message: str, rule: str = "malformed") -> None:
        super().__init__(message)
        self.rule = rule


def _finite_tuple(name: str, values: Sequence[float]) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    if not all(math.isfinite(v) for v in out):
        raise TrajectoryError(f"{name} must be finite, got {list(out)}")
    return out


@dataclass(frozen=True)
class TrajectoryPoint:
    """One waypoint: positions (and optionally velocities, accelerations) per joint, reached at
    time_from_start (s, finite; only the order of the times is checked, as JTC does)."""

    positions: tuple[float, ...]
    time_from_start: float
    velocities: tuple[float, ...] | None = None
    accelerations: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "positions", _finite_tuple("positions", self.positions))
        for name in ("velocities", "accelerations"):
            values = getattr(self, name)
            if values is not None:
                values = _finite_tuple(name, values)
                if len(values) != len(self.positions):
                    raise TrajectoryError(f"point has {len(self.positions)} positions but {len(values)} {name}")
                object.__setattr__(self, name, values)
        if not math.isfinite(self.time_from_start):
            raise TrajectoryError(f"time_from_start must be finite, got {self.time_from_start!r}")
        object.__setattr__(self, "time_from_start", float(self.time_from_start))


@dataclass(frozen=True)
class JointTrajectory:
    """A trajectory_msgs/JointTrajectory equivalent; `start_time` 0 means "start on receipt".

    Validation here is what no controller configuration changes (messages match the
    joint_trajectory_controller texts); the parameter-dependent rules run in `set_trajectory`.
    """

    joint_names: tuple[str, ...]
    points: tuple[TrajectoryPoint, ...]
    start_time: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.joint_names, str):
            raise TrajectoryError(f"joint_names must be a list of names, got the string {self.joint_names!r}")
        names = tuple(str(n) for n in self.joint_names)
        if not names:
            raise TrajectoryError("Empty joint names on incoming trajectory.", "empty_joint_names")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise TrajectoryError(f"joint_names must be unique, got {list(names)}", "warning")
        object.__setattr__(self, "joint_names", names)
        points = tuple(self.points)
        if not points:
            raise TrajectoryError("Empty trajectory received.", "empty_trajectory")
        object.__setattr__(self, "points", points)
        for i, p in enumerate(points):
            if len(p.positions) != len(names):
                raise TrajectoryError(f"Mismatch between joint_names size ({len(names)}) and positions "
                                      f"({len(p.positions)}) at point #{i}.", "size_mismatch")
        times = [p.time_from_start for p in points]
        for i in range(1, len(times)):
            if times[i] <= times[i - 1]:
                raise TrajectoryError(f"Time between points {i - 1} and {i} is not strictly increasing, it is "
                                      f"{times[i - 1]:f} and {times[i]:f} respectively", "time_not_increasing")
        if not math.isfinite(self.start_time):
            raise TrajectoryError(f"start_time must be finite, got {self.start_time!r}")
        object.__setattr__(self, "start_time", float(self.start_time))

    @property
    def has_velocities(self) -> bool:
        return all(p.velocities is not None for p in self.points)

    def verdict(self, params: JtcParams, now: float) -> JtcVerdict:
        """joint_trajectory_controller's verdict on this trajectory received at `now`."""
        return check_trajectory(
            self.joint_names, self.start_time, [p.time_from_start for p in self.points],
            [p.positions for p in self.points], [p.velocities or () for p in self.points],
            [p.accelerations or () for p in self.points], params, now)

    @classmethod
    def from_arrays(
        cls,
        joint_names: Sequence[str],
        positions: np.ndarray,
        times_from_start: Sequence[float],
        velocities: np.ndarray | None = None,
        start_time: float = 0.0,
        accelerations: np.ndarray | None = None,
    ) -> JointTrajectory:
        """Build from positions [N, J], times [N] and optional velocities/accelerations [N, J]."""
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[0] != len(times_from_start):
            raise TrajectoryError(
                f"positions must be [N, J] with N = {len(times_from_start)} times, got shape {positions.shape}"
            )
        extra = {}
        for name, values in (("velocities", velocities), ("accelerations", accelerations)):
            if values is not None:
                values = np.asarray(values, dtype=np.float64)
                if values.shape != positions.shape:
                    raise TrajectoryError(f"{name} shape {values.shape} != positions shape {positions.shape}")
            extra[name] = values
        def row(values: np.ndarray | None, i: int) -> tuple[float, ...] | None:
            return None if values is None else tuple(values[i])

        points = tuple(
            TrajectoryPoint(tuple(positions[i]), float(t), row(extra["velocities"], i), row(extra["accelerations"], i))
            for i, t in enumerate(times_from_start)
        )
        return cls(tuple(joint_names), points, start_time)


@dataclass
class _State:
    """A JointTrajectoryPoint over all follower joints; None = the field is empty."""

    positions: np.ndarray  # [J]
    velocities: np.ndarray | None = None  # [J]
    accelerations: np.ndarray | None = None  # [J]


def _coefficients(a: _State, b: _State, duration: float, has_vel: bool, has_acc: bool) -> np.ndarray | None:
    """Polynomial coefficients [n + 1, J] (position = sum_i c_i s^i) of ``interpolate_between_points``:
    linear, cubic or quintic by the fields of both ends; None where upstream computes nothing
    (both ends with accelerations but not velocities: it commands 0)."""
    p0, p1 = a.positions, b.positions  # [J]
    T = duration
    if not has_vel and not has_acc:
        c1 = (p1 - p0) / T if T != 0.0 else np.zeros_like(p0)
        return np.stack([p0, c1])
    if has_vel and not has_acc:
        v0, v1 = a.velocities, b.velocities
        c2 = c3 = np.zeros_like(p0)
        if T != 0.0:
            c2 = (-3.0 * p0 + 3.0 * p1 - 2.0 * v0 * T - v1 * T) / T**2
            c3 = (2.0 * p0 - 2.0 * p1 + v0 * T + v1 * T) / T**3
        return np.stack([p0, v0, c2, c3])
    if has_vel and has_acc:
        v0, v1, a0, a1 = a.velocities, b.velocities, a.accelerations, b.accelerations
        c3 = c4 = c5 = np.zeros_like(p0)
        if T != 0.0:
            c3 = (-20.0 * p0 + 20.0 * p1 - 3.0 * a0 * T**2 + a1 * T**2 - 12.0 * v0 * T - 8.0 * v1 * T) / (2.0 * T**3)
            c4 = (30.0 * p0 - 30.0 * p1 + 3.0 * a0 * T**2 - 2.0 * a1 * T**2 + 16.0 * v0 * T + 14.0 * v1 * T) / (
                2.0 * T**4)
            c5 = (-12.0 * p0 + 12.0 * p1 - a0 * T**2 + a1 * T**2 - 6.0 * v0 * T - 6.0 * v1 * T) / (2.0 * T**5)
        return np.stack([p0, v0, 0.5 * a0, c3, c4, c5])
    return None


def _evaluate(coefficients: np.ndarray | None, s: float, dim: int) -> _State:
    """Position, velocity, acceleration [J] of the polynomial at `s` seconds into the segment."""
    if coefficients is None:
        zeros = np.zeros(dim)
        return _State(zeros, zeros.copy(), zeros.copy())
    n = coefficients.shape[0]
    powers = s ** np.arange(n)  # [n]: s^0 .. s^(n-1)
    orders = np.arange(n)
    position = powers @ coefficients  # [J]
    velocity = (orders[1:] * powers[:-1]) @ coefficients[1:]
    acceleration = (orders[2:] * orders[1:-1] * powers[:-2]) @ coefficients[2:] if n > 2 else np.zeros(dim)
    return _State(position, velocity, acceleration)


class _Segment:
    """One segment of ``interpolate_between_points`` from (t_a, a) to (t_b, b), coefficients cached."""

    def __init__(self, t_a: float, a: _State, t_b: float, b: _State) -> None:
        self.t_a, self.a, self.b, self.duration = t_a, a, b, t_b - t_a
        self.has_vel = a.velocities is not None and b.velocities is not None
        self.has_acc = a.accelerations is not None and b.accelerations is not None
        self.coefficients = _coefficients(a, b, self.duration, self.has_vel, self.has_acc)

    def sample(self, t: float) -> _State:
        so_far = t - self.t_a
        if 0.0 <= so_far <= self.duration:
            return _evaluate(self.coefficients, so_far, len(self.a.positions))
        # Outside the segment upstream clamps the time and interpolates linearly.
        so_far = min(max(so_far, 0.0), self.duration)
        return _evaluate(_coefficients(self.a, self.b, self.duration, False, False), so_far, len(self.a.positions))


@dataclass
class _Plan:
    """An accepted trajectory resolved against the follower's joints (``Trajectory``)."""

    receipt: float  # time_before_traj_msg_: when it replaced the previous plan
    start: float  # trajectory_start_time_ (the stamp, or the receipt time for stamp 0)
    before: _State  # state_before_traj_msg_
    times: np.ndarray  # [K] absolute time of each point
    points: list[_State]  # K points over all joints
    interpolation: str = "splines"
    is_hold: bool = False
    sampled: bool = False
    segments: dict[int, _Segment] = field(default_factory=dict)  # cache: segment index -> polynomial

    def sample(self, t: float) -> tuple[_State, int] | None:
        """(setpoint, start segment) at `t`; segment -1 before the first point, K-1 after the
        last; None before the receipt (``sample`` returns false: no command is written)."""
        if t < self.receipt:
            return None
        times, points = self.times, self.points
        if t < times[0]:
            if self.interpolation == "none":
                return self.before, -1
            return self._segment(-1).sample(t), -1
        k = int(np.searchsorted(times, t, side="right")) - 1  # times[k] <= t < times[k + 1]
        if k < len(times) - 1:
            if self.interpolation == "none":
                return points[k + 1], k
            return self._segment(k).sample(t), k
        last = points[-1]
        zeros = np.zeros_like(last.positions)
        return _State(last.positions, zeros if last.velocities is None else last.velocities,
                      zeros if last.accelerations is None else last.accelerations), k

    def _segment(self, k: int) -> _Segment:
        segment = self.segments.get(k)
        if segment is None:
            if k < 0:
                segment = _Segment(self.receipt, self.before, float(self.times[0]), self.points[0])
            else:
                segment = _Segment(float(self.times[k]), self.points[k], float(self.times[k + 1]), self.points[k + 1])
            self.segments[k] = segment
        return segment

    def segment_time(self, segment: int) -> float:
        """Absolute time of the point that starts `segment` (the first point before it)."""
        return float(self.times[max(segment, 0)])


class TrajectoryFollower:
    """joint_trajectory_controller over plain arrays: accepts trajectories, samples setpoints.

    Args:
        joint_names: the controlled joints, in the order of every vector it returns.
        initial_positions: setpoint held until the first trajectory arrives.
        params: the controller parameters (``joints`` must equal `joint_names`); None: the
            upstream defaults for these joints.
    """

    def __init__(self, joint_names: Sequence[str], initial_positions: Sequence[float],
                 params: JtcParams | None = None) -> None:
        if isinstance(joint_names, str):
            raise TrajectoryError(f"joint_names must be a list of names, got the string {joint_names!r}")
        self.joint_names = tuple(joint_names)
        if not self.joint_names or len(set(self.joint_names)) != len(self.joint_names):
            raise TrajectoryError(f"joint_names must be non-empty and unique, got {list(self.joint_names)}")
        self.params = params or JtcParams(joints=self.joint_names)
        if self.params.joints != self.joint_names:
            raise TrajectoryError(f"params.joints {list(self.params.joints)} != joint_names {list(self.joint_names)}")
        self._path_tolerance = np.asarray(self.params.trajectory_tolerances)  # [J], 0 = not checked
        self._goal_tolerance = np.asarray(self.params.goal_tolerances)  # [J]
        self._checks_tolerances = bool(np.any(self._path_tolerance > 0.0) or np.any(self._goal_tolerance > 0.0))
        self._plans: list[_Plan] = []
        self._holding = True  # on_activate: the controller starts holding
        self._events: list[tuple[float, str]] = []
        self.hold(initial_positions, -math.inf)
        self._last_command = self._plans[-1].points[0].positions.copy()  # [J]

    # ------------------------------------------------------------------ input
    def _vector(self, name: str, values: Sequence[float] | None) -> np.ndarray | None:
        if values is None:
            return None
        out = np.asarray(values, dtype=np.float64)
        if out.shape != (len(self.joint_names),) or not np.all(np.isfinite(out)):
            raise TrajectoryError(f"{name} must be {len(self.joint_names)} finite values, got {out.tolist()}")
        return out

    def _add(self, plan: _Plan) -> None:
        # Plans superseded before this one's receipt are no longer needed (sample() at earlier
        # times keeps the newest of them).
        older = [p for p in self._plans if p.receipt < plan.receipt]
        self._plans = older[-1:] + [plan]

    def hold(self, positions: Sequence[float], now: float) -> None:
        """``set_hold_position``: replace the running trajectory by one point at `positions`
        (all joints) from `now` on; tolerances are not checked while holding."""
        held = self._vector("positions", positions)
        point = _State(held, np.zeros_like(held), None)
        self._add(_Plan(now, now, point, np.array([now]), [point], self.params.interpolation_method, is_hold=True))
        self._holding = True

    def check(self, trajectory: JointTrajectory, now: float) -> JtcVerdict:
        """joint_trajectory_controller's verdict on `trajectory` received at `now` (no change)."""
        return trajectory.verdict(self.params, now)

    def set_trajectory(
        self,
        trajectory: JointTrajectory,
        now: float,
        current_positions: Sequence[float] | None = None,
        current_velocities: Sequence[float] | None = None,
    ) -> None:
        """Receive `trajectory` at time `now` (``topic_callback`` + the next ``update``).

        `current_positions`/`current_velocities` (all joints, follower order) are the measured
        state the first segment starts from; without them, or with
        ``interpolate_from_desired_state``, it starts from the follower's own last command.
        Raises TrajectoryError (and changes nothing) on whatever the controller refuses.
        """
        verdict = self.check(trajectory, now)
        if not verdict.accepted:
            raise TrajectoryError(verdict.reason, verdict.rule)
        if verdict.warnings:
            raise TrajectoryError(f"joint_trajectory_controller would accept this trajectory but not execute it "
                                  f"as meant: {'; '.join(verdict.warnings)}", "warning")
        current_positions = self._vector("current_positions", current_positions)
        current_velocities = self._vector("current_velocities", current_velocities)
        last, _ = self._command_state(now)
        # fill_partial_goal + sort_to_local_joint_order: columns by name, missing joints keep the
        # last command with velocity/acceleration 0.
        columns = np.array([self.joint_names.index(n) for n in trajectory.joint_names])

        def full(values: Sequence[float] | None, fill: np.ndarray) -> np.ndarray | None:
            if values is None:
                return None
            out = fill.copy()  # [J]
            out[columns] = values
            return out

        zeros = np.zeros(len(self.joint_names))
        points = [_State(full(p.positions, last.positions), full(p.velocities, zeros), full(p.accelerations, zeros))
                  for p in trajectory.points]
        # set_point_before_trajectory_msg: measured state (velocities only with a velocity state
        # interface) or the last command; fields the first point has but the state lacks are 0.
        if current_positions is not None and not self.params.interpolate_from_desired_state:
            has_velocity_state = "velocity" in self.params.state_interfaces
            before = _State(current_positions, current_velocities if has_velocity_state else None, None)
            if has_velocity_state and before.velocities is None:
                before.velocities = zeros.copy()
        else:
            before = _State(last.positions.copy(), last.velocities, last.accelerations)
        if before.velocities is None and points[0].velocities is not None:
            before.velocities = zeros.copy()
        if before.accelerations is None and points[0].accelerations is not None:
            before.accelerations = zeros.copy()
        start = now if trajectory.start_time == 0.0 else trajectory.start_time
        times = np.array([start + p.time_from_start for p in trajectory.points])  # [K]
        self._add(_Plan(now, start, before, times, points, self.params.interpolation_method))
        self._holding = False

    # ------------------------------------------------------------------ output
    def _plan_at(self, t: float) -> _Plan:
        plan = self._plans[0]
        for candidate in self._plans[1:]:
            if candidate.receipt > t:
                break
            plan = candidate
        return plan

    def _command_state(self, t: float) -> tuple[_State, int]:
        sampled = self._plan_at(t).sample(t)
        if sampled is None:  # before the first plan's receipt: its state
            plan = self._plans[0]
            return plan.points[0], -1
        return sampled

    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(positions [J], velocities [J]) setpoint at time `t`, without tolerance checks."""
        state, _ = self._command_state(t)
        velocities = state.velocities if state.velocities is not None else np.zeros_like(state.positions)
        return state.positions.copy(), velocities.copy()

    def positions_at(self, t: float) -> np.ndarray:
        """Position setpoint [J] at time `t` (usable as `ArmSim.step(setpoint=...)`)."""
        return self.sample(t)[0]

    def update(self, t: float, measured_positions: Sequence[float]) -> np.ndarray:
        """One controller cycle at time `t` with the measured positions [J]: the position command [J].

        Checks the path/goal tolerances and cmd_timeout of `params` like ``update`` does on the
        topic interface; a violation replaces the trajectory by a hold at `measured_positions`
        and is recorded (see `pop_events`).
        """
        measured = np.asarray(measured_positions, dtype=np.float64)  # [J]
        if measured.shape != (len(self.joint_names),):
            raise TrajectoryError(f"measured_positions must be {len(self.joint_names)} values, got {measured.tolist()}")
        plan = self._plan_at(t)
        sampled = plan.sample(t)
        if sampled is None:
            return self._last_command.copy()
        desired, segment = sampled
        first_sample, plan.sampled = not plan.sampled, True
        p = self.params
        if not self._holding and not plan.is_hold:
            before_last_point = segment < len(plan.times) - 1
            time_difference = t - plan.segment_time(segment)  # < 0 before the first point
            timeout = p.effective_cmd_timeout
            if not before_last_point and timeout > 0.0 and time_difference > timeout:
                self._abort(t, measured, "Aborted due to command timeout")
            elif self._checks_tolerances:
                error = np.abs(desired.positions - measured)  # [J]
                path_tol, goal_tol = self._path_tolerance, self._goal_tolerance
                if (before_last_point or first_sample) and np.any((path_tol > 0.0) & (error > path_tol)):
                    self._abort(t, measured, "Holding position due to state tolerance violation: "
                                + self._describe(error, path_tol))
                    return self._last_command.copy()
                outside_goal = not before_last_point and np.any((goal_tol > 0.0) & (error > goal_tol))
                if outside_goal and p.goal_time != 0.0 and time_difference > p.goal_time:
                    self._abort(t, measured, "Exceeded goal_time_tolerance: holding position... "
                                + self._describe(error, goal_tol))
                    return self._last_command.copy()
        self._last_command = desired.positions.copy()
        return self._last_command.copy()

    def _describe(self, error: np.ndarray, tolerance: np.ndarray) -> str:
        bad = [f"{n} |error| {e:.4f} > {tol:g}" for n, e, tol in zip(self.joint_names, error, tolerance)
               if tol > 0.0 and e > tol]
        return ", ".join(bad)

    def _abort(self, t: float, measured: np.ndarray, text: str) -> None:
        self._events.append((t, text))
        self.hold(measured, t)

    def pop_events(self) -> list[tuple[float, str]]:
        """(time, joint_trajectory_controller log text) of the holds `update` decided since the last call."""
        events, self._events = self._events, []
        return events

    @property
    def holding(self) -> bool:
        """True while holding position (at start, after `hold` or a tolerance/timeout abort)."""
        return self._holding

    def end_time(self) -> float:
        """Time of the last point of the latest trajectory (after it, the setpoint is constant)."""
        return float(self._plans[-1].times[-1])
