"""The pure half of replaying a bag through the policy node (`moe_vla_bag_replay_eval`; the rclpy
half that starts the node, plays the bag and records its outputs is
moe_vla_ros/ros/bag_replay_eval.py): how the node is run (`ReplayConfig`, `node_arguments`), where
its outputs go (`output_topics`) and how they are scored (`score_node_outputs`: the metrics and
report of the offline evaluator, evaluation/bag/report.py).

Pure: no rclpy.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.reader import BagReader
from moe_vla_ros.bags.writer import check_storage
from moe_vla_ros.contract import PolicyContract
from moe_vla_ros.evaluation.bag.config import EvaluationConfig
from moe_vla_ros.evaluation.bag.offline import BagInputs
from moe_vla_ros.evaluation.bag.records import load_reference, records_from_node_bag
from moe_vla_ros.evaluation.bag.report import EvaluationReport, write_report
from moe_vla_ros.paths import find_share_file
from moe_vla_ros.spec.policy_node import NodeInvocation, PolicyNodeConfig, default_params_files

OUTPUT_BAG = "node_output"
NODE_LOG = "node.log"
OUTPUTS = {"trajectory": "joint_trajectory", "reasoning_trace": "reasoning_trace",
           "expert_usage": "expert_usage", "status": "policy_status"}


@dataclass(frozen=True)
class ReplayConfig:
    """How the node is run and the bag replayed.

    Attributes:
        params_files: the node's parameter files (None: config/policy.yaml + config/robots/sim_arm.yaml).
        rate: playback speed (1.0 real time: the node infers at its real latency).
        storage: storage of the recorded node outputs ("mcap" or "sqlite3").
        output_namespace: the node's outputs are published as <namespace>/joint_trajectory,
            .../reasoning_trace, .../expert_usage, .../policy_status ("" keeps the topics of the
            parameter files).
        node_executable: the policy node (None: ``policy_node`` beside this interpreter).
        node_params: extra ``-p name:=value`` node parameters (override everything else).
        ready_timeout_s: how long the node may take to load the model and subscribe.
        idle_timeout_s: after playback, wait until the node published nothing for this long.
        stop_timeout_s: SIGINT, then SIGKILL after this long.
    """

    params_files: tuple[Path, ...] | None = None
    rate: float = 1.0
    storage: str = "mcap"
    output_namespace: str = "/bag_eval"
    node_executable: Path | None = None
    node_params: Mapping[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 60.0
    idle_timeout_s: float = 1.5
    stop_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and 0.0 < self.rate <= 100.0):
            raise BagError(f"rate must be in (0, 100], got {self.rate!r}")
        check_storage(self.storage)
        if self.output_namespace and (not self.output_namespace.startswith("/") or self.output_namespace.endswith("/")):
            raise BagError(f"output_namespace must be '' or like '/name', got {self.output_namespace!r}")
        for name in ("ready_timeout_s", "idle_timeout_s", "stop_timeout_s"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise BagError(f"{name} must be > 0, got {getattr(self, name)!r}")

    def files(self) -> list[Path]:
        return list(self.params_files) if self.params_files else default_params_files()

    def executable(self) -> Path:
        exe = self.node_executable or Path(sys.executable).with_name("policy_node")
        if not Path(exe).is_file():
            raise BagError(f"policy node executable {exe} not found (install the package: pip install -e .)")
        return Path(exe)


def output_topics(cfg: ReplayConfig) -> dict[str, str]:
    """{role: topic} of the node's outputs during the replay: under `output_namespace`, or as the
    parameter files name them."""
    if cfg.output_namespace:
        return {role: f"{cfg.output_namespace}/{name}" for role, name in OUTPUTS.items()}
    topics = PolicyNodeConfig.from_params_files(cfg.files()).topics
    return {role: getattr(topics, role) for role in OUTPUTS}


def node_arguments(model: Path, inputs: BagInputs, outputs: Mapping[str, str], cfg: ReplayConfig,
                   compressed: bool, latched_instruction: bool) -> list[str]:
    """ROS arguments of the node process (parameter files first, explicit values after). The
    instruction subscription's durability follows how the player offers the recorded instruction
    (a transient-local subscription would not match a volatile publisher). config/bag_replay.yaml
    turns the checks off that compare joint states with the node's own plan (tracking error, frozen
    joints): a bag's joint states follow the recorded commands, as in the offline evaluator."""
    cameras = [t.removesuffix("/compressed") if compressed else t for t in inputs.cameras.values()]
    params = {
        "qos.instruction_durability": "transient_local" if latched_instruction else "volatile",
        "use_sim_time": True, "autostart": True, "model.path": str(model),
        "model.providers": ["CPUExecutionProvider"], "topics.camera_topics": cameras,
        "topics.camera_transport": "compressed" if compressed else "raw",
        "topics.joint_states": inputs.joint_states, "topics.instruction": inputs.instruction,
        **{f"topics.{role}": topic for role, topic in outputs.items()},
    }
    files = (*cfg.files(), find_share_file("config", "bag_replay.yaml"))
    overrides = tuple(f"{name}:={value}" for name, value in cfg.node_params.items())
    return NodeInvocation(files, params, overrides).arguments()


def score_node_outputs(bag: str | os.PathLike, out_dir: Path, contract: PolicyContract, inputs: BagInputs,
                       outputs: Mapping[str, str], eval_cfg: EvaluationConfig, info: dict[str, Any],
                       started: float) -> EvaluationReport:
    """Score what the node published (recorded into out_dir/OUTPUT_BAG) against `bag`'s recorded
    actions and write the report beside the output bag and the node's log; `info` describes the
    run, `started` (time.monotonic()) when it began."""
    with BagReader(bag) as reader:
        reference = load_reference(reader, contract.sensors, inputs.joint_states, inputs.instruction,
                                   eval_cfg.command_topic, eval_cfg.reference_max_gap_s)
        span = (reader.start_ns / 1e9, reader.end_ns / 1e9)
    records = records_from_node_bag(
        out_dir / OUTPUT_BAG, contract.sensors, trajectory_topic=outputs["trajectory"],
        usage_topic=outputs["expert_usage"], trace_topic=outputs["reasoning_trace"], status_topic=outputs["status"],
    )
    records.start_s, records.end_s = span
    info = {**info, "wall_s": time.monotonic() - started}
    return write_report(out_dir, records, reference, contract, eval_cfg, info, keep=(OUTPUT_BAG, NODE_LOG))
