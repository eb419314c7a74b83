"""Joint limits and the filter every commanded chunk passes through before it reaches the robot.

:class:`SafetyFilter` takes the current joint state and a chunk of position targets [H, J],
spaced ``dt`` apart, and returns positions that respect, at every step:

* position limits: lower <= q <= upper (targets are clamped first);
* velocity limits: |q_i - q_{i-1}| / dt <= max_velocity, starting from the current position,
  so the first step cannot jump;
* acceleration limits, on the spline joint_trajectory_controller executes: the cubic through
  the points with central-difference point velocities (the velocities returned) keeps
  |acceleration| <= max_acceleration in every segment, from the current position and its
  velocity on. With w_i the velocity of the interval ending at step i and d_i = w_i - w_(i-1),
  a segment's end accelerations are (2 d_i - d_(i+1)) / dt and (2 d_(i+1) - d_i) / dt; the filter
  bounds both and |d_i| <= 2/3 max_acceleration * dt (so the acceleration can always be turned
  around), and the first step from the current velocity by FIRST_STEP_SHARE of a * dt;
* velocity on the spline too: each segment's velocity (a quadratic) stays within the limit,
  cruise a_max * dt / 24 below it (braking from the limit would lift a segment above it);
* braking room: the velocity towards a position limit (and onto a target) never exceeds what
  the spline-limited stop (simulated step by step) can stop before it.

Priorities when they cannot all hold (only from a bad start state, e.g. a measured velocity
above its limit close to a position limit): position, then velocity, then acceleration; the
report flags such joints in ``acceleration_overridden``. A chunk with NaN/inf, or a current
position further outside its limits than ``start_tolerance_rad``, is rejected whole.

Tracking: each step heads for its target as fast as the limits allow while keeping room to
brake onto the target path without overshooting it (it may settle back by up to ~1 cm); a chunk
whose changes stay within these limits passes unchanged. Cost: ~20-40 ms per 16-step chunk of 7
joints (the braking simulations), ~1 ms before the spline limits.

Every limit is optional (:class:`SafetyLimits`): the filter applies whatever is configured,
e.g. velocity and acceleration limits on a robot without position limits.

:meth:`SafetyFilter.filter` with ``stop=True`` and :meth:`SafetyFilter.stop_path` stop under the
same spline limits (chunk ends); :func:`braking_path` stops a moving joint state with uniform
deceleration (holds from a spline state: a parabola the cubic reproduces exactly).

Pure numpy: no rclpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moe_vla_ros.errors import BadInputError
from moe_vla_ros.validation import require_distinct, require_keys

LIMIT_FIELDS = ("lower", "upper", "max_velocity", "max_acceleration")


class SafetyConfigError(BadInputError):
    """Limits are missing, inconsistent or name unknown joints."""


def _per_joint(name: str, value: Any, joint_names: tuple[str, ...]) -> tuple[float, ...]:
    """One float per joint from a scalar, a list in joint order or a {joint: value} mapping."""
    if isinstance(value, Mapping):
        require_keys(name, value, joint_names, noun="joints", all_required=True, error=SafetyConfigError)
        return tuple(float(value[j]) for j in joint_names)
    if isinstance(value, (int, float)):
        return (float(value),) * len(joint_names)
    values = tuple(float(v) for v in value)
    if len(values) != len(joint_names):
        raise SafetyConfigError(
            f"{name} has {len(values)} values, expected {len(joint_names)} "
            f"(one per joint of {list(joint_names)})"
        )
    return values


def _is_unset(value: Any) -> bool:
    """None or an empty list/tuple/mapping: the limit is not configured."""
    if value is None:
        return True
    if isinstance(value, (int, float)):
        return False
    return hasattr(value, "__len__") and len(value) == 0


@dataclass(frozen=True)
class SafetyLimits:
    """Per-joint limits, in the contract's joint order. Every limit is optional.

    Attributes:
        joint_names: the contract's joints.
        lower: lowest allowed position per joint, rad; None: no position limits (then `upper`
            must be None too).
        upper: highest allowed position per joint, rad (> lower); None with `lower`.
        max_velocity: largest allowed |velocity| per joint, rad/s (> 0); None: unlimited.
        max_acceleration: largest allowed |acceleration| per joint, rad/s^2 (> 0); None:
            unlimited.
        arrays: derived; the four limits above as read-only float64 [J] arrays, by field name;
            a limit that is not configured reads -inf (lower) or +inf (the others).

    Each value is a number (every joint), a sequence in joint order or a {joint: value} mapping
    naming every joint. Use :meth:`from_optional` to build limits from lists that may be empty.
    """

    joint_names: tuple[str, ...]
    lower: tuple[float, ...] | None = None
    upper: tuple[float, ...] | None = None
    max_velocity: tuple[float, ...] | None = None
    max_acceleration: tuple[float, ...] | None = None
    arrays: dict[str, np.ndarray] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in require_distinct("joint_names", self.joint_names, error=SafetyConfigError))
        object.__setattr__(self, "joint_names", names)
        if _is_unset(self.lower) != _is_unset(self.upper):
            given, missing = ("lower", "upper") if _is_unset(self.upper) else ("upper", "lower")
            raise SafetyConfigError(f"position limits need both lower and upper: {given} is set, {missing} is not")
        arrays = {}
        for name in LIMIT_FIELDS:
            raw = getattr(self, name)
            if _is_unset(raw):
                object.__setattr__(self, name, None)
                arrays[name] = np.full(len(names), -np.inf if name == "lower" else np.inf)  # [J]
                arrays[name].setflags(write=False)
                continue
            values = _per_joint(name, raw, names)
            bad = [f"{j}={v}" for j, v in zip(names, values) if not math.isfinite(v)]
            if bad:
                raise SafetyConfigError(f"{name} must be finite, got {', '.join(bad)}")
            object.__setattr__(self, name, values)
            arrays[name] = np.array(values, dtype=np.float64)  # [J]
            arrays[name].setflags(write=False)
        for name in ("max_velocity", "max_acceleration"):
            values = getattr(self, name) or ()
            bad = [f"{j}={v}" for j, v in zip(names, values) if v <= 0.0]
            if bad:
                raise SafetyConfigError(f"{name} must be > 0, got {', '.join(bad)}")
        if self.has_position_limits:
            bad = [f"{j}: [{lo}, {hi}]" for j, lo, hi in zip(names, self.lower, self.upper) if not lo < hi]
            if bad:
                raise SafetyConfigError(f"lower must be < upper, got {'; '.join(bad)}")
        object.__setattr__(self, "arrays", arrays)

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def has_position_limits(self) -> bool:
        """True when lower and upper position limits are configured."""
        return self.lower is not None

    @property
    def has_velocity_limits(self) -> bool:
        return self.max_velocity is not None

    @property
    def has_acceleration_limits(self) -> bool:
        return self.max_acceleration is not None

    @property
    def configured(self) -> tuple[str, ...]:
        """Names of the limits that are set, in LIMIT_FIELDS order (lower/upper as "position")."""
        out = ("position",) if self.has_position_limits else ()
        return out + tuple(n for n in ("max_velocity", "max_acceleration") if getattr(self, n) is not None)

    @classmethod
    def from_optional(
        cls,
        joint_names: Sequence[str],
        lower: Any = None,
        upper: Any = None,
        max_velocity: Any = None,
        max_acceleration: Any = None,
    ) -> SafetyLimits | None:
        """Limits from values that may each be None or empty (= not configured), e.g. the node's
        robot.position_lower/position_upper/max_velocity/max_acceleration parameter lists.

        Returns None when no limit at all is configured. Raises SafetyConfigError for a bad
        value, a list of the wrong length, or only one of lower/upper.
        """
        given = (lower, upper, max_velocity, max_acceleration)
        if all(_is_unset(v) for v in given):
            return None
        return cls(tuple(joint_names), *given)

    @classmethod
    def from_config(cls, joint_names: Sequence[str], config: Mapping[str, Any]) -> SafetyLimits:
        """Build limits from a config mapping (parameters or YAML).

        Each of "lower", "upper", "max_velocity", "max_acceleration" must be present: a number
        (every joint), a list in joint order, a {joint_name: number} mapping naming every joint,
        or None / [] for a limit that is deliberately not configured.
        """
        require_keys("safety limits config", config, LIMIT_FIELDS, all_required=True, error=SafetyConfigError)
        return cls(tuple(joint_names), *(config[f] for f in LIMIT_FIELDS))


@dataclass(frozen=True)
class SafetyReport:
    """What the filter did to one chunk. Boolean arrays are [J], True where the limit acted.

    Attributes:
        accepted: False when the chunk was rejected (then `reason` says why).
        reason: "" when accepted.
        position_clamped: a target lay outside the position limits.
        velocity_limited: the velocity (or braking-room) limit changed a step.
        acceleration_limited: the acceleration limit changed a step.
        acceleration_overridden: the acceleration limit had to give way to the position or
            velocity limit (bad start state).
        start_clamped: the current position was outside the limits (within tolerance).
        max_target_clip_rad: largest distance a target was moved into the position limits.
        max_deviation_rad: largest distance between a filtered position and its target.
    """

    accepted: bool
    reason: str
    position_clamped: np.ndarray
    velocity_limited: np.ndarray
    acceleration_limited: np.ndarray
    acceleration_overridden: np.ndarray
    start_clamped: np.ndarray
    max_target_clip_rad: float = 0.0
    max_deviation_rad: float = 0.0

    @property
    def modified(self) -> bool:
        """True when any limit changed the chunk (by more than rounding)."""
        return bool(self.max_deviation_rad > 1e-12)

    def active_limits(self) -> list[str]:
        """Names of the limits that acted, e.g. ["position", "acceleration"]."""
        flags = {
            "position": self.position_clamped,
            "velocity": self.velocity_limited,
            "acceleration": self.acceleration_limited,
            "acceleration_overridden": self.acceleration_overridden,
            "start_position": self.start_clamped,
        }
        return [name for name, mask in flags.items() if mask.any()]


@dataclass(frozen=True)
class FilteredChunk:
    """Result of :meth:`SafetyFilter.filter`.

    Attributes:
        positions: float64 [H, J] safe position targets, or None when rejected.
        velocities: float64 [H, J] velocity at each target consistent with `positions`
            (mean of the velocities of the intervals before and after; the last interval's
            velocity at the last target), or None when rejected.
        report: what the filter did.
    """

    positions: np.ndarray | None
    velocities: np.ndarray | None
    report: SafetyReport
    stop_positions: np.ndarray | None = None
    stop_velocities: np.ndarray | None = None


def point_velocities(previous: np.ndarray, positions: np.ndarray, dt: float) -> np.ndarray:
    """Velocities [H, J] at `positions` [H, J] reached from `previous` [J], `dt` apart.

    Interior points get the central difference (mean of the adjacent interval velocities), the
    last point the velocity of the interval that ends at it.
    """
    path = np.concatenate([previous[None, :], positions], axis=0)  # [H+1, J]
    interval = np.diff(path, axis=0) / dt  # [H, J]: interval i ends at point i
    velocities = interval.copy()
    velocities[:-1] = 0.5 * (interval[:-1] + interval[1:])
    return velocities


class SafetyFilter:
    """Applies :class:`SafetyLimits` to chunks (see the module docstring).

    Args:
        limits: the per-joint limits.
        start_tolerance_rad: how far outside its limits the current position may be (sensor
            noise at a hard stop) before chunks are rejected; within it, planning starts from
            the clamped position.
    """

    def __init__(self, limits: SafetyLimits, start_tolerance_rad: float = 0.05) -> None:
        if not (math.isfinite(start_tolerance_rad) and start_tolerance_rad >= 0.0):
            raise SafetyConfigError(f"start_tolerance_rad must be >= 0, got {start_tolerance_rad!r}")
        self.limits = limits
        self.start_tolerance_rad = float(start_tolerance_rad)

    def _reject(self, reason: str) -> FilteredChunk:
        none = np.zeros(self.limits.num_joints, dtype=bool)
        report = SafetyReport(False, reason, none, none, none, none, none)
        return FilteredChunk(None, None, report)

    def _non_finite_reason(self, what: str, values: np.ndarray) -> str:
        rows = np.atleast_2d(values)  # [H, J] (targets) or [1, J] (state)
        step, joint = np.argwhere(~np.isfinite(rows))[0]
        where = f" at step {step}" if values.ndim == 2 else ""
        return f"non-finite {what}{where} for joint {self.limits.joint_names[joint]!r} ({rows[step, joint]})"

    def filter(
        self,
        targets: np.ndarray,
        dt: float,
        current_position: np.ndarray,
        current_velocity: np.ndarray | None = None,
        *,
        point_velocity: bool = False,
        stop: bool = False,
        first_step_share: float | None = None,
    ) -> FilteredChunk:
        """Make `targets` [H, J] safe to command from the current state (see module docstring).

        Args:
            targets: position targets, rad, step i at (i+1)*dt after the current state.
            dt: seconds between steps (> 0).
            current_position: [J] rad, the state the first step starts from.
            current_velocity: [J] rad/s, or None for rest: the velocity of the interval that
                ends at the current position (a seam inside a planned path).
            point_velocity: kept for callers; `current_velocity` is always taken as the velocity
                AT the current position (a measured state, or the velocity already sent for the
                point a seam starts at): the cubic spline joint_trajectory_controller builds
                starts there with it.
            stop: append a stop to rest after the last target (FilteredChunk.stop_positions /
                stop_velocities) under the same limits.
            first_step_share: the first interval velocity may differ from `current_velocity` by
                this share of a * dt: FIRST_STEP_SHARE (None; fresh starts, room for a late
                trajectory) up to SEAM_FIRST_STEP_SHARE (seams: at least as hard a brake as the
                plan continued).

        Returned velocities are the point velocities the spline must be given: central
        differences (the last: 0 before a stop, else the last interval's velocity).
        """
        j = self.limits.num_joints
        targets = np.asarray(targets, dtype=np.float64)
        if targets.ndim != 2 or targets.shape[1] != j or targets.shape[0] < 1:
            raise ValueError(f"targets must have shape [H >= 1, {j}], got {targets.shape}")
        if not (math.isfinite(dt) and dt > 0.0):
            raise ValueError(f"dt must be > 0, got {dt!r}")
        start = np.asarray(current_position, dtype=np.float64).reshape(-1)  # [J]
        velocity = np.zeros(j)  # [J]
        if current_velocity is not None:
            velocity = np.asarray(current_velocity, dtype=np.float64).reshape(-1)
        if start.shape != (j,) or velocity.shape != (j,):
            raise ValueError(
                f"current position and velocity must have shape [{j}], got {start.shape} and {velocity.shape}"
            )
        if not np.isfinite(targets).all():
            return self._reject(self._non_finite_reason("target", targets))
        for what, values in (("current position", start), ("current velocity", velocity)):
            if not np.isfinite(values).all():
                return self._reject(self._non_finite_reason(what, values))

        lower, upper = self.limits.arrays["lower"], self.limits.arrays["upper"]
        clamped_start = np.clip(start, lower, upper)  # [J]
        outside = np.abs(start - clamped_start)
        if (outside > self.start_tolerance_rad).any():
            k = int(np.argmax(outside))
            return self._reject(
                f"joint {self.limits.joint_names[k]!r} is at {start[k]:.4f} rad, outside its limits "
                f"[{lower[k]}, {upper[k]}] by more than {self.start_tolerance_rad} rad"
            )
        clamped = np.clip(targets, lower, upper)  # [H, J]
        out, velocities, stop_q, stop_v, vel_hit, acc_hit, overridden = self._limit_path(
            clamped, clamped_start, velocity, dt, point_velocity, stop, first_step_share
        )
        report = SafetyReport(
            accepted=True,
            reason="",
            position_clamped=(clamped != targets).any(axis=0),
            velocity_limited=vel_hit,
            acceleration_limited=acc_hit,
            acceleration_overridden=overridden,
            start_clamped=outside > 0.0,
            max_target_clip_rad=float(np.abs(clamped - targets).max()),
            max_deviation_rad=float(np.abs(out - targets).max()),
        )
        return FilteredChunk(out, velocities, report, stop_q, stop_v)

    def _limit_path(
        self,
        clamped: np.ndarray,
        start: np.ndarray,
        velocity: np.ndarray,
        dt: float,
        point_velocity: bool = False,
        stop: bool = False,
        first_step_share: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step along `clamped` [H, J] from (start, velocity) [J] under the spline, velocity and
        braking-room limits (module docstring), then, with `stop`, on to rest.

        Returns positions [H, J], their point velocities [H, J], the stop's positions and
        velocities [K, J] (K = 0 without `stop`), and the velocity-limited,
        acceleration-limited and acceleration-overridden flags [J]."""
        a = self.limits.arrays
        lower, upper, v_max, a_max = a["lower"], a["upper"], a["max_velocity"], a["max_acceleration"]
        # velocity of the target path after each step, for braking onto moving targets; the
        # path is assumed to continue at its last velocity after the chunk
        path = np.concatenate([start[None, :], clamped], axis=0)  # [H+1, J]
        target_velocity = np.diff(path, axis=0) / dt  # [H, J]: interval i ends at target i
        target_velocity[:-1] = target_velocity[1:].copy()

        j = self.limits.num_joints
        steps = clamped.shape[0]
        planner = _SplineSteps(lower, upper, v_max, a_max, dt, first_step_share)
        # the spline's first segment starts at the current position with this velocity (an
        # interval velocity before it is only known as that velocity: treated alike)
        planner.start_at_point(start, np.clip(velocity, -v_max, v_max))
        out = np.empty_like(clamped)  # [H, J]
        vel_hit, acc_hit, overridden = (np.zeros(j, dtype=bool) for _ in range(3))
        for i in range(steps):
            desired = (clamped[i] - planner.q) / dt  # [J] velocity that lands on the target
            v_hit, a_hit, infeasible = planner.step(desired, clamped[i], target_velocity[i])
            vel_hit |= v_hit
            acc_hit |= a_hit
            overridden |= infeasible
            out[i] = planner.q
        stop_q: list[np.ndarray] = []
        if stop:
            for _ in range(_MAX_STOP_STEPS):
                if planner.at_rest():
                    break
                v_hit, a_hit, infeasible = planner.step(planner.stop_velocity())
                overridden |= infeasible
                stop_q.append(planner.q)
            if stop_q:
                stop_q.pop()  # the last interval is at rest: its end repeats the point before it
            velocities = planner.point_velocities(end_at_rest=True)  # [H + K, J]
        else:
            velocities = planner.point_velocities(end_at_rest=False)
        stop_positions = np.array(stop_q, dtype=np.float64).reshape(-1, j)  # [K, J]
        k = len(stop_positions)
        stop_velocities = velocities[steps:steps + k]
        return out, velocities[:steps], stop_positions, stop_velocities, vel_hit, acc_hit, overridden

    def stop_path(self, position: np.ndarray, velocity: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """Bring the joints from `position` [J] moving at the point velocity `velocity` [J] to
        rest under the same spline limits as :meth:`filter` (the stop after a chunk's last target
        uses them too). Returns the positions and point velocities [K, J] after `position`, the
        last velocity 0; K = 0 when already at rest."""
        q0 = np.asarray(position, dtype=np.float64).reshape(-1)  # [J]
        empty = np.empty((0, self.limits.num_joints))
        *_, stop_q, stop_v, _, _, _ = self._limit_path(empty, q0, np.asarray(velocity, dtype=np.float64), dt,
                                                       point_velocity=True, stop=True,
                                                       first_step_share=SEAM_FIRST_STEP_SHARE)
        return stop_q, stop_v


# Share of the acceleration limit one step's discrete acceleration (the change of the interval
# velocity over dt) may use. joint_trajectory_controller interpolates the points with cubics
# through central-difference velocities, whose acceleration at a segment's ends is
# (2 d_i - d_(i+1)) / dt and (2 d_(i+1) - d_i) / dt (d: the interval velocity changes): the
# filter bounds both by the limit, and keeps |d| <= 2/3 a dt so the acceleration can always be
# turned around within three steps (at the full a dt it could never decrease again).
SPLINE_ACCELERATION_SHARE = 2.0 / 3.0
# The first step from a given point velocity c0 (a fresh start from the measured state, a seam at
# the point the controller is heading to): |w1 - c0| <= a dt / 4. Any share up to (1 + 2/3) / 4
# keeps the next step feasible; a quarter leaves the controller's first cubic from rest within the
# limit when the trajectory reaches it up to ~25 % of a period later than planned (its first
# segment is that much shorter: acceleration ~ 1 / duration^2).
FIRST_STEP_SHARE = 0.25
# At a seam (a point whose velocity was already sent, the plan before it continuing with a change
# of at most 2/3 a dt, i.e. a first step within a dt / 3 of it) the largest feasible share: the new
# plan can always brake at least as hard as the one it replaces.
SEAM_FIRST_STEP_SHARE = (1.0 + SPLINE_ACCELERATION_SHARE) / 4.0
_CRUISE_MARGIN = 1.0 / 24.0  # of a_max * dt: room for a first braking step of a_max * dt / 4
_MAX_STOP_STEPS = 100000
_MAX_BRAKING_STEPS = 60
# Fractions of a segment where its velocity (a quadratic) is checked against the limit.
_U = np.linspace(0.0, 1.0, 25)[:, None]  # [U, 1]
_ALPHA, _BETA, _GAMMA = 1 - 4 * _U + 3 * _U**2, 3 * _U**2 - 2 * _U, 6 * _U - 6 * _U**2  # [U, 1] each
_NEG = (_BETA < -1e-9)[:, 0]  # where a lower end velocity raises the segment's velocity
_ALPHA_NEG, _BETA_NEG, _GAMMA_NEG = (x[_NEG][:, :, None] for x in (_ALPHA, _BETA, _GAMMA))  # [U-, 1, 1]
_POS = (_BETA > 1e-9)[:, 0]
_ALPHA_POS, _BETA_POS, _GAMMA_POS = (x[_POS][:, :, None] for x in (_ALPHA, _BETA, _GAMMA))  # [U+, 1, 1]
_GRID = np.linspace(0.0, 1.0, 17)[:, None]  # [K, 1] candidate fractions of a search


class _SplineSteps:
    """Chooses interval velocities one step at a time so that the cubic spline through the points
    with central-difference point velocities keeps |acceleration| <= a_max and |velocity| <=
    v_max everywhere (JTC's interpolation). State: position q, interval velocity w into q and
    the point velocity c_prev of the point before q (or, at the start from a point velocity, the
    fixed point velocity c0 at q and no interval yet)."""

    def __init__(self, lower, upper, v_max, a_max, dt, first_step_share: float | None = None) -> None:
        share = FIRST_STEP_SHARE if first_step_share is None else float(first_step_share)
        self.first_step_share = min(share, SEAM_FIRST_STEP_SHARE)
        self.lower, self.upper, self.v_max, self.a_max, self.dt = lower, upper, v_max, a_max, dt
        self.aT = a_max * dt  # [J] inf where unlimited
        cruise = v_max - _CRUISE_MARGIN * self.aT
        self.cruise = np.where(np.isfinite(cruise) & (cruise > 0.0), cruise, v_max)  # [J]
        self.brake_a = SPLINE_ACCELERATION_SHARE * a_max  # [J]
        self.brake_dv = 0.75 * SPLINE_ACCELERATION_SHARE * self.aT  # [J] for braking onto targets
        self.c0: np.ndarray | None = None
        self.intervals: list[np.ndarray] = []  # w_1, w_2, ... [J] each

    def start_at_point(self, q: np.ndarray, c0: np.ndarray) -> None:
        self.q, self.c0, self.first = q.copy(), c0.copy(), True
        self.w = c0.copy()

    def stop_velocity(self) -> np.ndarray:
        """Next interval velocity [J] on the way to rest: from the velocity v at the current
        point (the start's, or extrapolated from the last segment: 2 w - c_prev) equal velocity
        steps x = v / (N - 1/2) of at most a_max * dt / 2, the intervals v - x/2, v - 3x/2, ...,
        so the stop ends exactly at 0 without turning back."""
        v = self.c0 if self.first else 2.0 * self.w - self.c_prev  # [J]
        sign = np.sign(v)
        speed = np.abs(v)
        with np.errstate(invalid="ignore", divide="ignore"):
            steps = np.ceil(speed / (0.5 * self.aT) + 0.5 - 1e-9)  # N
            x = speed / (steps - 0.5)
            out = np.where(np.isfinite(x) & (steps >= 1.0), sign * np.minimum(speed - 0.5 * x, np.abs(self.w)), 0.0)
        return np.where(sign * self.w <= 0.0, 0.0, out) if not self.first else out

    def at_rest(self) -> bool:
        return not self.first and bool(np.all(np.abs(self.w) <= 1e-12) and np.all(np.abs(self.c_prev) <= 1e-12))

    def _bounds(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(lo, hi) from the spline's acceleration, (lo, hi) from velocity and braking room."""
        aT, v_max, w = self.aT, self.v_max, self.w
        with np.errstate(invalid="ignore"):
            if self.first:
                step = self.first_step_share * aT
                acc_lo, acc_hi = self.c0 - step, self.c0 + step
                s, r = 1.0, self.c0  # delta of the next segment = s * w_new - r
                vel_lo, vel_hi = np.full_like(w, -np.inf), np.full_like(w, np.inf)
            else:
                delta = w - self.c_prev
                cap = SPLINE_ACCELERATION_SHARE * aT
                acc_lo = np.maximum.reduce([w + 4 * delta - aT, w + delta - 0.5 * aT, w - cap])
                acc_hi = np.minimum.reduce([w + 4 * delta + aT, w + delta + 0.5 * aT, w + cap])
                s, r = 0.5, 0.5 * w
                # the segment this step completes: v(u) = alpha c_prev + beta (w + w_new) / 2 + gamma w
                const = _ALPHA * self.c_prev + (_GAMMA + 0.5 * _BETA) * w  # [U, J]
                coef = np.broadcast_to(0.5 * _BETA, const.shape)  # [U, J]
                safe = np.where(np.abs(coef) > 1e-9, coef, 1.0)
                b1, b2 = (-v_max - const) / safe, (v_max - const) / safe
                lo_u = np.where(coef > 1e-9, b1, np.where(coef < -1e-9, b2, -np.inf))
                hi_u = np.where(coef > 1e-9, b2, np.where(coef < -1e-9, b1, np.inf))
                vel_lo, vel_hi = lo_u.max(axis=0), hi_u.min(axis=0)
            # the next segment's velocity at 2/3 of it: w_new + delta / 3
            k = 1.0 + s / 3.0
            vel_lo = np.maximum(vel_lo, (-v_max + r / 3.0) / k)
            vel_hi = np.minimum(vel_hi, (v_max + r / 3.0) / k)
            # room to level off: a further rise of (7/6) max(0, 4 delta - a dt) after this step
            k3 = 1.0 + 14.0 * s / 3.0
            vel_hi = np.minimum(vel_hi, np.maximum((0.25 * aT + r) / s, (v_max + (7.0 / 6.0) * (4 * r + aT)) / k3))
            vel_lo = np.maximum(vel_lo, np.minimum((-0.25 * aT + r) / s, (-v_max + (7.0 / 6.0) * (4 * r - aT)) / k3))
        # cruise a little below the limit: braking from it lowers a segment's end velocity,
        # which lifts its middle above its mean (by a sixth of the change)
        cruise = self.cruise
        vel_lo = np.maximum(vel_lo, -cruise)
        vel_hi = np.minimum(vel_hi, cruise)
        hard_hi, hard_lo = vel_hi, vel_lo
        acc_lo = np.where(np.isnan(acc_lo), -np.inf, acc_lo)
        acc_hi = np.where(np.isnan(acc_hi), np.inf, acc_hi)
        return acc_lo, acc_hi, hard_lo, hard_hi

    def _reach(self, w_new: np.ndarray, reference: np.ndarray, sign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For candidate interval velocities `w_new` [K, J]: the farthest displacement [K, J] in
        direction `sign` [J] (+1/-1), in a frame moving at
        `reference` [J], from this step on (this step's interval included) when every later step
        pushes the velocity against `sign` as hard as the spline limits allow; and where [J]
        that braking cannot keep the velocity limit [K, J]."""
        c_cur = self.c0 if self.first else 0.5 * (self.w + w_new)
        u, uc = sign * (w_new - reference), sign * (c_cur - reference)  # [J] relative velocities
        aT = self.aT
        cap = SPLINE_ACCELERATION_SHARE * aT
        position = u * self.dt
        peak = np.maximum(position, 0.0)
        v_room = np.broadcast_to(self.cruise - sign * reference, u.shape)  # velocity limit in the moving frame
        broken = np.zeros(u.shape, dtype=bool)
        with np.errstate(invalid="ignore"):
            for _ in range(_MAX_BRAKING_STEPS):
                delta = u - uc
                nxt = np.maximum(np.maximum(u + 4 * delta - aT, u + delta - 0.5 * aT), u - cap)
                upper = np.minimum(np.minimum(u + 4 * delta + aT, u + delta + 0.5 * aT), np.minimum(u + cap, v_room))
                # the segment this braking step completes bulges above its mean: keep it <= v_max
                const = _ALPHA_NEG * uc + (_GAMMA_NEG + 0.5 * _BETA_NEG) * u  # [U-, J]
                nxt = np.maximum(nxt, ((v_room - const) / (0.5 * _BETA_NEG)).max(axis=0))
                const = _ALPHA_POS * uc + (_GAMMA_POS + 0.5 * _BETA_POS) * u  # [U+, J]
                upper = np.minimum(upper, ((v_room - const) / (0.5 * _BETA_POS)).min(axis=0))
                nxt = np.where(np.isnan(nxt), -np.inf, nxt)
                active = ((u > 0.0) | (nxt > u)) & ~broken  # moving on, or forced to speed up again
                broken |= active & (u > 0.0) & (nxt > upper + 1e-9 * (1.0 + np.abs(upper)))
                broken |= active & (nxt >= u) & (u >= v_room - 1e-9 * (1.0 + np.abs(v_room)))  # cannot slow down
                active &= ~broken
                if not active.any():
                    break
                nxt = np.where(active, np.maximum(nxt, -np.abs(u) - aT), u)  # finite
                position = position + np.where(active, nxt, 0.0) * self.dt
                peak = np.maximum(peak, position)
                uc = np.where(active, 0.5 * (u + nxt), uc)
                u = np.where(active, nxt, u)
        return np.where(broken, np.inf, peak), broken

    def _bisect(self, chosen: np.ndarray, floor: np.ndarray, bad_at) -> np.ndarray:
        """`chosen` [J] moved towards `floor` [J] as little as needed where `bad_at(w)` ([K, J]
        candidates -> [K, J]) holds; two grid searches (resolution 1/256 of the distance)."""
        bad_chosen = bad_at(chosen[None, :])[0]  # [J]
        if not bad_chosen.any():
            return chosen
        low, high = floor, chosen
        for round_ in range(2):
            candidates = low + _GRID * (high - low)  # [K, J]
            bad = bad_at(candidates)  # [K, J]
            good = ~bad
            good[0] |= round_ == 0  # the floor is the fallback
            last = len(_GRID) - 1 - np.argmax(good[::-1], axis=0)  # [J] last good candidate
            columns = np.arange(len(chosen))
            new_low = candidates[last, columns]
            high = np.where(last < len(_GRID) - 1, candidates[np.minimum(last + 1, len(_GRID) - 1), columns], high)
            low = new_low
        return np.where(bad_chosen, low, chosen)

    def step(self, desired: np.ndarray, target: np.ndarray | None = None,
             target_velocity: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Move one step towards the interval velocity `desired` [J] (landing on `target` [J],
        which moves on at `target_velocity`: braking onto it without overshooting where the
        limits allow); returns the velocity-limited, acceleration-limited and
        acceleration-overridden flags [J]."""
        acc_lo, acc_hi, hard_lo, hard_hi = self._bounds()
        v_max = self.cruise  # [J] the plain velocity limit, a little below max_velocity
        hard_bad = hard_lo > hard_hi  # the spline's velocity shape cannot be kept: the plain limit
        hard_lo, hard_hi = np.where(hard_bad, -v_max, hard_lo), np.where(hard_bad, v_max, hard_hi)
        # rounding can leave a one-point range (e.g. right after the first step) crossed by 1 ulp
        mid = 0.5 * (acc_lo + acc_hi)
        crossed = (acc_lo > acc_hi) & (acc_lo - acc_hi <= 1e-9 * (1.0 + np.abs(mid)))
        acc_lo, acc_hi = np.where(crossed, mid, acc_lo), np.where(crossed, mid, acc_hi)
        lo, hi = np.maximum(acc_lo, hard_lo), np.minimum(acc_hi, hard_hi)
        touching = (lo > hi) & (lo - hi <= 1e-9 * (1.0 + np.abs(hi)))  # equal up to rounding
        lo = np.where(touching, hi, lo)
        infeasible = lo > hi  # only from a start state that breaks the limits
        # then the acceleration limits with the plain velocity limit, else that limit alone
        plain_lo, plain_hi = np.maximum(acc_lo, -v_max), np.minimum(acc_hi, v_max)
        plain_bad = plain_lo > plain_hi
        plain_lo, plain_hi = np.where(plain_bad, -v_max, plain_lo), np.where(plain_bad, v_max, plain_hi)
        lo = np.where(infeasible, plain_lo, lo)
        hi = np.where(infeasible, plain_hi, hi)
        infeasible &= plain_bad
        chosen = np.clip(desired, lo, hi)
        zero, plus = np.zeros_like(chosen), np.ones_like(chosen)
        toward_hi = np.maximum(lo, np.minimum(hi, np.maximum(0.0, lo)))

        def past(goal: np.ndarray, reference: np.ndarray, sign: np.ndarray):
            room = sign * (goal - self.q)  # [J]
            # only where the room is within a generous bound of what braking could need
            speed = np.abs(chosen - reference) + np.abs(self.w - reference) + self.aT
            with np.errstate(invalid="ignore"):
                near = np.isfinite(room) & ~(room > speed * self.dt * 6.0 + speed**2 / self.brake_a)
            if not near.any():
                return lambda w: near
            return lambda w: near & (self._reach(w, reference, sign)[0] > room + 1e-12)

        if target is not None:
            # brake onto the target: the largest step after which it can still be reached (a
            # target path faster than the velocity limit is followed at most at the limit)
            target_velocity = np.clip(target_velocity, -self.v_max, self.v_max)
            # in the frame moving with the target path, the target sits at target - tv * dt now
            target = target - target_velocity * self.dt
            ahead = np.where(target >= self.q, 1.0, -1.0)
            floor = np.where(ahead > 0, np.maximum(lo, np.minimum(target_velocity, hi)),
                             np.minimum(hi, np.maximum(target_velocity, lo)))
            # (not where the step lands on a target path it already moves with: nothing to shed)
            c_cur = self.c0 if self.first else 0.5 * (self.w + chosen)
            settled = np.abs(chosen - target_velocity) + np.abs(c_cur - target_velocity) < 0.05 * self.aT
            check = past(target, target_velocity, ahead)
            chosen = self._bisect(chosen, floor, lambda w: ~settled & check(w))
        # braking room before the position limits (they come before the target)
        chosen = self._bisect(chosen, lo, past(self.upper, zero, plus))
        chosen = self._bisect(chosen, hi, past(self.lower, zero, -plus))
        # room to level off within the velocity limit (the spline's bulges included)
        fast = np.isfinite(self.v_max) & ~(np.abs(chosen) + np.abs(chosen - self.w) + 0.75 * self.aT < self.v_max)
        if fast.any():
            chosen = self._bisect(chosen, toward_hi, lambda w: fast & self._reach(w, zero, -plus)[1])
            chosen = self._bisect(chosen, lo, lambda w: fast & self._reach(w, zero, plus)[1])
        chosen = np.clip(chosen, -v_max, v_max)
        acc_binding = (np.abs(chosen - desired) > 1e-12) & (
            (desired > hi) & (acc_hi <= hard_hi) | (desired < lo) & (acc_lo >= hard_lo)
        ) & ~infeasible
        vel_binding = (np.abs(chosen - desired) > 1e-12) & ~acc_binding & ~infeasible
        next_q = np.clip(self.q + chosen * self.dt, self.lower, self.upper)  # clip only absorbs rounding
        w_new = (next_q - self.q) / self.dt
        if self.first:
            self.c_prev = self.c0
            self.first = False
        else:
            self.c_prev = 0.5 * (self.w + w_new)
        self.w = w_new
        self.q = next_q
        self.intervals.append(w_new)
        return vel_binding, acc_binding, infeasible

    def point_velocities(self, end_at_rest: bool) -> np.ndarray:
        """Point velocities [N, J] of the N points stepped to: central differences; the last
        point 0 (`end_at_rest`: its next interval is at rest) or its interval's velocity."""
        w = np.array(self.intervals).reshape(-1, len(self.q))  # [N, J]
        if len(w) == 0:
            return w
        nxt = np.concatenate([w[1:], np.zeros_like(w[:1]) if end_at_rest else w[-1:]], axis=0)
        return 0.5 * (w + nxt)


def braking_path(
    position: np.ndarray,
    velocity: np.ndarray,
    dt: float,
    max_acceleration: np.ndarray,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Bring a moving joint state to rest within the acceleration limits, on a dt grid.

    All joints stop together at ``K * dt``, each decelerating uniformly (so the path keeps its
    direction in joint space): K = ceil(max_j |v_j| / max_acceleration_j / dt), at least 1, and
    joint j decelerates at |v_j| / (K dt) <= max_acceleration_j. Without an acceleration limit
    (inf for every moving joint) the stop takes one period. At rest, the result is one point at
    `position`. The positions are the exact parabola, so a cubic (position + velocity) spline
    through them, as joint_trajectory_controller builds, has the same constant deceleration.

    Args:
        position: [J] rad, the state at time 0.
        velocity: [J] rad/s at time 0.
        dt: spacing of the points, seconds (> 0).
        max_acceleration: [J] rad/s^2 (> 0, inf = unlimited).
        lower, upper: [J] position limits the points are clipped to (None: none).

    Returns:
        positions [K, J] at dt, 2 dt, ..., K dt and velocities [K, J]; the last velocity row is
        exactly 0.
    """
    q0 = np.asarray(position, dtype=np.float64).reshape(-1)  # [J]
    v0 = np.asarray(velocity, dtype=np.float64).reshape(-1)  # [J]
    a_max = np.broadcast_to(np.asarray(max_acceleration, dtype=np.float64), q0.shape)  # [J]
    with np.errstate(divide="ignore", invalid="ignore"):
        stop_s = np.where(np.isfinite(a_max) & (v0 != 0.0), np.abs(v0) / a_max, 0.0)  # [J]
    steps = max(1, int(math.ceil(float(stop_s.max()) / dt - 1e-9)))  # K
    duration = steps * dt
    deceleration = v0 / duration  # [J] signed, |.| <= a_max
    t = dt * np.arange(1, steps + 1)[:, None]  # [K, 1]
    positions = q0[None, :] + v0[None, :] * t - 0.5 * deceleration[None, :] * t**2  # [K, J]
    velocities = v0[None, :] - deceleration[None, :] * t  # [K, J]
    velocities[-1] = 0.0
    positions[-1] = q0 + 0.5 * v0 * duration  # exact end (no rounding drift)
    if lower is not None or upper is not None:
        positions = np.clip(positions, lower, upper)
    return positions, velocities
