"""Evaluate a policy on a bag through the REAL policy node: replayed at real speed, scored offline.

`replay_evaluate()`:

1. checks the bag against the model's contract (topics, joints; bags/evaluate.resolve_inputs and
   validate_bag) before starting anything;
2. starts the policy node as its own process (the installed ``policy_node`` executable beside
   this interpreter) with the node's parameter files (config/policy.yaml +
   config/robots/sim_arm.yaml by default), ``use_sim_time``, ``autostart``, the model on the CPU
   provider, its input topics set to the bag's, and its outputs moved under `output_namespace`
   (default /bag_eval, so no controller on the same ROS domain executes replayed commands);
3. waits until the node subscribes to every input and publishes its trajectory topic;
4. plays the bag's inputs (cameras, joint states, instruction; never its recorded commands) with
   /clock at `rate` (ros/bag_player.replay_and_record) while recording the node's trajectory,
   reasoning_trace, expert_usage and policy_status outputs into a new bag (node_output/);
5. stops the node and scores its outputs against the bag's recorded actions with the metrics of
   the offline evaluator (bags/evaluate_report.py): report.json + plots, node.log beside them.

Run it on an isolated ROS_DOMAIN_ID (the player publishes /clock).

``moe_vla_bag_replay_eval --bag BAG --model DIR --out DIR [--rate 1.0] [--storage mcap]``
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.evaluate import (
    EVALUATION_ERRORS,
    BagInputs,
    add_common_arguments,
    config_from_args,
    resolve_inputs,
)
from moe_vla_ros.bags.evaluate_config import EvaluationConfig, default_params_files
from moe_vla_ros.bags.evaluate_records import load_reference, records_from_node_bag
from moe_vla_ros.bags.evaluate_report import EvaluationReport, check_output_dir, write_report
from moe_vla_ros.bags.reader import BagReader
from moe_vla_ros.bags.validate import validate_bag
from moe_vla_ros.bags.writer import check_storage
from moe_vla_ros.contract import PolicyContract
from moe_vla_ros.paths import find_share_file
from moe_vla_ros.ros.bag_player import PlayerConfig, publisher_qos, replay_and_record
from moe_vla_ros.runtime.manifest import read_manifest
from moe_vla_ros.spec.policy_node import NodeInvocation, PolicyNodeConfig

OUTPUT_BAG = "node_output"
NODE_LOG = "node.log"
OUTPUTS = {"trajectory": "joint_trajectory", "reasoning_trace": "reasoning_trace",
           "expert_usage": "expert_usage", "status": "policy_status"}  # fmt: skip


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
                   compressed: bool, latched_instruction: bool) -> list[str]:  # fmt: skip
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
    }  # fmt: skip
    files = (*cfg.files(), find_share_file("config", "bag_replay.yaml"))
    overrides = tuple(f"{name}:={value}" for name, value in cfg.node_params.items())
    return NodeInvocation(files, params, overrides).arguments()


class NodeProcess:
    """The policy node in its own process group, output to a log file; a context manager."""

    def __init__(self, argv: Sequence[str], log_path: Path, stop_timeout_s: float) -> None:
        self.argv, self.log_path, self.stop_timeout_s = list(argv), log_path, stop_timeout_s
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "NodeProcess":
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


def wait_for_node(node: NodeProcess, inputs: Sequence[str], output: str, timeout_s: float) -> float:
    """Wait until the node subscribes to every input topic and publishes `output` (it is then
    configured and active: autostart activates right after creating them); seconds taken."""
    context = Context()
    rclpy.init(context=context)
    probe = Node("bag_replay_eval_probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    start = time.monotonic()
    try:
        while True:
            missing = [t for t in inputs if probe.count_subscribers(t) == 0]
            missing += [f"{output} (publisher)"] if probe.count_publishers(output) == 0 else []
            if not missing:
                return time.monotonic() - start
            if not node.alive():
                raise BagError(f"the policy node exited (code {node.proc.returncode}):\n{node.log_tail()}")
            if time.monotonic() - start > timeout_s:
                raise BagError(
                    f"the policy node is not ready after {timeout_s:.0f} s (missing {missing}):\n{node.log_tail()}"
                )
            executor.spin_once(timeout_sec=0.05)  # graph updates arrive meanwhile
    finally:
        executor.shutdown()
        probe.destroy_node()
        rclpy.try_shutdown(context=context)


def replay_evaluate(
    bag: str | os.PathLike,
    model: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: ReplayConfig = ReplayConfig(),
    eval_config: EvaluationConfig | None = None,
) -> EvaluationReport:
    """Replay `bag` through the policy node running `model`; report into `out_dir` (new or empty)."""
    check_output_dir(out_dir)
    model, out = Path(model).resolve(), Path(out_dir)
    eval_cfg = eval_config or EvaluationConfig.from_params_files(config.files(), progress=False)
    manifest = read_manifest(model)
    contract: PolicyContract = manifest.contract
    eval_cfg.check_model(contract)
    with BagReader(bag) as reader:
        inputs = resolve_inputs(reader, contract.sensors, eval_cfg)
        kinds = {reader.topics[t].msgtype for t in inputs.cameras.values()}
        latched = publisher_qos(reader.topics[inputs.instruction], 1).durability == DurabilityPolicy.TRANSIENT_LOCAL
    validate_bag(bag, inputs.topics, contract.sensors)
    if len(kinds) > 1:
        raise BagError(f"the node reads one image transport for all cameras; the bag mixes {sorted(kinds)}")
    compressed = kinds == {"sensor_msgs/msg/CompressedImage"}
    outputs = output_topics(config)
    argv = [str(config.executable()), *node_arguments(model, inputs, outputs, config, compressed, latched)]
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with NodeProcess(argv, out / NODE_LOG, config.stop_timeout_s) as node:
        ready_s = wait_for_node(node, inputs.topics, outputs["trajectory"], config.ready_timeout_s)
        result = replay_and_record(
            bag, out / OUTPUT_BAG, list(outputs.values()), config.rate,
            player_config=PlayerConfig(topics=tuple(inputs.topics)), storage=config.storage,
            idle_timeout_s=config.idle_timeout_s,
        )  # fmt: skip
    with BagReader(bag) as reader:
        reference = load_reference(reader, contract.sensors, inputs.joint_states, inputs.instruction,
                                   eval_cfg.command_topic, eval_cfg.reference_max_gap_s)  # fmt: skip
        span = (reader.start_ns / 1e9, reader.end_ns / 1e9)
    records = records_from_node_bag(
        out / OUTPUT_BAG, contract.sensors, trajectory_topic=outputs["trajectory"],
        usage_topic=outputs["expert_usage"], trace_topic=outputs["reasoning_trace"], status_topic=outputs["status"],
    )  # fmt: skip
    records.start_s, records.end_s = span
    info = {
        "mode": "replay", "bag": str(Path(bag)), "model": str(model), "model_id": manifest.model_id,
        "backend": "onnxruntime", "execution_providers": ["CPUExecutionProvider"], "rate": config.rate,
        "inputs": {"cameras": inputs.cameras, "joint_states": inputs.joint_states, "instruction": inputs.instruction},
        "node_outputs": outputs, "output_bag": OUTPUT_BAG, "node_log": NODE_LOG, "node_ready_s": ready_s,
        "recorded": result.recorded, "played": result.playback.per_topic, "wall_s": time.monotonic() - started,
    }  # fmt: skip
    return write_report(out, records, reference, contract, eval_cfg, info, keep=(OUTPUT_BAG, NODE_LOG))


def main(argv: Sequence[str] | None = None) -> int:
    """``moe_vla_bag_replay_eval``: replay a bag through the policy node and score its commands."""
    p = argparse.ArgumentParser(prog="moe_vla_bag_replay_eval", description=__doc__.split("\n\n")[0])
    add_common_arguments(p)
    p.add_argument("--rate", type=float, default=1.0, help="playback speed (default 1.0: real time)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="storage of the recorded outputs")
    p.add_argument("--output-namespace", default="/bag_eval",
                   help="namespace of the node's outputs ('' = as configured)")  # fmt: skip
    args = p.parse_args(argv)
    try:
        files = tuple(Path(f) for f in args.params_file) if args.params_file else None
        config = ReplayConfig(params_files=files, rate=args.rate, storage=args.storage,
                              output_namespace=args.output_namespace)  # fmt: skip
        report = replay_evaluate(args.bag, args.model, args.out, config, config_from_args(args, progress=False))
    except (*EVALUATION_ERRORS, TimeoutError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
