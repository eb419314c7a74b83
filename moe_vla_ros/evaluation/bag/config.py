"""Settings of the bag evaluators (offline: evaluation/bag/offline.py; through the node: ros/bag_replay_eval.py).

`EvaluationConfig` holds the policy node's own settings (`node`, the spec of
moe_vla_ros/spec/policy_node.py: execution, safety, input checks, robot limits, topics) and adds
only what is the evaluator's: the bag's topics (by default the node's, resolved in the root
namespace), how latency is simulated and how the run is scored. The PolicyRunner, limits and
contract check come from the spec's methods, so the offline evaluation decides exactly as the
node would from the same parameter files (`from_params_files()`: config/policy.yaml +
config/robots/<robot>.yaml by default).

Pure Python: no rclpy.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.contract import PolicyContract
from moe_vla_ros.control.policy_runner import RunnerConfig
from moe_vla_ros.control.safety import SafetyLimits
from moe_vla_ros.spec.policy_node import INFERENCE_POLL_S, NodeConfigError, PolicyNodeConfig, default_params_files


@dataclass(frozen=True)
class EvaluationConfig:
    """How a bag is evaluated.

    Node:
        node: the policy node's settings (spec/policy_node.py). The evaluator runs the node's
            PolicyRunner (`runner_config`), safety limits and contract check from them, with
            the checks that compare joint states with the evaluated policy's own plan off
            (`PolicyNodeConfig.open_loop`: a bag's joint states follow the recorded commands, not
            the policy's; the node replaying a bag gets them off from config/bag_replay.yaml).
            Warm-up runs: node.model.warmup_runs; reasoning: node.execution.reasoning_rate_hz.
    Topics (the bag's; None: the node's topics as they resolve in the root namespace):
        camera_topics: {contract camera: image topic} (Image or CompressedImage); None: the
            node's robot.camera_names with topics.camera_topics, else {}. A camera not listed
            uses /camera/<camera>/image_raw; a topic the bag lacks is replaced by its
            image_transport "<topic>/compressed" when the bag has that.
        joint_state_topic: sensor_msgs/JointState topic.
        instruction_topic: std_msgs/String topic.
        command_topic: recorded JointTrajectory commands, the reference actions; "" or absent
            from the bag: the recorded joint states are the reference.
    Latency:
        simulate_latency: a chunk becomes available `latency` after the inference started and
            the next inference can only use observations received by then; False: inference is
            instantaneous.
        fixed_latency_s: simulate this latency instead of the measured one (None: measured).
        poll_period_s: period of the node's inference loop.
    Scoring:
        max_seconds: evaluate only the first seconds of the bag (None: all).
        reference_max_gap_s: reference samples further than this from recorded data are invalid.
        seam_window_steps: control steps after a chunk seam scored as the seam.
        usage_window_s: window of the expert-usage drift (sliding by half a window).
    Output:
        plots: write PNG plots beside the JSON report.
        progress: show a tqdm progress bar.
    """

    node: PolicyNodeConfig = field(default_factory=PolicyNodeConfig)
    camera_topics: Mapping[str, str] | None = None
    joint_state_topic: str | None = None
    instruction_topic: str | None = None
    command_topic: str | None = None
    simulate_latency: bool = True
    fixed_latency_s: float | None = None
    poll_period_s: float = INFERENCE_POLL_S
    max_seconds: float | None = None
    reference_max_gap_s: float = 0.25
    seam_window_steps: int = 2
    usage_window_s: float = 5.0
    plots: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.node, PolicyNodeConfig):
            raise BagError(f"node must be a PolicyNodeConfig, got {type(self.node).__name__}")
        topics = self.node.topics
        for name, role in (("joint_state_topic", "joint_states"), ("instruction_topic", "instruction"),
                           ("command_topic", "trajectory")):
            if getattr(self, name) is None:
                object.__setattr__(self, name, topics.resolved(role))
        cameras = self.camera_topics
        if cameras is None:
            names = self.node.robot.camera_names
            if names and len(names) != len(topics.camera_topics):
                raise BagError(f"robot.camera_names {list(names)} and topics.camera_topics "
                               f"{list(topics.camera_topics)} differ in length")
            cameras = topics.image_topics(names) if names else {}
        object.__setattr__(self, "camera_topics", dict(cameras))
        for topic in (*self.camera_topics.values(), self.joint_state_topic, self.instruction_topic):
            if not str(topic).startswith("/"):
                raise BagError(f"topics must be fully qualified (start with '/'), got {topic!r}")
        if self.command_topic and not self.command_topic.startswith("/"):
            raise BagError(f"command_topic must be '' or start with '/', got {self.command_topic!r}")
        positive = {"poll_period_s": self.poll_period_s, "reference_max_gap_s": self.reference_max_gap_s,
                    "usage_window_s": self.usage_window_s}
        non_negative = {}
        if self.fixed_latency_s is not None:
            non_negative["fixed_latency_s"] = self.fixed_latency_s
        if self.max_seconds is not None:
            positive["max_seconds"] = self.max_seconds
        for bound, values in (("> 0", positive), (">= 0", non_negative)):
            for name, value in values.items():
                number = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
                if not number or value < 0 or (bound == "> 0" and value == 0):
                    raise BagError(f"{name} must be a number {bound}, got {value!r}")
        value = self.seam_window_steps
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BagError(f"seam_window_steps must be an integer >= 1, got {value!r}")

    # -- the node's objects (the spec's) ---------------------------------------------------------
    def check_model(self, contract: PolicyContract) -> None:
        """ContractError when the robot parameters (joint/camera names, limit lengths) do not fit
        the model's contract, as the node's configure would report."""
        self.node.robot.check_contract(contract)

    def safety(self, contract: PolicyContract) -> SafetyLimits | None:
        """The node's joint limits for the model's joints, or None without limits."""
        try:
            return self.node.safety_limits(contract)
        except NodeConfigError as e:
            raise BagError(str(e)) from None

    def runner_config(self, contract: PolicyContract) -> RunnerConfig:
        """The node's PolicyRunner settings for recorded joint states (open loop)."""
        return self.node.open_loop().runner_config(contract)

    def to_dict(self) -> dict[str, Any]:
        """The evaluator's fields and the node's parameters ("node": {dotted name: value})."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "node"}
        out["camera_topics"] = dict(self.camera_topics)
        out["node"] = self.node.to_params()
        return out

    @classmethod
    def from_params_files(cls, paths: Sequence[str | os.PathLike] | None = None, **overrides: Any) -> EvaluationConfig:
        """The node's settings from its params YAML (None: config/policy.yaml + config/robots/
        sim_arm.yaml), for a node in the root namespace; `overrides` set the evaluator's fields."""
        try:
            node = PolicyNodeConfig.from_params_files(default_params_files() if paths is None else paths)
        except NodeConfigError as e:
            raise BagError(str(e)) from None
        return cls(node=node, **overrides)
