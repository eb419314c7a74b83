"""Stale-input watchdog: decides whether the robot may be commanded, and says why not.

Every input (cameras, joint states, ...) has a timeout. An input is *fresh* while its last
message is at most ``timeout`` old. After :meth:`InputWatchdog.activate` there is a starvation
grace period: an input that is not fresh yet is only *waiting* (drivers and discovery take a
moment), afterwards it is *stale*. Either way the robot holds; the difference is what is
reported and counted. Messages received before activation count, so a node whose inputs were
already flowing commands at once.

On top of staleness: an enable switch (disabled -> hold; the operator's e-stop is the node's
enable topic, see PolicyRunner.set_enabled). :meth:`InputWatchdog.hold_reason` folds it all
into one string, "" when commanding is allowed, e.g. "stale joint_states", "disabled",
"waiting for wrist_camera" (moe_vla_msgs/PolicyStatus.hold_reason).

Time is passed in (``now`` in seconds); nothing reads a clock. Pure Python: no rclpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from moe_vla_ros.errors import BadInputError


class WatchdogError(BadInputError):
    """Bad watchdog configuration or an unknown input name."""


@dataclass(frozen=True)
class WatchdogConfig:
    """Settings of an :class:`InputWatchdog`.

    Attributes:
        timeouts_s: input name -> largest allowed age of its last message, seconds (> 0).
        startup_grace_s: after activation, inputs that are not fresh count as waiting rather
            than stale for this long, seconds (>= 0).
        start_enabled: whether commanding is enabled before any enable/disable request; False
            for robots where an operator must enable explicitly.
    """

    timeouts_s: Mapping[str, float]
    startup_grace_s: float = 2.0
    start_enabled: bool = True

    def __post_init__(self) -> None:
        timeouts = {str(k): float(v) for k, v in dict(self.timeouts_s).items()}
        if not timeouts:
            raise WatchdogError("timeouts_s must name at least one input")
        bad = {k: v for k, v in timeouts.items() if not (math.isfinite(v) and v > 0.0)}
        if bad:
            raise WatchdogError(f"timeouts_s must be finite and > 0, got {bad}")
        object.__setattr__(self, "timeouts_s", timeouts)
        if not (math.isfinite(self.startup_grace_s) and self.startup_grace_s >= 0.0):
            raise WatchdogError(f"startup_grace_s must be a finite number >= 0, got {self.startup_grace_s!r}")


@dataclass(frozen=True)
class WatchdogReport:
    """Outcome of one :meth:`InputWatchdog.check`.

    Attributes:
        stale: inputs past their timeout (or never seen) after the grace period, config order.
        waiting: inputs not fresh yet during the grace period, config order.
        hold_reason: "" when commanding is allowed, otherwise why not.
    """

    stale: tuple[str, ...]
    waiting: tuple[str, ...]
    hold_reason: str

    @property
    def ok(self) -> bool:
        return not self.hold_reason


@dataclass
class _InputState:
    timeout_s: float
    last_seen: float | None = None
    stale: bool = False
    stale_events: int = 0


class InputWatchdog:
    """Tracks input freshness and the enable state (see the module docstring)."""

    def __init__(self, config: WatchdogConfig) -> None:
        self.config = config
        self._inputs = {name: _InputState(timeout) for name, timeout in config.timeouts_s.items()}
        self._activated_at: float | None = None
        self._enabled = bool(config.start_enabled)

    # -- inputs and switches -------------------------------------------------------------
    def feed(self, name: str, now: float) -> None:
        """Record that a message of input `name` was received at `now`."""
        try:
            state = self._inputs[name]
        except KeyError:
            raise WatchdogError(f"unknown input {name!r}; inputs are {list(self._inputs)}") from None
        state.last_seen = float(now) if state.last_seen is None else max(state.last_seen, float(now))

    def activate(self, now: float) -> None:
        """Start commanding (lifecycle activate); the grace period starts at `now`."""
        self._activated_at = float(now)
        for state in self._inputs.values():
            state.stale = False

    def deactivate(self) -> None:
        """Stop commanding (lifecycle deactivate); last-received times are kept."""
        self._activated_at = None

    @property
    def active(self) -> bool:
        return self._activated_at is not None

    def set_enabled(self, enabled: bool) -> None:
        """Enable or disable commanding (operator switch)."""
        self._enabled = bool(enabled)

    @property
    def enabled(self) -> bool:
        return self._enabled

    # -- evaluation ------------------------------------------------------------------------
    def age(self, name: str, now: float) -> float:
        """Seconds since input `name` was last received (inf when never)."""
        state = self._inputs[name]
        return math.inf if state.last_seen is None else float(now) - state.last_seen

    def check(self, now: float) -> WatchdogReport:
        """Classify every input at `now`, count fresh -> stale transitions, build the hold reason."""
        stale: list[str] = []
        waiting: list[str] = []
        in_grace = self.active and float(now) < self._activated_at + self.config.startup_grace_s
        for name, state in self._inputs.items():
            fresh = state.last_seen is not None and float(now) - state.last_seen <= state.timeout_s
            is_stale = self.active and not fresh and not in_grace
            if not fresh and self.active and in_grace:
                waiting.append(name)
            if is_stale:
                stale.append(name)
                if not state.stale:
                    state.stale_events += 1
            state.stale = is_stale
        return WatchdogReport(tuple(stale), tuple(waiting), self._reason(stale, waiting))

    def _reason(self, stale: list[str], waiting: list[str]) -> str:
        if not self.active:
            return "inactive"
        if not self._enabled:
            return "disabled"
        if stale:
            return "stale " + ", ".join(stale)
        if waiting:
            return "waiting for " + ", ".join(waiting)
        return ""

    def hold_reason(self, now: float) -> str:
        """"" when commands may be sent at `now`, otherwise why not (see :meth:`check`)."""
        return self.check(now).hold_reason

    def stale_event_counts(self) -> dict[str, int]:
        """Input name -> number of times it went from fresh (or waiting) to stale."""
        return {name: state.stale_events for name, state in self._inputs.items()}

    @property
    def total_stale_events(self) -> int:
        """All fresh -> stale transitions so far (moe_vla_msgs/PolicyStatus.stale_inputs)."""
        return sum(state.stale_events for state in self._inputs.values())
