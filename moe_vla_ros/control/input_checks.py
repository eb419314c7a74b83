"""Checks every input message passes before the runner uses it (:class:`InputChecker`).

Every camera image and joint state is checked on arrival, also while a plan executes; a message
that fails is rejected (it never reaches the synchroniser, so no command is computed from it),
counted under ``<input>/<code>`` and named in the runner's hold reason.

Header stamps (every input), against the receipt time ``now``:
    stamp_zero        the stamp is 0 (an unset header)
    stamp_in_future   more than ``max_stamp_future_s`` after ``now`` (clocks disagree)
    stamp_too_old     more than ``max_stamp_age_s`` before ``now`` (a stuck or replayed stamp)
    stamp_not_newer   not after the last accepted stamp of the same input (duplicate or reordered)
Joint states, after the stamp checks (STATE_FAULTS: the runner holds at once on these):
    non_finite        a position is NaN/inf
    out_of_limits     a position outside [lower - position_tolerance_rad, upper + ...]
                      (only with position limits)
    jump              a joint moved more since the last accepted joint state than
                      ``jump_velocity_factor * max_velocity * dt + jump_margin_rad`` allows
                      (degrees instead of radians, a glitch; only with velocity limits)
    frozen            positions bit-identical for ``frozen_after_s`` while the executing plan
                      commanded more than ``frozen_min_motion_rad`` of motion meanwhile
    tracking_error    a position differs from the commanded one at the message's stamp by more
                      than ``max_tracking_error_rad`` (the arm does not follow the commands)
The last two need the commanded position of the executing policy plan (a callable; None while
nothing or only a hold is executing), so they never fire while holding.

Pure numpy: no rclpy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from moe_vla_ros.control.safety import SafetyLimits

STAMP_ZERO = "stamp_zero"
STAMP_IN_FUTURE = "stamp_in_future"
STAMP_TOO_OLD = "stamp_too_old"
STAMP_NOT_NEWER = "stamp_not_newer"
NON_FINITE = "non_finite"
OUT_OF_LIMITS = "out_of_limits"
JUMP = "jump"
FROZEN = "frozen"
TRACKING_ERROR = "tracking_error"
MALFORMED = "malformed"  # conversion/shape errors reported by the caller (PolicyRunner.reject_input)

STATE_FAULTS = frozenset({NON_FINITE, OUT_OF_LIMITS, JUMP, FROZEN, TRACKING_ERROR})
"""Joint-state rejections that make the runner hold at once (the measured state contradicts
the limits or the plan); other rejections count as a missing message (hold after the input
timeout)."""

REJECTION_CODES = (
    STAMP_ZERO, STAMP_IN_FUTURE, STAMP_TOO_OLD, STAMP_NOT_NEWER, NON_FINITE, OUT_OF_LIMITS, JUMP, FROZEN,
    TRACKING_ERROR, MALFORMED,
)


@dataclass(frozen=True)
class InputCheckConfig:
    """Thresholds of the input checks (module docstring). None disables a check.

    Attributes:
        position_tolerance_rad: how far outside its position limits a measured joint may be
            (sensor noise at a hard stop) before the joint state is rejected; >= 0.
        jump_velocity_factor: a joint may move at most this factor times its velocity limit
            times the stamp difference (plus `jump_margin_rad`) between consecutive accepted
            joint states; > 0, None: no jump check.
        jump_margin_rad: slack of the jump check (encoder noise, quantisation); >= 0.
        frozen_after_s: joint states whose positions stay bit-identical for this long (stamp
            time) while the plan commands motion are rejected as frozen; > 0, None: no check.
        frozen_min_motion_rad: the commanded motion (largest joint) over that window that makes
            identical positions suspicious; > 0.
        max_tracking_error_rad: largest distance between a measured position and the commanded
            one at the message's stamp; > 0, None: no check. Leave room for the controller's
            lag: the MuJoCo stand-in lags ~0.05 s (0.15 rad at 3 rad/s).
        max_stamp_age_s: messages stamped longer ago than this (vs receipt) are rejected; > 0.
        max_stamp_future_s: messages stamped further in the future than this are rejected; >= 0.
    """

    position_tolerance_rad: float = 0.05
    jump_velocity_factor: float | None = 1.5
    jump_margin_rad: float = 0.02
    frozen_after_s: float | None = 0.3
    frozen_min_motion_rad: float = 0.02
    max_tracking_error_rad: float | None = 0.25
    max_stamp_age_s: float = 0.5
    max_stamp_future_s: float = 0.05

    def __post_init__(self) -> None:
        def check(name: str, allow_zero: bool, optional: bool) -> None:
            value = getattr(self, name)
            if value is None and optional:
                return
            ok = (
                not isinstance(value, bool)
                and isinstance(value, (int, float))
                and math.isfinite(value)
                and (value >= 0.0 if allow_zero else value > 0.0)
            )
            if not ok:
                bound = ">= 0" if allow_zero else "> 0"
                raise ValueError(f"{name} must be a number {bound}{' or None' if optional else ''}, got {value!r}")

        check("position_tolerance_rad", True, False)
        check("jump_velocity_factor", False, True)
        check("jump_margin_rad", True, False)
        check("frozen_after_s", False, True)
        check("frozen_min_motion_rad", False, False)
        check("max_tracking_error_rad", False, True)
        check("max_stamp_age_s", False, False)
        check("max_stamp_future_s", True, False)

    @classmethod
    def from_params(cls, values: Mapping[str, Any]) -> InputCheckConfig:
        """From parameter values ({field: value}, missing fields keep their defaults). ROS
        parameters cannot be None: a value <= 0 for one of OPTIONAL_CHECKS disables that check.
        Raises ValueError naming an unknown field or a bad value."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown input check fields {unknown}; known: {sorted(known)}")
        out = dict(values)
        for name in OPTIONAL_CHECKS:
            value = out.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
                out[name] = None
        return cls(**out)


OPTIONAL_CHECKS = ("jump_velocity_factor", "frozen_after_s", "max_tracking_error_rad")
"""InputCheckConfig fields that may be None (check off); <= 0 means None in from_params."""


@dataclass(frozen=True)
class Rejection:
    """Why a message was rejected.

    Attributes:
        input: the input's name ("joint_states", "camera/<name>").
        code: one of REJECTION_CODES.
        text: for people, e.g. "joint_states rejected: joint_2 at 3.05 rad outside [-2.0, 2.0]+0.05".
    """

    input: str
    code: str
    text: str

    @property
    def key(self) -> str:
        """Counter key, "<input>/<code>"."""
        return f"{self.input}/{self.code}"

    @property
    def is_state_fault(self) -> bool:
        return self.code in STATE_FAULTS


def _g(value: float) -> str:
    return f"{value:.4g}"


class InputChecker:
    """Per-input state of the checks (last accepted stamp, last accepted joint positions, the
    start of identical positions). Not thread-safe: the runner calls it under its lock.

    Args:
        config: thresholds.
        joint_names: the contract's joints (names in the messages).
        limits: position and velocity limits for the out-of-limits and jump checks (None: those
            checks are off).
    """

    def __init__(self, config: InputCheckConfig, joint_names: Sequence[str], limits: SafetyLimits | None = None):
        self.config = config
        self.joint_names = tuple(joint_names)
        self.limits = limits
        self.reset()

    def reset(self) -> None:
        """Forget every input's history (activation)."""
        self._last_stamp: dict[str, float] = {}
        self._last_positions: np.ndarray | None = None  # [J] last accepted joint state
        self._last_joint_stamp = -math.inf
        # (stamp, commanded [J] or None) when the last accepted positions first appeared
        self._same_since: tuple[float, np.ndarray | None] = (-math.inf, None)

    # -- stamps --------------------------------------------------------------------------------
    def check_stamp(self, name: str, stamp: float, now: float) -> Rejection | None:
        """The header-stamp checks of any input (module docstring)."""
        cfg = self.config
        if not math.isfinite(stamp) or stamp == 0.0:
            return Rejection(name, STAMP_ZERO, f"{name} rejected: header stamp is {stamp} (unset)")
        age = now - stamp
        if age < -cfg.max_stamp_future_s:
            return Rejection(
                name, STAMP_IN_FUTURE,
                f"{name} rejected: stamp {-age:.3f} s in the future (max {cfg.max_stamp_future_s} s)",
            )
        if age > cfg.max_stamp_age_s:
            return Rejection(
                name, STAMP_TOO_OLD, f"{name} rejected: stamp {age:.3f} s old (max {cfg.max_stamp_age_s} s)"
            )
        last = self._last_stamp.get(name)
        if last is not None and stamp <= last:
            return Rejection(
                name, STAMP_NOT_NEWER,
                f"{name} rejected: stamp {stamp:.6f} not newer than the last accepted {last:.6f}",
            )
        return None

    def accept_stamp(self, name: str, stamp: float) -> None:
        self._last_stamp[name] = float(stamp)

    # -- joint states -----------------------------------------------------------------------------
    def check_joint_state(
        self,
        name: str,
        stamp: float,
        positions: np.ndarray,
        now: float,
        commanded: Callable[[float], np.ndarray | None],
    ) -> Rejection | None:
        """All checks of a joint state (stamp first). `positions` [J] rad in contract order;
        `commanded(t)` the executing policy plan's position [J] at t, or None."""
        rejection = self.check_stamp(name, stamp, now)
        if rejection is not None:
            return rejection
        cfg, names = self.config, self.joint_names
        q = np.asarray(positions, dtype=np.float64).reshape(-1)  # [J]
        if not np.isfinite(q).all():
            k = int(np.argmax(~np.isfinite(q)))
            return Rejection(name, NON_FINITE, f"{name} rejected: {names[k]} position is {q[k]}")
        limits = self.limits
        if limits is not None and limits.has_position_limits:
            lower, upper = limits.arrays["lower"], limits.arrays["upper"]
            tol = cfg.position_tolerance_rad
            outside = np.maximum(lower - tol - q, q - upper - tol)  # [J] > 0 when outside
            if (outside > 0.0).any():
                k = int(np.argmax(outside))
                return Rejection(
                    name, OUT_OF_LIMITS,
                    f"{name} rejected: {names[k]} at {_g(q[k])} rad outside [{lower[k]}, {upper[k]}]+{tol}",
                )
        previous = self._last_positions
        if (
            cfg.jump_velocity_factor is not None
            and previous is not None
            and limits is not None
            and limits.has_velocity_limits
        ):
            dt = stamp - self._last_joint_stamp  # > 0: the stamp is newer
            allowed = cfg.jump_velocity_factor * limits.arrays["max_velocity"] * dt + cfg.jump_margin_rad  # [J]
            moved = np.abs(q - previous)  # [J]
            if (moved > allowed).any():
                k = int(np.argmax(moved - allowed))
                return Rejection(
                    name, JUMP,
                    f"{name} rejected: {names[k]} jumped {_g(moved[k])} rad in {dt:.3f} s "
                    f"(max {_g(allowed[k])} rad: {cfg.jump_velocity_factor} x {limits.max_velocity[k]} rad/s "
                    f"+ {cfg.jump_margin_rad})",
                )
        command = commanded(stamp)  # [J] or None
        if cfg.frozen_after_s is not None and previous is not None and np.array_equal(q, previous):
            start, command_then = self._same_since
            if command_then is None and command is not None:
                self._same_since = (float(stamp), command)  # a plan started: measure its motion from here
            elif command is not None and stamp - start >= cfg.frozen_after_s:
                motion = float(np.abs(command - command_then).max())
                if motion > cfg.frozen_min_motion_rad:
                    return Rejection(
                        name, FROZEN,
                        f"{name} rejected: positions identical for {stamp - start:.3f} s while the plan "
                        f"moved {_g(motion)} rad (frozen joint states)",
                    )
        if cfg.max_tracking_error_rad is not None and command is not None:
            error = np.abs(q - command)  # [J]
            if error.max() > cfg.max_tracking_error_rad:
                k = int(np.argmax(error))
                return Rejection(
                    name, TRACKING_ERROR,
                    f"{name} rejected: {names[k]} at {_g(q[k])} rad is {_g(error[k])} rad from the commanded "
                    f"{_g(command[k])} (max {cfg.max_tracking_error_rad}): the arm does not follow",
                )
        return None

    def accept_joint_state(self, name: str, stamp: float, positions: np.ndarray, commanded: np.ndarray | None) -> None:
        """Record an accepted joint state (`commanded`: the plan's position [J] at its stamp)."""
        q = np.asarray(positions, dtype=np.float64).reshape(-1).copy()  # [J]
        if self._last_positions is None or not np.array_equal(q, self._last_positions):
            self._same_since = (float(stamp), None if commanded is None else np.asarray(commanded).copy())
        self._last_positions = q
        self._last_joint_stamp = float(stamp)
        self.accept_stamp(name, stamp)

    @property
    def last_positions(self) -> np.ndarray | None:
        """The last accepted joint positions [J], or None."""
        return None if self._last_positions is None else self._last_positions.copy()
