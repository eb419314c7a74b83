"""Configuration of the policy node: every field is a ROS parameter (see params.py).

Pure dataclasses (no rclpy): the node, `bringup` and the tests build the same object from the
same `config/*.yaml`. Nested groups become dotted parameter names (`model.path`, `safety.max_velocity`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from moe_vla_ros.contract import PolicyContract
from moe_vla_ros.control.blending import BLEND_MODES
from moe_vla_ros.control.chunk_config import ChunkExecutorConfig
from moe_vla_ros.control.input_checks import InputCheckConfig
from moe_vla_ros.control.policy_runner import RunnerConfig
from moe_vla_ros.ros.params import param
from moe_vla_ros.errors import BadInputError

BACKENDS = ("onnxruntime", "torch")
PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
TRANSPORTS = ("raw", "compressed")
RELIABILITIES = ("best_effort", "reliable")
DURABILITIES = ("volatile", "transient_local")


class NodeConfigError(BadInputError):
    """A node parameter has an invalid value."""


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise NodeConfigError(f"{name} must be one of {list(choices)}, got {value!r}")


def _positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise NodeConfigError(f"{name} must be > 0, got {value!r}")


@dataclass
class ModelParams:
    path: str = param("", "Model folder with manifest.json (ONNX) or a checkpoint (torch backend). "
                          "Empty: the bundled default model installed with the package.")
    backend: str = param("onnxruntime", "Inference backend.", choices=BACKENDS)
    providers: list[str] = param(
        ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
        "ONNX Runtime execution providers in order of preference; the ones actually in use are "
        "reported in PolicyStatus.", choices=PROVIDERS)
    formulation: str = param("auto", "MoE expert graphs: sparse (loop over experts, fastest on CPU), dense "
                                     "(static shapes, TensorRT) or auto (dense when a GPU provider is in use).",
                             choices=("auto", "sparse", "dense"))
    precision: str = param("fp32", "Use the model's gated int8 (CPU) or fp16 (dense GPU) graphs where exported.",
                           choices=("fp32", "int8", "fp16"))
    device: str = param("cpu", "torch backend device (cpu, cuda, cuda:0).")
    device_id: int = param(0, "GPU index for the TensorRT and CUDA providers.", min=0, max=64)
    trt_engine_cache_dir: str = param("", "TensorRT engine cache directory (empty: ~/.cache/moe_vla_ros/trt). "
                                          "A cached engine matching the graph is reused, never rebuilt.")
    trt_fp16: bool = param(True, "Build TensorRT engines in FP16.")
    trt_workspace_mb: int = param(2048, "TensorRT builder workspace in MiB.", min=64, max=65536)
    intra_op_threads: int = param(1, "ONNX Runtime intra-op threads per session (0: library default).", min=0, max=64)
    warmup_runs: int = param(2, "Inferences run at configure to warm up (excluded from latency stats).", min=0, max=100)
    verify_on_target: bool = param(
        True, "At configure, run the selected variant on this machine's providers on the model's golden "
              "observations and hold it to its export gate; a variant that misses it falls back to the next "
              "(int8/fp16 -> fp32, then the other formulation when auto) with a WARN diagnostic naming why; "
              "none passing or a corrupted golden file fails configure (onnxruntime backend; folders without "
              "golden outputs load unverified).")

    def __post_init__(self) -> None:
        _choice("model.backend", self.backend, BACKENDS)
        _choice("model.formulation", self.formulation, ("auto", "sparse", "dense"))
        _choice("model.precision", self.precision, ("fp32", "int8", "fp16"))
        for p in self.providers:
            _choice("model.providers[]", p, PROVIDERS)
        if not self.providers:
            raise NodeConfigError("model.providers must not be empty")


@dataclass
class RobotParams:
    joint_names: list[str] = param([], "Commanded joints in the model's order; must equal the model contract's "
                                       "joint names (checked at configure). Empty: take them from the model.")
    camera_names: list[str] = param([], "Camera names in the model's order (empty: from the model).")
    position_lower: list[float] = param([], "Lower joint position limits [rad], one per joint (empty: none).")
    position_upper: list[float] = param([], "Upper joint position limits [rad], one per joint (empty: none).")
    max_velocity: list[float] = param([], "Velocity limits [rad/s], one per joint.")
    max_acceleration: list[float] = param([], "Acceleration limits [rad/s^2], one per joint.")

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        for name in ("position_lower", "position_upper", "max_velocity", "max_acceleration"):
            values = getattr(self, name)
            if values and n and len(values) != n:
                raise NodeConfigError(f"robot.{name} has {len(values)} values for {n} joints {self.joint_names}")
            if any(not math.isfinite(v) for v in values):
                raise NodeConfigError(f"robot.{name} has non-finite values: {values}")
        for name in ("max_velocity", "max_acceleration"):
            if any(v <= 0 for v in getattr(self, name)):
                raise NodeConfigError(f"robot.{name} must be positive: {getattr(self, name)}")


@dataclass
class TopicParams:
    camera_topics: list[str] = param(["camera/front/image_raw", "camera/wrist/image_raw"],
                                     "One image topic per camera, in robot.camera_names order.")
    camera_transport: str = param("raw", "raw: sensor_msgs/Image; compressed: sensor_msgs/CompressedImage "
                                         "(jpeg/png) on '<topic>/compressed'.", choices=TRANSPORTS)
    joint_states: str = param("joint_states", "sensor_msgs/JointState topic.")
    instruction: str = param("instruction", "std_msgs/String language instruction topic.")
    enable: str = param("policy/enable", "std_msgs/Bool: false = e-stop (hold), true = release.")
    trajectory: str = param("joint_trajectory_controller/joint_trajectory",
                            "trajectory_msgs/JointTrajectory command topic of the controller.")
    reasoning_trace: str = param("reasoning_trace", "moe_vla_msgs/ReasoningTrace output topic.")
    expert_usage: str = param("expert_usage", "moe_vla_msgs/ExpertUsage output topic.")
    status: str = param("policy_status", "moe_vla_msgs/PolicyStatus output topic.")

    def __post_init__(self) -> None:
        _choice("topics.camera_transport", self.camera_transport, TRANSPORTS)
        if not self.camera_topics:
            raise NodeConfigError("topics.camera_topics must name at least one topic")


@dataclass
class QosParams:
    sensor_reliability: str = param("best_effort", "Reliability of camera/joint-state subscriptions "
                                                   "(best_effort matches every publisher).", choices=RELIABILITIES)
    sensor_depth: int = param(5, "History depth of sensor subscriptions.", min=1, max=100)
    instruction_durability: str = param("volatile", "Durability of the instruction subscription.",
                                        choices=DURABILITIES)

    def __post_init__(self) -> None:
        _choice("qos.sensor_reliability", self.sensor_reliability, RELIABILITIES)
        _choice("qos.instruction_durability", self.instruction_durability, DURABILITIES)


@dataclass
class ExecutionParams:
    sync_slop_s: float = param(0.05, "Max stamp difference between paired camera images and joint state [s].",
                               min=0.001, max=1.0)
    refill_threshold_s: float = param(0.6, "Start the next inference when less than this much of the current "
                                           "chunk remains [s].", min=0.0, max=60.0)
    blend: str = param("smoothstep", "How a new chunk takes over the overlap with the executing one "
                                      "(see moe_vla_ros/control/blending.py).", choices=BLEND_MODES)
    blend_steps: int = param(4, "Most steps blended at a chunk seam.", min=1, max=256)
    exponential_rate: float = param(3.0, "Rate of the exponential blend (larger: hands over sooner).",
                                    min=0.01, max=100.0)
    execution_lead_s: float = param(0.02, "Targets due within this time are treated as already sent to the "
                                          "controller and never changed [s].", min=0.0, max=1.0)
    max_observation_age_s: float = param(0.5, "A chunk computed from an observation older than this is "
                                              "discarded [s].", min=0.01, max=10.0)
    reasoning_rate_hz: float = param(1.0, "Rate of fresh reasoning traces (<= inference rate); 0 disables "
                                          "reasoning (actions follow an empty trace).", min=0.0, max=100.0)
    status_rate_hz: float = param(2.0, "Rate of PolicyStatus and /diagnostics.", min=0.1, max=100.0)
    default_instruction: str = param("", "Instruction used until one arrives on the instruction topic "
                                         "(empty: hold until an instruction arrives).")
    allow_nonzero_velocity_at_trajectory_end: bool = param(
        False, "Let chunks end moving. Must equal the joint_trajectory_controller parameter of the same name: "
               "false (its default since jazzy) refuses trajectories that end with a nonzero velocity, so "
               "every chunk then comes to rest at its last point.")

    def __post_init__(self) -> None:
        _choice("execution.blend", self.blend, BLEND_MODES)
        _positive("execution.sync_slop_s", self.sync_slop_s)


@dataclass
class SafetyParams:
    input_timeout_s: float = param(0.5, "Hold when no fresh camera image or joint state arrived for this long [s].",
                                   min=0.01, max=60.0)
    startup_grace_s: float = param(5.0, "After activation, missing inputs are not yet an error for this long [s].",
                                   min=0.0, max=600.0)
    require_enable: bool = param(False, "Start disabled: command only after true on topics.enable.")
    recovery_s: float = param(1.0, "After a hold for stale or rejected inputs, every input must be good this "
                                   "long before commanding resumes (hysteresis) [s].", min=0.0, max=60.0)
    allow_missing_position_limits: bool = param(
        False, "Activate without robot.position_lower/upper (warns). Off: activation is refused without them. "
               "Velocity and acceleration limits apply on their own whenever they are set.")

    def __post_init__(self) -> None:
        _positive("safety.input_timeout_s", self.input_timeout_s)
        if not (math.isfinite(self.recovery_s) and self.recovery_s >= 0):
            raise NodeConfigError(f"safety.recovery_s must be >= 0, got {self.recovery_s!r}")


@dataclass
class InputCheckParams:
    """control/input_checks.py InputCheckConfig as parameters (a value <= 0 disables an optional check)."""

    position_tolerance_rad: float = param(0.05, "A joint state further outside the position limits than this is "
                                                "rejected and the node holds [rad].", min=0.0, max=1.0)
    jump_velocity_factor: float = param(1.5, "A joint may move at most this factor x its velocity limit x the "
                                             "stamp difference between joint states (degrees, glitches); <= 0: off.",
                                        min=0.0, max=100.0)
    jump_margin_rad: float = param(0.02, "Slack of the jump check [rad].", min=0.0, max=1.0)
    frozen_after_s: float = param(0.3, "Joint states identical for this long while the plan moves the arm are "
                                       "rejected as frozen [s]; <= 0: off (bag replay).", min=0.0, max=60.0)
    frozen_min_motion_rad: float = param(0.02, "Commanded motion over that window that makes identical joint "
                                               "states suspicious [rad].", min=1e-6, max=10.0)
    max_tracking_error_rad: float = param(0.25, "Largest distance between measured and commanded position before "
                                               "the node holds (the arm does not follow) [rad]; <= 0: off "
                                               "(bag replay).", min=0.0, max=10.0)
    max_stamp_age_s: float = param(0.5, "Messages stamped longer ago than this (vs receipt) are rejected [s].",
                                   min=1e-3, max=60.0)
    max_stamp_future_s: float = param(0.05, "Messages stamped further in the future than this are rejected "
                                            "(clocks disagree) [s].", min=0.0, max=60.0)


@dataclass
class PolicyNodeConfig:
    """All parameters of the policy node (`ros2 param describe` shows the descriptions)."""

    model: ModelParams = field(default_factory=ModelParams)
    robot: RobotParams = field(default_factory=RobotParams)
    topics: TopicParams = field(default_factory=TopicParams)
    qos: QosParams = field(default_factory=QosParams)
    execution: ExecutionParams = field(default_factory=ExecutionParams)
    safety: SafetyParams = field(default_factory=SafetyParams)
    input_checks: InputCheckParams = field(default_factory=InputCheckParams)
    autostart: bool = param(False, "Configure and activate on start-up (no lifecycle manager needed).")

    def runner_config(self, contract: PolicyContract) -> RunnerConfig:
        """What these parameters ask of the PolicyRunner for a model with `contract` (the node uses
        it; test/bags/test_evaluate_config.py holds the offline evaluator to the same result)."""
        ex, safety = self.execution, self.safety
        executor_cfg = ChunkExecutorConfig.from_contract(
            contract,
            refill_threshold_s=min(ex.refill_threshold_s, 0.999 * contract.chunk_duration_s),
            blend=ex.blend, blend_steps=ex.blend_steps, exponential_rate=ex.exponential_rate,
            max_observation_age_s=ex.max_observation_age_s, execution_lead_s=ex.execution_lead_s,
            allow_nonzero_end_velocity=ex.allow_nonzero_velocity_at_trajectory_end,
        )
        return RunnerConfig(
            executor=executor_cfg, sync_slop_s=ex.sync_slop_s,
            input_timeout_s=safety.input_timeout_s, startup_grace_s=safety.startup_grace_s,
            start_enabled=not safety.require_enable,
            reasoning_period_s=1.0 / ex.reasoning_rate_hz if ex.reasoning_rate_hz > 0 else None,
            default_instruction=ex.default_instruction,
            recovery_s=safety.recovery_s,
            input_checks=InputCheckConfig.from_params(dataclasses.asdict(self.input_checks)),
        )
