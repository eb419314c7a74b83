"""Evaluate a policy on a bag through the REAL policy node: replayed at real speed, scored offline.

`replay_evaluate()`:

1. checks the bag against the model's contract (topics, joints; evaluation/bag/offline.resolve_inputs
   and validate_bag) before starting anything;
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
   the offline evaluator (evaluation/bag/replay.score_node_outputs): report.json + plots, node.log
   beside them.

Run it on an isolated ROS_DOMAIN_ID (the player publishes /clock). This module is the rclpy half;
the node's command line, its outputs and the scoring are evaluation/bag/replay.py.

``moe_vla_bag_replay_eval BAG --model DIR -o DIR [--rate 1.0] [--storage mcap]``
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.reader import BagReader
from moe_vla_ros.bags.validate import validate_bag
from moe_vla_ros.cli import run_tool, tool_parser
from moe_vla_ros.contract import PolicyContract
from moe_vla_ros.evaluation.bag.config import EvaluationConfig
from moe_vla_ros.evaluation.bag.offline import add_common_arguments, config_from_args, resolve_inputs
from moe_vla_ros.evaluation.bag.replay import (
    NODE_LOG,
    OUTPUT_BAG,
    ReplayConfig,
    node_arguments,
    output_topics,
    score_node_outputs,
)
from moe_vla_ros.evaluation.bag.report import EvaluationReport, check_output_dir
from moe_vla_ros.evaluation.process import NodeProcess
from moe_vla_ros.ros.bag_player import PlayerConfig, publisher_qos, replay_and_record
from moe_vla_ros.ros.contexts import private_context
from moe_vla_ros.runtime.manifest import read_manifest

PROG = "moe_vla_bag_replay_eval"


def wait_for_node(node: NodeProcess, inputs: Sequence[str], output: str, timeout_s: float) -> float:
    """Wait until the node subscribes to every input topic and publishes `output` (it is then
    configured and active: autostart activates right after creating them); seconds taken."""
    with private_context() as context:
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
        )
    info = {
        "mode": "replay", "bag": str(Path(bag)), "model": str(model), "model_id": manifest.model_id,
        "backend": "onnxruntime", "execution_providers": ["CPUExecutionProvider"], "rate": config.rate,
        "inputs": {"cameras": inputs.cameras, "joint_states": inputs.joint_states, "instruction": inputs.instruction},
        "node_outputs": outputs, "output_bag": OUTPUT_BAG, "node_log": NODE_LOG, "node_ready_s": ready_s,
        "recorded": result.recorded, "played": result.playback.per_topic,
    }
    return score_node_outputs(bag, out, contract, inputs, outputs, eval_cfg, info, started)


def main(argv: Sequence[str] | None = None) -> int:
    """``moe_vla_bag_replay_eval``: replay a bag through the policy node and score its commands; exit 0
    reported, 2 bad input (bag, model, arguments, a node that does not start), 1 failed."""
    return run_tool(PROG, lambda: _run(argv))


def _run(argv: Sequence[str] | None) -> int:
    p = tool_parser(PROG, __doc__)
    add_common_arguments(p)
    p.add_argument("--rate", type=float, default=1.0, help="playback speed (default 1.0: real time)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="storage of the recorded outputs")
    p.add_argument("--output-namespace", default="/bag_eval",
                   help="namespace of the node's outputs ('' = as configured)")
    args = p.parse_args(argv)
    files = tuple(Path(f) for f in args.params_file) if args.params_file else None
    config = ReplayConfig(params_files=files, rate=args.rate, storage=args.storage,
                          output_namespace=args.output_namespace)
    report = replay_evaluate(args.bag, args.model, args.out, config, config_from_args(args, progress=False))
    print(report.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
