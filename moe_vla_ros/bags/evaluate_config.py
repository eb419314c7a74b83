"""Settings of the bag evaluators (offline: bags/evaluate.py; through the node: ros/bag_replay_eval.py).

`EvaluationConfig` names the bag's topics, repeats the policy node's execution and safety
parameters (so the offline evaluation decides like the node: same refill threshold, blending,
observation age, limits), sets how latency is simulated and how the run is scored. Defaults
are the generic values of config/policy.yaml without joint limits; `from_params_files()` reads
the node's own parameter files (config/policy.yaml + config/robots/<robot>.yaml), so offline
and replayed evaluation run with exactly the node's settings.

Pure Python + PyYAML: no rclpy.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.contract import PolicyContract
from moe_vla_ros.control.blending import BLEND_MODES
from moe_vla_ros.control.chunk_config import ChunkExecutorConfig
from moe_vla_ros.control.input_checks import InputCheckConfig
from moe_vla_ros.control.policy_runner import RunnerConfig
from moe_vla_ros.control.safety import LIMIT_FIELDS, SafetyLimits
from moe_vla_ros.param_files import load_params_file
from moe_vla_ros.paths import find_share_file

NODE_NAME = "policy_node"
LIMIT_PARAMS = {"lower": "position_lower", "upper": "position_upper",
                "max_velocity": "max_velocity", "max_acceleration": "max_acceleration"}  # fmt: skip


def default_params_files(robot: str = "sim_arm") -> list[Path]:
    """The node's parameter files: config/policy.yaml and config/robots/<robot>.yaml."""
    return [find_share_file("config", "policy.yaml"), find_share_file("config", "robots", f"{robot}.yaml")]


def global_topic(name: Any) -> Any:
    """A relative topic name as it resolves for a node in the root namespace ("joint_states" ->
    "/joint_states"); absolute names and non-strings unchanged."""
    if isinstance(name, str) and name and not name.startswith(("/", "~")):
        return "/" + name
    return name


def read_node_params(paths: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """Flat {dotted name: value} of the policy node (root namespace) in ROS params YAML files, with
    the node's own key matching (param_files.load_params_file); later files override earlier ones,
    as repeated --params-file do."""
    params: dict[str, Any] = {}
    for path in paths:
        try:
            params.update(load_params_file(path, NODE_NAME))
        except (OSError, ValueError, yaml.YAMLError) as e:
            raise BagError(f"cannot read parameter file {path}: {e}") from None
    return params


@dataclass(frozen=True)
class EvaluationConfig:
    """How a bag is evaluated.

    Topics (the bag's):
        camera_topics: {contract camera: image topic} (Image or CompressedImage); a camera not
            listed uses /camera/<camera>/image_raw; a topic the bag lacks is replaced by its
            image_transport "<topic>/compressed" when the bag has that.
        joint_state_topic: sensor_msgs/JointState topic.
        instruction_topic: std_msgs/String topic.
        command_topic: recorded JointTrajectory commands, the reference actions; "" or absent
            from the bag: the recorded joint states are the reference.
    Execution (the node's parameters, see ros/policy_node_config.py):
        sync_slop_s, refill_threshold_s, blend, blend_steps, exponential_rate, execution_lead_s,
        max_observation_age_s, reasoning_rate_hz (0: no reasoning), input_timeout_s,
        startup_grace_s, recovery_s: as execution.* / safety.* of the node.
        allow_nonzero_end_velocity: execution.allow_nonzero_velocity_at_trajectory_end.
        input_checks: {InputCheckConfig field: value} overrides (input_checks.* of the node);
            unnamed fields keep InputCheckConfig's defaults. The checks that compare joint
            states with the evaluated policy's plan (max_tracking_error_rad, frozen_after_s)
            are always off here: a bag's joint states follow the recorded commands, not the
            policy's (open loop); the node replaying a bag needs them off too (<= 0).
        joint_names: robot.joint_names (empty: the model's); must equal the model's when set.
        safety_limits: any of {"lower", "upper", "max_velocity", "max_acceleration"} (lower and
            upper together): one value per joint in model order (robot.position_lower, ...);
            a missing or empty one is not limited; all empty: no safety filter.
    Latency:
        simulate_latency: a chunk becomes available `latency` after the inference started and
            the next inference can only use observations received by then; False: inference is
            instantaneous.
        fixed_latency_s: simulate this latency instead of the measured one (None: measured).
        poll_period_s: period of the node's inference loop.
        warmup_runs: inferences on a neutral observation before the run (as the node does).
    Scoring:
        max_seconds: evaluate only the first seconds of the bag (None: all).
        reference_max_gap_s: reference samples further than this from recorded data are invalid.
        seam_window_steps: control steps after a chunk seam scored as the seam.
        usage_window_s: window of the expert-usage drift (sliding by half a window).
    Output:
        plots: write PNG plots beside the JSON report.
        progress: show a tqdm progress bar.
    """

    camera_topics: Mapping[str, str] = field(default_factory=dict)
    joint_state_topic: str = "/joint_states"
    instruction_topic: str = "/instruction"
    command_topic: str = "/joint_trajectory_controller/joint_trajectory"
    sync_slop_s: float = 0.05
    refill_threshold_s: float = 0.6
    blend: str = "smoothstep"
    blend_steps: int = 4
    exponential_rate: float = 3.0
    execution_lead_s: float = 0.02
    max_observation_age_s: float = 0.5
    reasoning_rate_hz: float = 1.0
    input_timeout_s: float = 0.5
    startup_grace_s: float = 5.0
    recovery_s: float = 1.0
    allow_nonzero_end_velocity: bool = False
    input_checks: Mapping[str, Any] = field(default_factory=dict)
    joint_names: tuple[str, ...] = ()
    safety_limits: Mapping[str, Sequence[float]] = field(default_factory=dict)
    simulate_latency: bool = True
    fixed_latency_s: float | None = None
    poll_period_s: float = 0.005
    warmup_runs: int = 2
    max_seconds: float | None = None
    reference_max_gap_s: float = 0.25
    seam_window_steps: int = 2
    usage_window_s: float = 5.0
    plots: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "camera_topics", dict(self.camera_topics))
        object.__setattr__(self, "joint_names", tuple(self.joint_names))
        for topic in (*self.camera_topics.values(), self.joint_state_topic, self.instruction_topic):
            if not str(topic).startswith("/"):
                raise BagError(f"topics must be fully qualified (start with '/'), got {topic!r}")
        if self.command_topic and not self.command_topic.startswith("/"):
            raise BagError(f"command_topic must be '' or start with '/', got {self.command_topic!r}")
        positive = {
            "sync_slop_s": self.sync_slop_s, "exponential_rate": self.exponential_rate,
            "max_observation_age_s": self.max_observation_age_s, "input_timeout_s": self.input_timeout_s,
            "poll_period_s": self.poll_period_s, "reference_max_gap_s": self.reference_max_gap_s,
            "usage_window_s": self.usage_window_s,
        }  # fmt: skip
        non_negative = {
            "refill_threshold_s": self.refill_threshold_s, "execution_lead_s": self.execution_lead_s,
            "reasoning_rate_hz": self.reasoning_rate_hz, "startup_grace_s": self.startup_grace_s,
            "recovery_s": self.recovery_s,
        }  # fmt: skip
        if self.fixed_latency_s is not None:
            non_negative["fixed_latency_s"] = self.fixed_latency_s
        if self.max_seconds is not None:
            positive["max_seconds"] = self.max_seconds
        for bound, values in (("> 0", positive), (">= 0", non_negative)):
            for name, value in values.items():
                number = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
                if not number or value < 0 or (bound == "> 0" and value == 0):
                    raise BagError(f"{name} must be a number {bound}, got {value!r}")
        if self.blend not in BLEND_MODES:
            raise BagError(f"blend must be one of {BLEND_MODES}, got {self.blend!r}")
        for name, lo in (("blend_steps", 1), ("seam_window_steps", 1), ("warmup_runs", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise BagError(f"{name} must be an integer >= {lo}, got {value!r}")
        if not isinstance(self.allow_nonzero_end_velocity, bool):
            raise BagError(f"allow_nonzero_end_velocity must be a bool, got {self.allow_nonzero_end_velocity!r}")
        checks = dict(self.input_checks)
        try:
            InputCheckConfig(**checks)
        except (TypeError, ValueError) as e:
            raise BagError(f"invalid input_checks {checks}: {e}") from None
        object.__setattr__(self, "input_checks", checks)
        limits = {k: vs for k, vs in dict(self.safety_limits).items() if vs is not None and len(vs)}
        unknown = sorted(set(limits) - set(LIMIT_FIELDS))
        if unknown:
            raise BagError(f"safety_limits names unknown limits {unknown}; known: {list(LIMIT_FIELDS)}")
        if ("lower" in limits) != ("upper" in limits):
            raise BagError(f"safety_limits must give lower and upper together, got {sorted(limits)}")
        object.__setattr__(self, "safety_limits", {k: tuple(float(v) for v in vs) for k, vs in limits.items()})

    # -- the node's objects --------------------------------------------------------------------
    def check_model(self, contract: PolicyContract) -> None:
        """BagError when robot joint names or limit lengths do not fit the model's contract."""
        names = contract.sensors.joint_names
        if self.joint_names and self.joint_names != names:
            raise BagError(
                f"model contract does not match parameters: joint_names: model has {list(names)}, "
                f"robot.joint_names has {list(self.joint_names)}"
            )
        bad = {k: len(v) for k, v in self.safety_limits.items() if len(v) != len(names)}
        if bad:
            raise BagError(f"safety limits have {bad} values for the model's {len(names)} joints {list(names)}")

    def safety(self, contract: PolicyContract) -> SafetyLimits | None:
        """The node's joint limits for the model's joints, or None without limits."""
        self.check_model(contract)
        try:
            return SafetyLimits.from_optional(contract.sensors.joint_names, **self.safety_limits)
        except ValueError as e:
            raise BagError(f"invalid safety limits: {e}") from None

    def runner_config(self, contract: PolicyContract) -> RunnerConfig:
        """The PolicyRunner settings the node builds from the same parameters."""
        executor = ChunkExecutorConfig.from_contract(
            contract,
            refill_threshold_s=min(self.refill_threshold_s, 0.999 * contract.chunk_duration_s),
            blend=self.blend, blend_steps=self.blend_steps, exponential_rate=self.exponential_rate,
            max_observation_age_s=self.max_observation_age_s, execution_lead_s=self.execution_lead_s,
            allow_nonzero_end_velocity=self.allow_nonzero_end_velocity,
        )  # fmt: skip
        return RunnerConfig(
            executor=executor, sync_slop_s=self.sync_slop_s, input_timeout_s=self.input_timeout_s,
            startup_grace_s=self.startup_grace_s,
            reasoning_period_s=1.0 / self.reasoning_rate_hz if self.reasoning_rate_hz > 0 else None,
            recovery_s=self.recovery_s, input_checks=self.open_loop_input_checks(),
        )  # fmt: skip

    def open_loop_input_checks(self) -> InputCheckConfig:
        """The input checks for a bag: `input_checks` without the closed-loop ones (the recorded
        arm does not follow the evaluated policy: no tracking-error or frozen check)."""
        return InputCheckConfig(**{**self.input_checks, "max_tracking_error_rad": None, "frozen_after_s": None})

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["camera_topics"] = dict(self.camera_topics)
        out["joint_names"] = list(self.joint_names)
        out["safety_limits"] = {k: list(v) for k, v in self.safety_limits.items()}
        out["input_checks"] = dict(self.input_checks)
        return out

    # -- from the node's parameter files ----------------------------------------------------------
    @classmethod
    def from_params_files(cls, paths: Sequence[str | os.PathLike], **overrides: Any) -> "EvaluationConfig":
        """Topics, execution and safety settings from the node's params YAML; `overrides` win.
        Relative topic names resolve as for a node in the root namespace (the bag's topics)."""
        p = read_node_params(paths)
        values: dict[str, Any] = {}
        for name in ("sync_slop_s", "refill_threshold_s", "blend", "blend_steps", "exponential_rate",
                     "execution_lead_s", "max_observation_age_s", "reasoning_rate_hz"):  # fmt: skip
            if f"execution.{name}" in p:
                values[name] = p[f"execution.{name}"]
        for name in ("input_timeout_s", "startup_grace_s", "recovery_s"):
            if f"safety.{name}" in p:
                values[name] = p[f"safety.{name}"]
        if "execution.allow_nonzero_velocity_at_trajectory_end" in p:
            values["allow_nonzero_end_velocity"] = p["execution.allow_nonzero_velocity_at_trajectory_end"]
        names = [f.name for f in fields(InputCheckConfig)]
        checks = {name: p[f"input_checks.{name}"] for name in names if f"input_checks.{name}" in p}
        if checks:  # as the node reads them (<= 0 disables an optional check)
            try:
                parsed = InputCheckConfig.from_params(checks)
            except ValueError as e:
                raise BagError(f"invalid input_checks parameters: {e}") from None
            values["input_checks"] = {name: getattr(parsed, name) for name in checks}
        for name, key in (("joint_state_topic", "topics.joint_states"), ("instruction_topic", "topics.instruction"),
                          ("command_topic", "topics.trajectory")):  # fmt: skip
            if key in p:
                values[name] = global_topic(p[key])  # relative names: the node in the root namespace
        values["joint_names"] = tuple(p.get("robot.joint_names") or ())
        cameras, topics = list(p.get("robot.camera_names") or ()), list(p.get("topics.camera_topics") or ())
        if cameras and topics:
            if len(cameras) != len(topics):
                raise BagError(f"robot.camera_names {cameras} and topics.camera_topics {topics} differ in length")
            suffix = "/compressed" if p.get("topics.camera_transport") == "compressed" else ""
            values["camera_topics"] = {c: global_topic(t) + suffix for c, t in zip(cameras, topics)}
        limits = {f: p.get(f"robot.{param}") for f, param in LIMIT_PARAMS.items()}
        limits = {f: v for f, v in limits.items() if v}
        if limits:
            values["safety_limits"] = limits
        values.update(overrides)
        return cls(**values)
