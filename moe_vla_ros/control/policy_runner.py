"""The policy node's logic without ROS: inputs in, commands (or a hold) out.

`PolicyRunner` owns everything between decoded sensor data and a published command:

- inputs (any thread): `add_image`, `add_joint_state`, `set_instruction`, `set_enabled`; every
  message is checked (control/input_checks.py: stamps, limits, jumps, frozen values, tracking
  error), also while a plan executes; a rejected message never reaches the synchroniser or the
  stale-input watchdog, and is counted by reason;
- `step(clock)` (the inference thread): if commanding is allowed (fresh inputs, enabled, an
  instruction, not recovering) and the executing chunk needs a refill, runs the policy on the
  newest synchronised observation not used yet, merges the chunk (blend + safety filter, end at
  rest) and returns what to publish; when commanding stops, returns a hold exactly once.

Holds. A hold is a trajectory joint_trajectory_controller accepts (an empty one is refused):
a stop from the commanded state at the time it reaches the controller (now +
execution_lead_s) to rest within the acceleration limit (ActionChunkExecutor.brake). Without a
plan it holds the last accepted joint state (never a rejected one). A hold is returned once per
transition from commanding into holding; while the runner is not commanding (never commanded
since activation, or its hold is out already) nothing of ours executes and no hold is returned:
the controller already holds, and a hold from an unconfirmed state could only move the arm.
`set_enabled(False, now)` and `hold(now, reason)` return the hold at once (e-stop, deactivate).

Why it holds (`hold_state`/`hold_reason`), in priority order: inactive, disabled (the operator's e-stop), a
rejected joint state (STATE_FAULTS hold at once: out of limits, jump, frozen, tracking error,
NaN), a stale input (no accepted message for input_timeout_s; other rejections such as bad
stamps count as missing), waiting for inputs (startup grace), recovering, no instruction, an
instruction the model cannot read (more than `max_unread_words` of its words are outside the
vocabulary or past the model's instruction length: the policy would guess, so it holds and says
which words; a new instruction lifts it).
After a hold caused by a stale or rejected input, commanding resumes only when every input has
been good continuously for `recovery_s` (hysteresis against hold/resume cycling).

A command is never computed from stale, malformed or NaN data: bad inputs are rejected before
they reach the synchroniser, observations older than `max_observation_age_s` are never used,
a hold reason that appears during inference discards the chunk, and the executor rejects
non-finite or stale chunks. Pure numpy: no rclpy, no torch.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from moe_vla_ros.control.chunk_config import ChunkExecutorConfig
from moe_vla_ros.control.chunking import AcceptResult, ActionChunkExecutor, PlannedTrajectory
from moe_vla_ros.control.input_checks import MALFORMED, InputCheckConfig, InputChecker, Rejection
from moe_vla_ros.control.joint_state import JointVector
from moe_vla_ros.control.latency import LatencyEstimator, LatencyEstimatorConfig, LatencySummary
from moe_vla_ros.control.safety import SafetyFilter, SafetyLimits
from moe_vla_ros.control.sync import ApproximateTimeSync, SyncConfig
from moe_vla_ros.control.watchdog import InputWatchdog, WatchdogConfig
from moe_vla_ros.runtime.types import Observation, ObservationError, Policy, PolicyOutput

JOINT_STATES = "joint_states"


def camera_input(name: str) -> str:
    """Name of a camera's input in the synchroniser and the watchdog."""
    return f"camera/{name}"


HOLD_INACTIVE = "inactive"
HOLD_DISABLED = "disabled"
HOLD_WAITING = "waiting_for_input"
HOLD_STALE = "stale_input"
HOLD_REJECTED = "rejected_input"
HOLD_NO_INSTRUCTION = "no_instruction"
HOLD_UNREAD_INSTRUCTION = "unread_instruction"
HOLD_INFERENCE = "inference_error"
HOLD_ERROR = "error"
HOLD_REQUESTED = "requested"
HOLD_CODES = (
    HOLD_INACTIVE, HOLD_DISABLED, HOLD_WAITING, HOLD_STALE, HOLD_REJECTED, HOLD_NO_INSTRUCTION,
    HOLD_UNREAD_INSTRUCTION, HOLD_INFERENCE, HOLD_ERROR, HOLD_REQUESTED,
)
"""Keys of RunnerCounters.holds_by_reason (and of `PolicyRunner.hold_state`). While recovering
from a stale or rejected input the code stays that of the cause."""


@dataclass(frozen=True)
class RunnerConfig:
    """Settings of a PolicyRunner (the node fills them from its parameters).

    Attributes:
        executor: chunk execution settings (refill threshold, blending, max observation age,
            execution lead, end velocity).
        sync_slop_s: largest stamp difference inside one observation, seconds; > 0.
        input_timeout_s: an input without an accepted message for this long makes the runner
            hold, seconds; > 0.
        startup_grace_s: after activation, missing inputs are waited for this long; >= 0.
        start_enabled: False: hold until set_enabled(True) (operator enable).
        reasoning_period_s: fresh reasoning at most this often; None: never (empty reasoning).
        default_instruction: instruction used until one arrives ("" = hold until then).
        recovery_s: after a hold caused by a stale or rejected input, commanding resumes only
            once every input has been good (accepted, no gap longer than input_timeout_s)
            continuously for this long, seconds; >= 0 (0: at once). Hysteresis against
            hold/resume cycling on a flaky input.
        input_checks: thresholds of the per-message checks (control/input_checks.py).
        max_unread_words: most words of an instruction the model may not read (unknown to its
            vocabulary, or past its instruction length) before the runner holds instead of
            guessing; >= -1 (0: every word must be known; -1: never hold for this). Only
            policies that can tell (`Policy.read_instruction`) are checked.
    """

    executor: ChunkExecutorConfig
    sync_slop_s: float = 0.05
    input_timeout_s: float = 0.5
    startup_grace_s: float = 5.0
    start_enabled: bool = True
    reasoning_period_s: float | None = 1.0
    default_instruction: str = ""
    recovery_s: float = 1.0
    input_checks: InputCheckConfig = field(default_factory=InputCheckConfig)
    max_unread_words: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.executor, ChunkExecutorConfig):
            raise ValueError(f"executor must be a ChunkExecutorConfig, got {type(self.executor).__name__}")
        if not isinstance(self.input_checks, InputCheckConfig):
            raise ValueError(f"input_checks must be an InputCheckConfig, got {type(self.input_checks).__name__}")
        for name, allow_zero in (("sync_slop_s", False), ("input_timeout_s", False),
                                 ("startup_grace_s", True), ("recovery_s", True)):
            value = getattr(self, name)
            number = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
            if not number or value < 0 or (value == 0 and not allow_zero):
                raise ValueError(f"{name} must be a number {'>= 0' if allow_zero else '> 0'}, got {value!r}")
        if self.reasoning_period_s is not None and not self.reasoning_period_s > 0:
            raise ValueError(f"reasoning_period_s must be > 0 or None, got {self.reasoning_period_s!r}")
        if isinstance(self.max_unread_words, bool) or not isinstance(self.max_unread_words, int) \
                or self.max_unread_words < -1:
            raise ValueError(f"max_unread_words must be an integer >= -1, got {self.max_unread_words!r}")


@dataclass(frozen=True)
class Command:
    """What the node publishes after one step.

    Attributes:
        trajectory: the points to send to the controller, as a JointTrajectory
            (ros/conversions.planned_trajectory_to_msg). For a chunk: the plan still to execute.
            For a hold (`is_hold`): a stop the controller accepts: from the commanded state at
            the arrival time (now + execution_lead_s) to rest within the acceleration limit,
            last velocity 0. None only for a hold with no known state to hold at (nothing
            commanded and no accepted joint state): publish nothing then.
        output: the inference that produced the trajectory (None for a hold).
        accept: the executor's verdict on the new chunk (None for a hold).
        hold_reason: why the runner holds ("" when commanding).
        is_hold: the command stops the arm (published once per transition into holding).
    """

    trajectory: PlannedTrajectory | None
    output: PolicyOutput | None = None
    accept: AcceptResult | None = None
    hold_reason: str = ""
    is_hold: bool = False


@dataclass
class RunnerCounters:
    """What the runner counted since construction.

    Attributes:
        chunks_published: chunk commands returned by `step`.
        rejected_chunks: chunks the executor refused.
        rejected_inputs: input messages rejected (checks, malformed, invalid observation).
        inference_errors: model or loop errors.
        holds: hold commands returned (transitions from commanding into holding).
        last_error: the latest error or rejection text.
        errors_by_input: rejected messages per input name.
        rejected_by_reason: rejected messages per "<input>/<code>" (input_checks.REJECTION_CODES),
            e.g. "joint_states/out_of_limits", "camera/front/stamp_too_old".
        holds_by_reason: hold commands per HOLD_CODES entry, e.g. "stale_input", "disabled".
    """

    chunks_published: int = 0
    rejected_chunks: int = 0
    rejected_inputs: int = 0
    inference_errors: int = 0
    holds: int = 0
    last_error: str = ""
    errors_by_input: dict[str, int] = field(default_factory=dict)
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    holds_by_reason: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Sample:
    stamp: float
    joints: JointVector | None = None
    image: np.ndarray | None = None


def _bump(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


class PolicyRunner:
    """See the module docstring. Thread-safe: inputs and `step` may run on different threads."""

    def __init__(self, policy: Policy, config: RunnerConfig, limits: SafetyLimits | None = None) -> None:
        self.policy = policy
        self.config = config
        sensors = policy.contract.sensors
        if limits is not None and limits.joint_names != sensors.joint_names:
            raise ValueError(f"safety limits joints {list(limits.joint_names)} != model joints {list(sensors.joint_names)}")
        self.limits = limits
        self.cameras = sensors.camera_names
        inputs = tuple(camera_input(c) for c in self.cameras) + (JOINT_STATES,)
        tolerance = config.input_checks.position_tolerance_rad
        safety = SafetyFilter(limits, start_tolerance_rad=tolerance) if limits is not None else None
        self.executor = ActionChunkExecutor(config.executor, safety)
        self.sync = ApproximateTimeSync(SyncConfig(inputs, slop_s=config.sync_slop_s))
        self.watchdog = InputWatchdog(
            WatchdogConfig(dict.fromkeys(inputs, config.input_timeout_s), config.startup_grace_s, config.start_enabled)
        )
        self.checks = InputChecker(config.input_checks, sensors.joint_names, limits)
        self.latency = LatencyEstimator(LatencyEstimatorConfig())
        self.counters = RunnerCounters()
        self._lock = threading.Lock()
        self._instruction = ""
        self._unread = ""  # why the instruction cannot be read ("" when it can)
        self._set_instruction_locked(config.default_instruction.strip())
        self._latest: Observation | None = None
        self._latest_velocity: np.ndarray | None = None
        self._last_used_stamp = -np.inf
        self._last_reasoning_time = -np.inf
        self._commanding = False
        self._reset_input_state()

    def _reset_input_state(self) -> None:
        self.checks.reset()
        self._fault = ""  # text of the joint-state rejection that holds right now ("" when none)
        self._rejected: dict[str, str] = {}  # input -> its last rejection, until it is accepted again
        self._last_accepted: dict[str, float] = {}  # input -> receipt time of its last accepted message
        self._bad_until = -math.inf  # last time an input was rejected or had a gap (receipt/step time)
        self._recovering: tuple[str, str] | None = None  # (hold code, cause) while recovery_s is running

    # -- inputs -------------------------------------------------------------------------------
    def add_image(self, camera: str, stamp: float, rgb: np.ndarray, now: float) -> None:
        """A decoded RGB image at the contract size (the caller converts and resizes), stamped
        `stamp` (header), received at `now`."""
        sensors = self.policy.contract.sensors
        want = (sensors.image_height, sensors.image_width, 3)
        name = camera_input(camera)
        if camera not in self.cameras:
            return self.reject_input(name, f"unknown camera {camera!r}", now)
        if rgb.dtype != np.uint8 or rgb.shape != want:
            return self.reject_input(name, f"image must be uint8 {want}, got {rgb.dtype} {rgb.shape}", now)
        with self._lock:
            rejection = self.checks.check_stamp(name, float(stamp), now)
            if rejection is not None:
                return self._reject_locked(rejection, now)
            self.checks.accept_stamp(name, float(stamp))
            self._add_locked(name, _Sample(float(stamp), image=rgb), now)

    def add_joint_state(self, stamp: float, joints: JointVector, now: float) -> None:
        """Joint positions (and velocities) in contract order (the caller maps names), stamped
        `stamp` (header), received at `now`. Checked (input_checks) before anything uses it."""
        positions = np.asarray(joints.positions, dtype=np.float64).reshape(-1)  # [J]
        num_joints = self.policy.contract.sensors.num_joints
        if positions.shape != (num_joints,):
            return self.reject_input(JOINT_STATES, f"expected {num_joints} positions, got {positions.shape}", now)
        velocities = joints.velocities
        if velocities is not None:
            velocities = np.asarray(velocities, dtype=np.float64).reshape(-1)  # [J]
            if velocities.shape != (num_joints,) or not np.isfinite(velocities).all():
                velocities = None  # positions are fine; don't trust velocities
        with self._lock:
            rejection = self.checks.check_joint_state(
                JOINT_STATES, float(stamp), positions, now, self._commanded_position
            )
            if rejection is not None:
                return self._reject_locked(rejection, now)
            self.checks.accept_joint_state(JOINT_STATES, float(stamp), positions, self._commanded_position(stamp))
            self._fault = ""
            self._add_locked(JOINT_STATES, _Sample(float(stamp), joints=JointVector(positions, velocities)), now)

    def reject_input(self, name: str, reason: str, now: float | None = None, code: str = MALFORMED) -> None:
        """Count an input the caller could not decode (e.g. an image that cannot be converted, a
        joint state with NaN: `code` NON_FINITE, a state fault that holds at once); it is never
        used, so the watchdog sees it as missing. With `now`, it also restarts a running recovery."""
        with self._lock:
            self._reject_locked(Rejection(name, code, f"{name} rejected: {reason}"), now)

    def _reject_locked(self, rejection: Rejection, now: float | None) -> None:
        c = self.counters
        c.rejected_inputs += 1
        _bump(c.errors_by_input, rejection.input)
        _bump(c.rejected_by_reason, rejection.key)
        c.last_error = rejection.text
        self._rejected[rejection.input] = rejection.text
        if now is not None:
            self._bad_until = max(self._bad_until, float(now))
        if rejection.is_state_fault:  # the measured state contradicts limits or plan: hold at once
            self._fault = rejection.text
            self._recovering = (HOLD_REJECTED, rejection.text)

    def _commanded_position(self, t: float) -> np.ndarray | None:
        """Position [J] the executing policy plan commands at `t` (None while holding/idle)."""
        if not self._commanding or self.executor.holding:
            return None
        state = self.executor.state_at(t)
        return None if state is None else state[0]

    def _add_locked(self, name: str, sample: _Sample, now: float) -> None:
        previous = self._last_accepted.get(name)
        if previous is not None and now - previous > self.config.input_timeout_s:
            # the input was stale in between (the step may not have seen it): recover first
            self._bad_until = max(self._bad_until, now)
            self._recovering = (HOLD_STALE, f"stale {name}: {now - previous:.3f} s without an accepted message")
        self._last_accepted[name] = now
        self._rejected.pop(name, None)
        self.watchdog.feed(name, now)
        synced = self.sync.add(name, sample.stamp, sample)
        if synced is None:
            return
        joints: JointVector = synced.items[JOINT_STATES].joints
        stamp = max(synced.stamps[camera_input(c)] for c in self.cameras)
        self._latest = Observation(
            images={c: synced.items[camera_input(c)].image for c in self.cameras},
            joint_positions=joints.positions,
            instruction=self._instruction,
            stamp=stamp,
        )
        self._latest_velocity = joints.velocities

    def record_error(self, text: str, now: float | None = None) -> Command | None:
        """An error outside the model (e.g. publishing failed): counted, reported, commanding
        stops. With `now`: returns the hold to publish (a stop from the commanded state; None
        when not commanding); without: the plan is dropped."""
        with self._lock:
            self.counters.inference_errors += 1
            self.counters.last_error = text
            if now is None:
                self.executor.reset()
                self._commanding = False
                return None
            return self._hold(HOLD_ERROR, text, now)

    def set_instruction(self, text: str) -> None:
        """A new instruction forces fresh reasoning; its first chunk replaces the executing plan
        at once (from the commanded state at the seam, no blending with the old task)."""
        with self._lock:
            text = text.strip()
            if text == self._instruction:
                return
            self._set_instruction_locked(text)
            self.executor.take_over()
            self.policy.reset()
            self._last_reasoning_time = -np.inf
            if self._latest is not None:
                self._latest = Observation(self._latest.images, self._latest.joint_positions, text, self._latest.stamp)

    def _set_instruction_locked(self, text: str) -> None:
        self._instruction = text
        self._unread = ""
        reading = self.policy.read_instruction(text) if text else None
        limit = self.config.max_unread_words
        if reading is not None and limit >= 0 and len(reading.unread_words) > limit:
            self._unread = f"instruction {text!r} not understood: {reading.describe()} (at most {limit} allowed)"

    @property
    def instruction(self) -> str:
        return self._instruction

    @property
    def instruction_problem(self) -> str:
        """Why the current instruction makes the runner hold ("" when the model can read it)."""
        return self._unread

    def set_enabled(self, enabled: bool, now: float | None = None) -> Command | None:
        """Operator enable/disable (e-stop). Disabling with `now` returns the hold to publish at
        once (None when not commanding); without `now` the next `step` returns it."""
        with self._lock:
            self.watchdog.set_enabled(enabled)
            if enabled or now is None:
                return None
            return self._hold(HOLD_DISABLED, "disabled", now)

    def hold(self, now: float, reason: str, code: str = HOLD_REQUESTED) -> Command | None:
        """Stop commanding now (e.g. lifecycle deactivate): the hold to publish, or None when the
        runner is not commanding (nothing of ours is executing)."""
        with self._lock:
            return self._hold(code, reason, now)

    def activate(self, now: float) -> None:
        """Start fresh (a new episode): no plan, no cached observation, reasoning or input history."""
        with self._lock:
            self.watchdog.activate(now)
            self.sync.reset()
            self.executor.reset()
            self.policy.reset()
            self._latest = None
            self._last_used_stamp = -np.inf
            self._last_reasoning_time = -np.inf
            self._commanding = False
            self._reset_input_state()

    def deactivate(self) -> None:
        with self._lock:
            self.watchdog.deactivate()
            self.executor.reset()
            self._commanding = False

    # -- the inference thread -----------------------------------------------------------------
    def hold_state(self, now: float) -> tuple[str, str]:
        """(code, reason) of why commanding is not allowed at `now`; ("", "") when it is.
        Codes are HOLD_CODES; reasons are for people (PolicyStatus.hold_reason)."""
        with self._lock:
            return self._hold_state(now)

    def hold_reason(self, now: float) -> str:
        """Why commanding is not allowed at `now` ("" when it is), e.g. "disabled",
        "joint_states rejected: joint_2 at 3.05 rad outside [-2.0, 2.0]+0.05",
        "stale camera/front (camera/front rejected: stamp 0.812 s old (max 0.5 s))",
        "recovering: inputs good for 0.42 of 1.0 s after: stale camera/front ..."."""
        return self.hold_state(now)[1]

    def _describe(self, name: str) -> str:
        rejected = self._rejected.get(name)
        return f"{name} ({rejected})" if rejected else name

    def _hold_state(self, now: float) -> tuple[str, str]:
        report = self.watchdog.check(now)
        reason = report.hold_reason
        for code in (HOLD_INACTIVE, HOLD_DISABLED):
            if reason == code:
                return code, reason
        if self._fault:
            return HOLD_REJECTED, self._fault
        # an input that had arrived since activation and went silent is stale, also in the grace period
        stale = [n for n in self.watchdog.config.timeouts_s if n in report.stale or
                 (n in report.waiting and n in self._last_accepted)]
        waiting = [n for n in report.waiting if n not in self._last_accepted]
        if stale:
            self._bad_until = max(self._bad_until, now)
            text = "stale " + ", ".join(self._describe(name) for name in stale)
            self._recovering = (HOLD_STALE, text)
            return HOLD_STALE, text
        if waiting:
            return HOLD_WAITING, "waiting for " + ", ".join(self._describe(name) for name in waiting)
        if self._recovering is not None:
            good = now - self._bad_until
            code, cause = self._recovering
            if good < self.config.recovery_s:
                good_s = f"{max(good, 0.0):.2f} of {self.config.recovery_s} s"
                return code, f"recovering: inputs good for {good_s} after: {cause}"
            self._recovering = None
        if not self._instruction:
            return HOLD_NO_INSTRUCTION, "no instruction"
        if self._unread:
            return HOLD_UNREAD_INSTRUCTION, self._unread
        return "", ""

    def step(self, clock: Callable[[], float]) -> Command | None:
        """One pass of the inference loop; returns what to publish, or None (nothing to do)."""
        now = clock()
        with self._lock:
            code, reason = self._hold_state(now)
            if reason:
                return self._hold(code, reason, now)
            if not self.executor.needs_refill(now, self.latency.expected(default_s=0.0)):
                return None
            obs, velocity = self._latest, self._latest_velocity
            max_age = self.config.executor.max_observation_age_s
            if obs is None or obs.stamp <= self._last_used_stamp or now - obs.stamp > max_age:
                return None  # no fresh observation yet: keep executing the current plan
            self._last_used_stamp = obs.stamp
            period = self.config.reasoning_period_s
            generate = period is not None and now - self._last_reasoning_time >= period
        try:
            obs.validate(self.policy.contract)
            output = self.policy.infer(obs, generate_reasoning=generate)
        except ObservationError as e:
            with self._lock:
                self.counters.rejected_inputs += 1
                _bump(self.counters.rejected_by_reason, "observation/invalid")
                self.counters.last_error = f"observation: {e}"
            return None
        except Exception as e:
            with self._lock:
                self.counters.inference_errors += 1
                self.counters.last_error = f"inference: {type(e).__name__}: {e}"
                return self._hold(HOLD_INFERENCE, f"inference failed: {e}", clock())
        with self._lock:
            done = clock()  # after the lock: waiting for it must not eat into the lead
            code, reason = self._hold_state(done)
            if reason:  # e-stop, a rejected input, ... during inference: never publish the chunk
                return self._hold(code, reason, done)
            if obs.instruction != self._instruction:
                return None  # the instruction changed during inference: this chunk answers the old one
            self.latency.add(output.latency_s)
            if output.reasoning_is_new:
                self._last_reasoning_time = now
            result = self.executor.accept(
                output.actions, obs.stamp, done, current_position=obs.joint_positions, current_velocity=velocity
            )
            if not result.accepted:
                self.counters.rejected_chunks += 1
                self.counters.last_error = f"chunk {result.chunk_id} rejected: {result.reason}"
                return None
            plan = self.executor.trajectory(done)
            if plan is None:
                return None
            self._commanding = True
            self.counters.chunks_published += 1
            return Command(plan, output, result)

    def at_send(self, command: Command, now: float) -> Command:
        """`command` as sent at `now` (call it right before publishing a chunk's command): a
        plan from rest whose sending came late moves later, so the controller still gets the
        whole start lead (ActionChunkExecutor.send_from). Holds are sent as they are."""
        if command.is_hold or command.trajectory is None:
            return command
        with self._lock:
            if not self._commanding or self.executor.active_chunk_id != command.accept.chunk_id:
                return command  # held or superseded meanwhile: the caller does not send it
            trajectory = self.executor.send_from(now)
        return command if trajectory is None else replace(command, trajectory=trajectory)

    def _hold(self, code: str, reason: str, now: float) -> Command | None:
        """Called with the lock held: once per transition out of commanding, replace the plan by
        a stop and return it as the hold (module docstring)."""
        if not self._commanding:
            return None  # nothing of ours executes (never commanded, or the hold is out already)
        self._commanding = False
        trajectory = self.executor.brake(now, self.checks.last_positions)
        self.counters.holds += 1
        _bump(self.counters.holds_by_reason, code)
        return Command(trajectory, hold_reason=reason, is_hold=True)

    # -- status --------------------------------------------------------------------------------
    @property
    def commanding(self) -> bool:
        return self._commanding

    def latency_summary(self) -> LatencySummary:
        with self._lock:
            return self.latency.summary()

    def input_drop_count(self) -> int:
        with self._lock:
            return int(self.sync.dropped)

    def stale_event_count(self) -> int:
        with self._lock:
            return int(self.watchdog.total_stale_events)
