"""Joint limits and the filter every commanded chunk passes through before it reaches the robot.

:class:`SafetyFilter` takes the current joint state and a chunk of position targets [H, J],
spaced ``dt`` apart, and returns positions that respect, at every step:

* position limits: lower <= q <= upper (targets are clamped first);
* velocity limits: |q_i - q_{i-1}| / dt <= max_velocity, starting from the current position,
  so the first step cannot jump;
* acceleration limits: |v_i - v_{i-1}| / dt <= max_acceleration, starting from the current
  velocity, where v_i is the velocity of the interval ending at step i;
* braking room: the velocity towards a position limit never exceeds what max_acceleration can
  stop before the limit, so position and acceleration limits never contradict each other.

Priorities when they cannot all hold (only from a bad start state, e.g. a measured velocity
above its limit close to a position limit): position, then velocity, then acceleration; the
report flags such joints in ``acceleration_overridden``. A chunk with NaN/inf, or a current
position further outside its limits than ``start_tolerance_rad``, is rejected whole.

Tracking: each step heads for its target as fast as the limits allow while keeping room to
brake onto the target path without overshooting it; a chunk that is within the limits and
starts from the current state passes unchanged.

Every limit is optional (:class:`SafetyLimits`): the filter applies whatever is configured,
e.g. velocity and acceleration limits on a robot without position limits.

:func:`braking_path` stops a moving joint state within the acceleration limits (chunk ends and
holds use it, so every commanded trajectory can end at rest).

Pure numpy: no rclpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

LIMIT_FIELDS = ("lower", "upper", "max_velocity", "max_acceleration")


class SafetyConfigError(ValueError):
    """Limits are missing, inconsistent or name unknown joints."""


def _per_joint(name: str, value: Any, joint_names: tuple[str, ...]) -> tuple[float, ...]:
    """One float per joint from a scalar, a list in joint order or a {joint: value} mapping."""
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(joint_names))
        if unknown:
            raise SafetyConfigError(f"{name} names unknown joints {unknown}; joints are {list(joint_names)}")
        missing = [j for j in joint_names if j not in value]
        if missing:
            raise SafetyConfigError(f"{name} has no value for joints {missing}")
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
        names = tuple(str(n) for n in self.joint_names)
        if not names or len(set(names)) != len(names):
            raise SafetyConfigError(f"joint_names must be unique and non-empty, got {list(names)}")
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
    ) -> "SafetyLimits | None":
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
    def from_config(cls, joint_names: Sequence[str], config: Mapping[str, Any]) -> "SafetyLimits":
        """Build limits from a config mapping (parameters or YAML).

        Each of "lower", "upper", "max_velocity", "max_acceleration" must be present: a number
        (every joint), a list in joint order, a {joint_name: number} mapping naming every joint,
        or None / [] for a limit that is deliberately not configured.
        """
        unknown = sorted(set(config) - set(LIMIT_FIELDS))
        if unknown:
            raise SafetyConfigError(f"unknown safety limit fields {unknown}; expected {list(LIMIT_FIELDS)}")
        missing = [f for f in LIMIT_FIELDS if f not in config]
        if missing:
            raise SafetyConfigError(f"safety limits config is missing {missing}")
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
    ) -> FilteredChunk:
        """Make `targets` [H, J] safe to command from the current state (see module docstring).

        Args:
            targets: position targets, rad, step i at (i+1)*dt after the current state.
            dt: seconds between steps (> 0).
            current_position: [J] rad, the state the first step starts from.
            current_velocity: [J] rad/s, or None for rest: the velocity of the interval that
                ends at the current position (a seam inside a planned path).
            point_velocity: `current_velocity` is instead the velocity AT the current position
                (a measured state, e.g. rest): the first interval may differ from it by only
                half the acceleration budget (a * dt / 2), so that a constant acceleration from
                that state reaches the first target; a cubic spline through the points (as
                joint_trajectory_controller interpolates) then keeps |acceleration| <= a from
                rest instead of 3 a.
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
        out, vel_hit, acc_hit, overridden = self._limit_path(clamped, clamped_start, velocity, dt, point_velocity)
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
        return FilteredChunk(out, point_velocities(clamped_start, out, dt), report)

    def _limit_path(
        self, clamped: np.ndarray, start: np.ndarray, velocity: np.ndarray, dt: float, point_velocity: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step along `clamped` [H, J] from (start, velocity) [J] under the velocity, acceleration
        and braking-room limits (the first step's acceleration budget halved for a point
        velocity). Returns positions [H, J] and the velocity-limited, acceleration-limited and
        acceleration-overridden flags [J]."""
        a = self.limits.arrays
        lower, upper, v_max, a_max = a["lower"], a["upper"], a["max_velocity"], a["max_acceleration"]
        dv_max = a_max * dt  # [J] largest velocity change per step
        # velocity of the target path after each step, for braking onto moving targets; the
        # path is assumed to continue at its last velocity after the chunk
        path = np.concatenate([start[None, :], clamped], axis=0)  # [H+1, J]
        target_velocity = np.diff(path, axis=0) / dt  # [H, J]: interval i ends at target i
        target_velocity[:-1] = target_velocity[1:].copy()

        j = self.limits.num_joints
        out = np.empty_like(clamped)  # [H, J]
        q, v = start, np.clip(velocity, -v_max, v_max)
        vel_hit, acc_hit, overridden = (np.zeros(j, dtype=bool) for _ in range(3))
        for i in range(clamped.shape[0]):
            dv_step = 0.5 * dv_max if (point_velocity and i == 0) else dv_max  # [J]
            desired = (clamped[i] - q) / dt  # [J] velocity that lands on the target
            desired = _braking_onto_target(desired, target_velocity[i], dv_max)
            acc_hit |= np.abs(desired - (clamped[i] - q) / dt) > 1e-12
            # fastest velocity towards each limit that can still stop before it:
            # dt*v + v^2/(2*a_max) <= distance  <=>  v <= -a_max*dt + sqrt((a_max*dt)^2 + 2*a_max*distance)
            brake_up = _braking_room(np.maximum(upper - q, 0.0), a_max, dt)  # [J], inf when unlimited
            brake_down = _braking_room(np.maximum(q - lower, 0.0), a_max, dt)
            hard_hi = np.minimum(v_max, brake_up)
            hard_lo = np.maximum(-v_max, -brake_down)
            acc_tighter_hi = v + dv_step < hard_hi
            acc_tighter_lo = v - dv_step > hard_lo
            hi = np.where(acc_tighter_hi, v + dv_step, hard_hi)
            lo = np.where(acc_tighter_lo, v - dv_step, hard_lo)
            infeasible = lo > hi  # only from a start state that breaks the limits
            overridden |= infeasible
            hi = np.where(infeasible, hard_hi, hi)
            lo = np.where(infeasible, hard_lo, lo)
            above, below = desired > hi, desired < lo
            binding_acc = (above & acc_tighter_hi | below & acc_tighter_lo) & ~infeasible
            acc_hit |= binding_acc
            vel_hit |= (above | below) & ~binding_acc
            next_q = np.clip(q + np.clip(desired, lo, hi) * dt, lower, upper)  # clip only absorbs rounding
            v = (next_q - q) / dt
            q = next_q
            out[i] = q
        return out, vel_hit, acc_hit, overridden


def _braking_room(distance: np.ndarray, a_max: np.ndarray, dt: float) -> np.ndarray:
    """Fastest velocity [J] towards a limit `distance` [J] away that can still stop before it:
    dt*v + v^2/(2*a_max) <= distance  <=>  v <= -a_max*dt + sqrt((a_max*dt)^2 + 2*a_max*distance).
    inf without an acceleration limit or without a position limit (distance inf)."""
    finite_a = np.isfinite(a_max)
    a = np.where(finite_a, a_max, 1.0)  # [J] placeholder where unlimited (result replaced by inf)
    dv = a * dt
    with np.errstate(invalid="ignore"):
        room = -dv + np.sqrt(dv**2 + 2.0 * a * distance)
    return np.where(finite_a, room, np.inf)


def _braking_onto_target(desired: np.ndarray, target_velocity: np.ndarray, dv_max: np.ndarray) -> np.ndarray:
    """Largest velocity (towards the target, [J]) from which the target can still be reached
    without overshooting it, decelerating by at most `dv_max` per step afterwards.

    In the target's frame (moving at `target_velocity`) the gap left after this step must cover
    the discrete braking distance dt * sum_k max(w - k*dv_max, 0) of the relative velocity w.
    With D = desired - target_velocity (towards the target) the largest w is
    (D + dv_max*T_n) / (n+1), n the largest integer with T_n = n(n+1)/2 <= D/dv_max. When the
    target path itself keeps within the acceleration limit, n = 0 and `desired` is unchanged.
    """
    sign = np.where(desired >= 0.0, 1.0, -1.0)  # work in the direction of the target
    gap = sign * (desired - target_velocity)  # D [J]
    finite = np.isfinite(dv_max)  # no acceleration limit: nothing to brake for
    dv = np.where(finite, dv_max, 1.0)  # [J]
    n = np.floor((np.sqrt(np.maximum(8.0 * gap / dv + 1.0, 1.0)) - 1.0) / 2.0)  # [J]
    relative = (gap + dv * n * (n + 1.0) / 2.0) / (n + 1.0)  # [J]
    return np.where((n > 0) & finite, target_velocity + sign * relative, desired)


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
