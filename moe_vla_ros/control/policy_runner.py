"""The policy node's logic without ROS: inputs in, commands (or a hold) out.

`PolicyRunner` owns everything between decoded sensor data and a published command:

- inputs (any thread): `add_image`, `add_joint_state`, `set_instruction`, `set_enabled`; each
  is validated and fed to the approximate-time synchroniser and the stale-input watchdog;
- `step(clock)` (the inference thread): if commanding is allowed (fresh inputs, enabled, an
  instruction) and the executing chunk needs a refill, runs the policy on the newest
  synchronised observation not used yet, merges the chunk (blend + safety filter) and returns
  what to publish; when commanding stops, returns a hold exactly once.

A command is never computed from stale, malformed or NaN data: bad inputs are rejected before
they reach the synchroniser, observations older than `max_observation_age_s` are never used,
and the executor rejects non-finite or stale chunks. Pure numpy: no rclpy, no torch.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from moe_vla_ros.control.chunk_config import ChunkExecutorConfig
from moe_vla_ros.control.chunking import AcceptResult, ActionChunkExecutor, PlannedTrajectory
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


@dataclass(frozen=True)
class RunnerConfig:
    """Settings of a PolicyRunner (the node fills them from its parameters).

    Attributes:
        executor: chunk execution settings (refill threshold, blending, max observation age).
        sync_slop_s: largest stamp difference inside one observation, seconds.
        input_timeout_s: an input older than this makes the runner hold, seconds.
        startup_grace_s: after activation, missing inputs are waited for this long.
        start_enabled: False: hold until set_enabled(True) (operator enable).
        reasoning_period_s: fresh reasoning at most this often; None: never (empty reasoning).
        default_instruction: instruction used until one arrives ("" = hold until then).
    """

    executor: ChunkExecutorConfig
    sync_slop_s: float = 0.05
    input_timeout_s: float = 0.5
    startup_grace_s: float = 5.0
    start_enabled: bool = True
    reasoning_period_s: float | None = 1.0
    default_instruction: str = ""

    def __post_init__(self) -> None:
        if self.reasoning_period_s is not None and not self.reasoning_period_s > 0:
            raise ValueError(f"reasoning_period_s must be > 0 or None, got {self.reasoning_period_s!r}")


@dataclass(frozen=True)
class Command:
    """What the node publishes after one step.

    Attributes:
        trajectory: points to send to the controller; None means HOLD (publish an empty
            JointTrajectory: joint_trajectory_controller stops at its current position).
        output: the inference that produced the trajectory (None for a hold).
        accept: the executor's verdict on the new chunk (None for a hold).
        hold_reason: why the runner holds ("" when commanding).
    """

    trajectory: PlannedTrajectory | None
    output: PolicyOutput | None = None
    accept: AcceptResult | None = None
    hold_reason: str = ""


@dataclass
class RunnerCounters:
    chunks_published: int = 0
    rejected_chunks: int = 0
    rejected_inputs: int = 0
    inference_errors: int = 0
    last_error: str = ""
    errors_by_input: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Sample:
    stamp: float
    joints: JointVector | None = None
    image: np.ndarray | None = None


class PolicyRunner:
    """See the module docstring. Thread-safe: inputs and `step` may run on different threads."""

    def __init__(self, policy: Policy, config: RunnerConfig, limits: SafetyLimits | None = None) -> None:
        self.policy = policy
        self.config = config
        sensors = policy.contract.sensors
        if limits is not None and limits.joint_names != sensors.joint_names:
            raise ValueError(f"safety limits joints {list(limits.joint_names)} != model joints {list(sensors.joint_names)}")
        self.cameras = sensors.camera_names
        inputs = tuple(camera_input(c) for c in self.cameras) + (JOINT_STATES,)
        self.executor = ActionChunkExecutor(config.executor, SafetyFilter(limits) if limits else None)
        self.sync = ApproximateTimeSync(SyncConfig(inputs, slop_s=config.sync_slop_s))
        self.watchdog = InputWatchdog(
            WatchdogConfig({name: config.input_timeout_s for name in inputs}, config.startup_grace_s, config.start_enabled)
        )
        self.latency = LatencyEstimator(LatencyEstimatorConfig())
        self.counters = RunnerCounters()
        self._lock = threading.Lock()
        self._instruction = config.default_instruction.strip()
        self._latest: Observation | None = None
        self._latest_velocity: np.ndarray | None = None
        self._last_used_stamp = -np.inf
        self._last_reasoning_time = -np.inf
        self._commanding = False

    # -- inputs -------------------------------------------------------------------------------
    def add_image(self, camera: str, stamp: float, rgb: np.ndarray, now: float) -> None:
        """A decoded RGB image at the contract size (the caller converts and resizes)."""
        sensors = self.policy.contract.sensors
        want = (sensors.image_height, sensors.image_width, 3)
        if camera not in self.cameras:
            return self.reject_input(camera_input(camera), f"unknown camera {camera!r}")
        if rgb.dtype != np.uint8 or rgb.shape != want:
            return self.reject_input(camera_input(camera), f"image must be uint8 {want}, got {rgb.dtype} {rgb.shape}")
        self._add(camera_input(camera), _Sample(stamp, image=rgb), now)

    def add_joint_state(self, stamp: float, joints: JointVector, now: float) -> None:
        """Joint positions (and velocities) in contract order (the caller maps names)."""
        if not np.all(np.isfinite(joints.positions)):
            return self.reject_input(JOINT_STATES, "joint positions contain NaN/inf")
        if joints.velocities is not None and not np.all(np.isfinite(joints.velocities)):
            joints = JointVector(joints.positions, None)  # positions are fine; don't trust velocities
        self._add(JOINT_STATES, _Sample(stamp, joints=joints), now)

    def reject_input(self, name: str, reason: str) -> None:
        """Count a malformed input; it is never used (and so the watchdog sees it as missing)."""
        with self._lock:
            self.counters.rejected_inputs += 1
            self.counters.errors_by_input[name] = self.counters.errors_by_input.get(name, 0) + 1
            self.counters.last_error = f"{name}: {reason}"

    def _add(self, name: str, sample: _Sample, now: float) -> None:
        with self._lock:
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

    def record_error(self, text: str) -> None:
        """An error outside the model (e.g. publishing failed): counted, reported, the plan dropped."""
        with self._lock:
            self.counters.inference_errors += 1
            self.counters.last_error = text
            self.executor.reset()
            self._commanding = False

    def set_instruction(self, text: str) -> None:
        """A new instruction drops the executing plan and forces fresh reasoning."""
        with self._lock:
            text = text.strip()
            if text == self._instruction:
                return
            self._instruction = text
            self.executor.reset()
            self.policy.reset()
            self._last_reasoning_time = -np.inf
            if self._latest is not None:
                self._latest = Observation(self._latest.images, self._latest.joint_positions, text, self._latest.stamp)

    @property
    def instruction(self) -> str:
        return self._instruction

    def set_enabled(self, enabled: bool) -> None:
        with self._lock:
            self.watchdog.set_enabled(enabled)

    def activate(self, now: float) -> None:
        """Start fresh (a new episode): no plan, no cached observation or reasoning."""
        with self._lock:
            self.watchdog.activate(now)
            self.sync.reset()
            self.executor.reset()
            self.policy.reset()
            self._latest = None
            self._last_used_stamp = -np.inf
            self._last_reasoning_time = -np.inf
            self._commanding = False

    def deactivate(self) -> None:
        with self._lock:
            self.watchdog.deactivate()
            self.executor.reset()
            self._commanding = False

    # -- the inference thread -----------------------------------------------------------------
    def hold_reason(self, now: float) -> str:
        reason = self.watchdog.hold_reason(now)
        if not reason and not self._instruction:
            reason = "no instruction"
        return reason

    def step(self, clock: Callable[[], float]) -> Command | None:
        """One pass of the inference loop; returns what to publish, or None (nothing to do)."""
        now = clock()
        with self._lock:
            reason = self.hold_reason(now)
            if reason:
                return self._hold(reason)
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
                self.counters.last_error = f"observation: {e}"
            return None
        except Exception as e:  # noqa: BLE001 - a failing model must never take the node down
            with self._lock:
                self.counters.inference_errors += 1
                self.counters.last_error = f"inference: {type(e).__name__}: {e}"
                return self._hold(f"inference failed: {e}")
        done = clock()
        with self._lock:
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

    def _hold(self, reason: str) -> Command | None:
        """Called with the lock held: drop the plan; report the hold once per transition."""
        self.executor.reset()
        if not self._commanding:
            return None
        self._commanding = False
        return Command(None, hold_reason=reason)

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

    def input_ages(self, now: float) -> Mapping[str, float]:
        with self._lock:
            return {name: self.watchdog.age(name, now) for name in self.watchdog.config.timeouts_s}
