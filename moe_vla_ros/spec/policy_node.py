"""The policy node's spec: every setting of the node, once (pure: no rclpy, no torch).

`PolicyNodeConfig` is a nested dataclass whose fields are the node's ROS parameters (dotted
names: `model.path`, `safety.max_velocity`; `spec/described.py`), each with its default,
description, range/choices and validation. Everything that runs the node's logic builds from it:

- the node (ros/policy_node.py) declares it as parameters (ros/params.py) and builds its model,
  limits and PolicyRunner with the methods below;
- closed-loop evaluation and bag replay evaluation start the node process with a
  `NodeInvocation` (files, fixed values, the user's overrides -> its command line and the
  config it will run with); `moe_vla_bringup` runs it in-process from the same files;
- the offline bag evaluator (evaluation/bag/config.py) holds one and builds its PolicyRunner
  with the same `runner_config()`, limits with `safety_limits()` and checks the model with
  `check_contract()`, so it decides exactly as the node would from the same YAML.

Adding a setting is one edit: a `param()` field in one of the groups below, used where the group
builds its part (`ModelParams.runtime_config`, `PolicyNodeConfig.runner_config`, ...). The choices
and ranges of `model.*` are those of runtime/config.py (one definition).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from moe_vla_ros.contract import ContractError, PolicyContract
from moe_vla_ros.control.blending import BLEND_MODES
from moe_vla_ros.control.chunk_config import ChunkExecutorConfig
from moe_vla_ros.control.input_checks import InputCheckConfig
from moe_vla_ros.control.policy_runner import RunnerConfig
from moe_vla_ros.control.safety import SafetyLimits
from moe_vla_ros.errors import BadInputError
from moe_vla_ros.param_files import load_params_file
from moe_vla_ros.paths import bundled_model_dir, find_share_file
from moe_vla_ros.runtime.config import (
    BACKENDS,
    FORMULATION_CHOICES,
    INT_RANGES,
    KNOWN_PROVIDERS,
    PRECISION_CHOICES,
    TRITON_RANGES,
    RuntimeConfig,
    RuntimeConfigError,
    TritonConfig,
)
from moe_vla_ros.spec.described import build_config, flat_values, param, ros_arguments
from moe_vla_ros.validation import require_choice, require_non_negative, require_positive

NODE_NAME = "policy_node"
INFERENCE_POLL_S = 0.005  # how often the node's inference loop asks the runner for work (wall clock)
PROVIDERS = KNOWN_PROVIDERS
TRANSPORTS = ("raw", "compressed")
RELIABILITIES = ("best_effort", "reliable")
DURABILITIES = ("volatile", "transient_local")
# What config/bag_replay.yaml sets: a recorded arm follows the recorded commands, not the policy's.
OPEN_LOOP_INPUT_CHECKS = {"max_tracking_error_rad": 0.0, "frozen_after_s": 0.0}


class NodeConfigError(BadInputError):
    """A node parameter has an invalid value."""


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    require_choice(name, value, choices, error=NodeConfigError)


def _positive(name: str, value: float) -> None:
    require_positive(name, value, error=NodeConfigError)


def _int_range(name: str) -> dict[str, int]:
    lo, hi = INT_RANGES[name]
    return {"min": lo, "max": hi}


def _triton_range(name: str) -> dict[str, float]:
    lo, hi = TRITON_RANGES[name]
    return {"min": lo, "max": hi}


@dataclass
class TritonParams:
    """model.triton.*: the policy server of `model.backend: triton` (runtime/config.py TritonConfig)."""

    url: str = param("127.0.0.1:8001", "gRPC endpoint (host:port) of the Triton Inference Server serving the "
                                       "repository made from model.path by moe_vla_triton_repository.")
    deadline_s: float = param(
        0.08, "Deadline of one inference (all its gRPC calls) [s]; must be shorter than the model's control "
              "period (checked at configure): a late answer or a lost server is a hold, never a stale command.",
        **_triton_range("deadline_s"))
    connect_timeout_s: float = param(5.0, "Per call at configure (server and model checks) and per warm-up "
                                          "inference [s].", **_triton_range("connect_timeout_s"))
    model_version: str = param("", "Served model version (empty: the server's choice).")
    ssl: bool = param(False, "gRPC over TLS.")
    fallback_onboard: bool = param(
        False, "Also load model.path with ONNX Runtime at configure (model.providers, formulation, precision, "
               "verify_on_target apply); after a missed deadline or a lost server the node holds for that step "
               "and continues on the onboard policy (PolicyStatus backend/last_error, WARN diagnostic, log).")
    retry_primary_s: float = param(
        5.0, "With fallback_onboard: how often to try the server again while running onboard; its first good "
             "answer switches back (a failed try is served onboard, no hold) [s]; 0: stay onboard until the "
             "next configure.", **_triton_range("retry_primary_s"))

    def __post_init__(self) -> None:
        self.config()

    def config(self) -> TritonConfig:
        """The runtime's TritonConfig (its validation, named as parameters)."""
        try:
            return TritonConfig(**{f.name: getattr(self, f.name) for f in fields(self)})
        except RuntimeConfigError as e:
            raise NodeConfigError(f"model.triton: {e}") from None


@dataclass
class ModelParams:
    path: str = param("", "Model folder with manifest.json (ONNX) or a checkpoint (torch backend). "
                          "Empty: the bundled default model installed with the package.")
    backend: str = param("onnxruntime", "Inference backend.", choices=BACKENDS)
    providers: list[str] = param(
        list(KNOWN_PROVIDERS),
        "ONNX Runtime execution providers in order of preference; the ones actually in use are "
        "reported in PolicyStatus.", choices=PROVIDERS)
    formulation: str = param("auto", "MoE expert graphs: sparse (loop over experts, fastest on CPU), dense "
                                     "(static shapes, TensorRT) or auto (dense when a GPU provider is in use).",
                             choices=FORMULATION_CHOICES)
    precision: str = param("fp32", "Use the model's gated int8 (CPU) or fp16 (dense GPU) graphs where exported.",
                           choices=PRECISION_CHOICES)
    device: str = param("cpu", "torch backend device (cpu, cuda, cuda:0).")
    device_id: int = param(0, "GPU index for the TensorRT and CUDA providers.", **_int_range("device_id"))
    trt_engine_cache_dir: str = param("", "TensorRT engine cache directory (empty: ~/.cache/moe_vla_ros/trt). "
                                          "A cached engine matching the graph is reused, never rebuilt.")
    trt_fp16: bool = param(True, "Build TensorRT engines in FP16.")
    trt_workspace_mb: int = param(2048, "TensorRT builder workspace in MiB.", **_int_range("trt_workspace_mb"))
    intra_op_threads: int = param(1, "ONNX Runtime intra-op threads per session (0: library default).",
                                  **_int_range("intra_op_threads"))
    warmup_runs: int = param(2, "Inferences run at configure to warm up (excluded from latency stats).", min=0, max=100)
    verify_on_target: bool = param(
        True, "At configure, run the selected variant on this machine's providers on the model's golden "
              "observations and hold it to its export gate; a variant that misses it falls back to the next "
              "(int8/fp16 -> fp32, then the other formulation when auto) with a WARN diagnostic naming why; "
              "none passing or a corrupted golden file fails configure (onnxruntime backend; folders without "
              "golden outputs load unverified; backend triton: its onboard fallback).")
    triton: TritonParams = field(default_factory=TritonParams)

    # ModelParams field -> RuntimeConfig field, where the names differ; fields not in RuntimeConfig
    # (path, warmup_runs) are the node's own.
    RUNTIME_NAMES = {"device": "torch_device"}
    NODE_ONLY = ("path", "warmup_runs")

    def __post_init__(self) -> None:
        _choice("model.backend", self.backend, BACKENDS)
        _choice("model.formulation", self.formulation, FORMULATION_CHOICES)
        _choice("model.precision", self.precision, PRECISION_CHOICES)
        for p in self.providers:
            _choice("model.providers[]", p, PROVIDERS)
        if not self.providers:
            raise NodeConfigError("model.providers must not be empty")
        self.runtime_config()  # the runtime's own checks (ranges, types), named as parameters

    def runtime_config(self, reasoning_enabled: bool = True) -> RuntimeConfig:
        """How load_policy runs the model: every field of the same (or RUNTIME_NAMES) name, the
        triton group as its TritonConfig. On-target verification applies to ONNX Runtime policies
        only: the onnxruntime backend, or the triton backend's onboard fallback."""
        values: dict[str, Any] = {}
        for f in fields(self):
            if f.name in self.NODE_ONLY:
                continue
            values[self.RUNTIME_NAMES.get(f.name, f.name)] = getattr(self, f.name)
        values["providers"] = tuple(self.providers)
        values["triton"] = self.triton.config()
        onboard = self.backend == "onnxruntime" or (self.backend == "triton" and self.triton.fallback_onboard)
        values["verify_on_target"] = self.verify_on_target and onboard
        try:
            return RuntimeConfig(**values, reasoning_enabled=reasoning_enabled)
        except RuntimeConfigError as e:
            raise NodeConfigError(f"model: {e}") from None

    def model_path(self) -> str:
        """The model folder: `path`, or the bundled default model when empty."""
        return self.path or str(bundled_model_dir())


@dataclass
class RobotParams:
    joint_names: list[str] = param([], "Commanded joints in the model's order; must equal the model contract's "
                                       "joint names (checked at configure). Empty: take them from the model.")
    camera_names: list[str] = param([], "Camera names in the model's order (empty: from the model).")
    position_lower: list[float] = param([], "Lower joint position limits [rad], one per joint (empty: none).")
    position_upper: list[float] = param([], "Upper joint position limits [rad], one per joint (empty: none).")
    max_velocity: list[float] = param([], "Velocity limits [rad/s], one per joint.")
    max_acceleration: list[float] = param([], "Acceleration limits [rad/s^2], one per joint.")

    LIMITS = {"lower": "position_lower", "upper": "position_upper",
              "max_velocity": "max_velocity", "max_acceleration": "max_acceleration"}

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        for name in self.LIMITS.values():
            values = getattr(self, name)
            if values and n and len(values) != n:
                raise NodeConfigError(f"robot.{name} has {len(values)} values for {n} joints {self.joint_names}")
            if any(not math.isfinite(v) for v in values):
                raise NodeConfigError(f"robot.{name} has non-finite values: {values}")
        for name in ("max_velocity", "max_acceleration"):
            if any(v <= 0 for v in getattr(self, name)):
                raise NodeConfigError(f"robot.{name} must be positive: {getattr(self, name)}")

    def check_contract(self, contract: PolicyContract) -> None:
        """ContractError unless the parameters (when set) name the model's joints and cameras, in
        order, and every limit list has one value per model joint."""
        sensors = contract.sensors
        for name, model in (("joint_names", sensors.joint_names), ("camera_names", sensors.camera_names)):
            given = getattr(self, name)
            if given and tuple(given) != tuple(model):
                raise ContractError(f"model contract does not match parameters: {name}: model has {list(model)}, "
                                    f"robot.{name} has {list(given)}")
        joints = sensors.joint_names
        bad = {f"robot.{p}": len(getattr(self, p)) for p in self.LIMITS.values()
               if getattr(self, p) and len(getattr(self, p)) != len(joints)}
        if bad:
            raise ContractError(f"model contract does not match parameters: {bad} values for the model's "
                                f"{len(joints)} joints {list(joints)}")

    def limit_values(self) -> dict[str, tuple[float, ...]]:
        """{SafetyLimits field: values} of the limits that are set."""
        return {k: tuple(float(v) for v in getattr(self, p)) for k, p in self.LIMITS.items() if getattr(self, p)}

    def safety_limits(self, contract: PolicyContract) -> SafetyLimits | None:
        """The joint limits for the model's joints (None when no limit is set); ContractError for a
        list of the wrong length, NodeConfigError for limits that do not fit together."""
        self.check_contract(contract)
        try:
            return SafetyLimits.from_optional(contract.sensors.joint_names, **self.limit_values())
        except ValueError as e:
            raise NodeConfigError(f"invalid robot limits: {e}") from None


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

    def check_contract(self, contract: PolicyContract) -> None:
        """ContractError unless there is one camera topic per model camera."""
        cameras = contract.sensors.camera_names
        if len(self.camera_topics) != len(cameras):
            raise ContractError(f"topics.camera_topics has {len(self.camera_topics)} topics for the model's cameras "
                                f"{list(cameras)}")

    def resolved(self, role: str, namespace: str = "/") -> str:
        """The fully qualified name of topic `role` (a field name) for the node in `namespace`."""
        return resolve_topic(getattr(self, role), namespace)

    def image_topics(self, cameras: Sequence[str], namespace: str = "/") -> dict[str, str]:
        """{camera: fully qualified topic the node subscribes} (with '/compressed' for compressed)."""
        suffix = "/compressed" if self.camera_transport == "compressed" else ""
        return {c: resolve_topic(t, namespace) + suffix for c, t in zip(cameras, self.camera_topics)}


def resolve_topic(name: str, namespace: str = "/") -> str:
    """A relative topic name as it resolves for a node in `namespace` ("joint_states" ->
    "/joint_states" in the root namespace); absolute names unchanged."""
    if not name or name.startswith(("/", "~")):
        return name
    ns = namespace.strip("/")
    return f"/{ns}/{name}" if ns else f"/{name}"


def global_topic(name: Any) -> Any:
    """`resolve_topic` in the root namespace; non-strings unchanged."""
    return resolve_topic(name) if isinstance(name, str) else name


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
    start_lead_s: float = param(0.1, "A trajectory that starts from rest (activation, after a hold or a finished "
                                     "chunk) begins this long after its chunk is ready, so one that reaches the "
                                     "controller late still starts within the acceleration limit [s] (at least "
                                     "execution_lead_s).", min=0.0, max=1.0)
    hold_rest_s: float = param(1.0, "A hold (brake to rest) stays at rest where it stopped until this long after "
                                    "it is due, so a hold that reaches the controller late is still accepted "
                                    "(joint_trajectory_controller refuses a trajectory that ends in the past and "
                                    "goes on with the running one) [s].", min=0.0, max=10.0)
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

    @property
    def reasoning_enabled(self) -> bool:
        """False when reasoning_rate_hz is 0: the model never generates reasoning."""
        return self.reasoning_rate_hz > 0

    @property
    def reasoning_period_s(self) -> float | None:
        """Seconds between fresh reasoning traces (None: no reasoning)."""
        return 1.0 / self.reasoning_rate_hz if self.reasoning_enabled else None

    def executor_config(self, contract: PolicyContract) -> ChunkExecutorConfig:
        """The chunk executor for a model with `contract` (the refill threshold is capped just
        below the chunk's duration)."""
        return ChunkExecutorConfig.from_contract(
            contract,
            refill_threshold_s=min(self.refill_threshold_s, 0.999 * contract.chunk_duration_s),
            blend=self.blend, blend_steps=self.blend_steps, exponential_rate=self.exponential_rate,
            max_observation_age_s=self.max_observation_age_s, execution_lead_s=self.execution_lead_s,
            start_lead_s=max(self.start_lead_s, self.execution_lead_s), hold_rest_s=self.hold_rest_s,
            allow_nonzero_end_velocity=self.allow_nonzero_velocity_at_trajectory_end,
        )


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
    max_unread_words: int = param(
        0, "Hold (and say which words) when more words of the instruction than this are unknown to the model's "
           "vocabulary or past its instruction length: the policy would guess what they mean. 0: every word "
           "must be known; -1: never hold for this.", min=-1, max=64)

    def __post_init__(self) -> None:
        _positive("safety.input_timeout_s", self.input_timeout_s)
        require_non_negative("safety.recovery_s", self.recovery_s, error=NodeConfigError)


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

    def __post_init__(self) -> None:
        try:
            self.config()
        except (TypeError, ValueError) as e:
            raise NodeConfigError(f"input_checks: {e}") from None

    def config(self) -> InputCheckConfig:
        """The runner's InputCheckConfig (a value <= 0 turns an optional check off)."""
        return InputCheckConfig.from_params(dataclasses.asdict(self))


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

    # -- what the node builds from it ------------------------------------------------------------
    def runtime_config(self) -> RuntimeConfig:
        """How the model is loaded (reasoning off when execution.reasoning_rate_hz is 0)."""
        return self.model.runtime_config(reasoning_enabled=self.execution.reasoning_enabled)

    def check_contract(self, contract: PolicyContract) -> None:
        """ContractError unless the model with `contract` fits these parameters: robot joints,
        cameras and limit lengths, one camera topic per camera."""
        self.robot.check_contract(contract)
        self.topics.check_contract(contract)

    def safety_limits(self, contract: PolicyContract) -> SafetyLimits | None:
        """The safety filter's joint limits for the model's joints (None: no limits set)."""
        return self.robot.safety_limits(contract)

    def runner_config(self, contract: PolicyContract) -> RunnerConfig:
        """What these parameters ask of the PolicyRunner for a model with `contract` (the node and
        the offline evaluator both use it; test/spec/test_policy_node.py holds them to it)."""
        ex, safety = self.execution, self.safety
        return RunnerConfig(
            executor=ex.executor_config(contract), sync_slop_s=ex.sync_slop_s,
            input_timeout_s=safety.input_timeout_s, startup_grace_s=safety.startup_grace_s,
            start_enabled=not safety.require_enable, reasoning_period_s=ex.reasoning_period_s,
            default_instruction=ex.default_instruction, recovery_s=safety.recovery_s,
            input_checks=self.input_checks.config(), max_unread_words=safety.max_unread_words,
        )

    def open_loop(self) -> PolicyNodeConfig:
        """These settings for recorded joint states that follow recorded commands (bag replay,
        offline evaluation): the checks comparing joint states with the node's own plan (tracking
        error, frozen) off, as config/bag_replay.yaml sets them."""
        return dataclasses.replace(self, input_checks=dataclasses.replace(self.input_checks, **OPEN_LOOP_INPUT_CHECKS))

    # -- parameters ------------------------------------------------------------------------------
    def to_params(self) -> dict[str, Any]:
        """{dotted name: value} of every parameter (what `ros2 param dump` would show)."""
        return flat_values(self)

    def with_params(self, values: Mapping[str, Any]) -> PolicyNodeConfig:
        """A copy with some parameters changed ({dotted name: value}), validated."""
        return self.from_params({**self.to_params(), **values})

    @classmethod
    def from_params(cls, values: Mapping[str, Any]) -> PolicyNodeConfig:
        """The config from flat parameter values (others keep their defaults; names the node does
        not declare, e.g. use_sim_time, are ignored); NodeConfigError naming a bad value."""
        try:
            return build_config(cls, values)
        except NodeConfigError:
            raise
        except (TypeError, ValueError) as e:
            raise NodeConfigError(f"invalid policy node parameters: {e}") from None

    @classmethod
    def from_params_files(cls, files: Sequence[str | os.PathLike], params: Mapping[str, Any] | None = None,
                          namespace: str = "/") -> PolicyNodeConfig:
        """What a node in `namespace` runs with given the parameter `files` and then `params`."""
        return cls.from_params(NodeInvocation(tuple(files), params or {}, namespace=namespace).values())


def default_params_files(robot: str = "sim_arm") -> list[Path]:
    """The node's parameter files: config/policy.yaml and config/robots/<robot>.yaml."""
    return [find_share_file("config", "policy.yaml"), find_share_file("config", "robots", f"{robot}.yaml")]


def read_node_params(files: Sequence[str | os.PathLike], namespace: str = "/") -> dict[str, Any]:
    """Flat {dotted name: value} of the policy node in `namespace` from ROS params YAML files, with
    rcl's key matching (param_files.load_params_file); later files win, as repeated --params-file
    do. NodeConfigError naming a file that cannot be read."""
    params: dict[str, Any] = {}
    for path in files:
        try:
            params.update(load_params_file(path, NODE_NAME, namespace))
        except OSError as e:
            raise NodeConfigError(f"cannot read parameter file {path}: {e.strerror or e}") from None
        except (ValueError, yaml.YAMLError) as e:
            raise NodeConfigError(f"cannot read parameter file {path}: {e}") from None
    return params


def parse_param_items(items: Sequence[str]) -> dict[str, Any]:
    """"name:=value" items (as `-p` takes them) -> {name: YAML value}; NodeConfigError for one
    without ":=" or a name."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name.strip():
            raise NodeConfigError(f"a parameter must be 'name:=value', got {item!r}")
        out[name.strip()] = yaml.safe_load(value)
    return out


@dataclass(frozen=True)
class NodeInvocation:
    """How a policy node process gets its parameters, in the order rcl applies them (later wins):
    the parameter `files`, then `params` ({name: value}, e.g. what an evaluator fixes), then the
    user's `overrides` ("name:=value" text, passed on verbatim). `arguments()` is its command line,
    `config()` what the node will run with (as validated by the spec)."""

    files: tuple[Path, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()
    namespace: str = "/"

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", tuple(Path(f) for f in self.files))
        object.__setattr__(self, "params", dict(self.params))
        object.__setattr__(self, "overrides", tuple(self.overrides))
        parse_param_items(self.overrides)  # NodeConfigError for a malformed item

    def values(self) -> dict[str, Any]:
        """Flat parameter values the node gets (files, params, overrides; builtins like use_sim_time included)."""
        values = read_node_params(self.files, self.namespace)
        values.update(self.params)
        values.update(parse_param_items(self.overrides))
        return values

    def config(self) -> PolicyNodeConfig:
        """The node's settings (NodeConfigError naming a bad value)."""
        return PolicyNodeConfig.from_params(self.values())

    def arguments(self) -> list[str]:
        """`--ros-args --params-file F ... -p name:=value ...` (overrides last)."""
        args = ros_arguments(self.files, self.params)
        for item in self.overrides:
            args += ["-p", item]
        return args

    def command(self, executable: str | os.PathLike) -> list[str]:
        """argv of the node process: `executable --ros-args ...`."""
        return [str(executable), *self.arguments()]
