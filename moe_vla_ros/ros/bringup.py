"""`moe_vla_bringup`: the node graph of the launch files, in one process, from the same config.

The `launch` package is not available everywhere (e.g. ROS 2 from PyPI wheels), so this command
starts what launch/*.launch.py start, from the same parameter files:

    moe_vla_bringup                                   # = policy.launch.py with config/robots/sim_arm.yaml
    moe_vla_bringup --sim --instruction "reach the red cube"      # = sim.launch.py
    moe_vla_bringup --robot-config my_robot.yaml --model models/x  # = robot.launch.py
    moe_vla_bringup --sim --record build/run_bag      # also record inputs and outputs (mcap)

The policy node auto-activates (autostart) as in the launch files; with --sim (or
--use-sim-time) it follows /clock.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.utilities import remove_ros_args

from moe_vla_ros.paths import find_share_file
from moe_vla_ros.ros.params import load_params_file


def _overrides(flat: dict) -> list[Parameter]:
    return [Parameter(name, value=value) for name, value in flat.items()]


def policy_parameters(args: argparse.Namespace) -> dict:
    """Flat parameters of the policy node: generic file, robot file, then command-line values."""
    params = load_params_file(args.policy_config, "policy_node")
    params.update(load_params_file(args.robot_config, "policy_node"))
    params["autostart"] = True
    params["use_sim_time"] = bool(args.sim or args.use_sim_time)
    if args.model:
        params["model.path"] = str(args.model)
    if args.backend:
        params["model.backend"] = args.backend
    if args.instruction and not args.sim:
        params["execution.default_instruction"] = args.instruction
    return params


def sim_parameters(args: argparse.Namespace) -> dict:
    params = load_params_file(args.sim_config, "sim_node")
    params["seed"] = args.seed
    if args.instruction:
        params["instruction"] = args.instruction
    return params


class SimThread(threading.Thread):
    """Creates and spins the simulator node in one thread of its own: its OpenGL context works only
    in the thread that created it, so it cannot share the policy node's executor."""

    def __init__(self, params: dict) -> None:
        super().__init__(name="sim_node", daemon=True)
        self.params = params
        self.executor = None

    def run(self) -> None:
        from rclpy.executors import SingleThreadedExecutor

        from moe_vla_ros.ros.sim_node import SimNode

        node = SimNode(parameter_overrides=_overrides(self.params))
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(node)
        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass
        finally:
            node.destroy_node()

    def stop(self) -> None:
        if self.executor is not None:
            self.executor.shutdown()
        self.join(timeout=10)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="moe_vla_bringup", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--policy-config", type=Path, default=None, help="generic policy parameters (config/policy.yaml)")
    p.add_argument("--robot-config", type=Path, default=None,
                   help="per-robot parameters (default config/robots/sim_arm.yaml)")
    p.add_argument("--model", type=Path, default=None, help="model folder (default: the bundled model)")
    p.add_argument("--backend", choices=("onnxruntime", "torch"), default=None)
    p.add_argument("--sim", action="store_true", help="also run the MuJoCo simulator node (config/sim.yaml)")
    p.add_argument("--sim-config", type=Path, default=None, help="simulator parameters (config/sim.yaml)")
    p.add_argument("--seed", type=int, default=0, help="simulator scene seed")
    p.add_argument("--instruction", default="", help="instruction (published by the simulator, else the default)")
    p.add_argument("--use-sim-time", action="store_true", help="policy follows /clock (bag replay)")
    p.add_argument("--record", type=Path, default=None, help="record inputs and outputs into this new bag")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(remove_ros_args(["moe_vla_bringup", *argv])[1:])
    args.policy_config = args.policy_config or find_share_file("config", "policy.yaml")
    args.robot_config = args.robot_config or find_share_file("config", "robots", "sim_arm.yaml")
    args.sim_config = args.sim_config or find_share_file("config", "sim.yaml")

    from moe_vla_ros.ros.policy_node import PolicyNode

    rclpy.init(args=["moe_vla_bringup", *argv])
    nodes = []
    executor = SingleThreadedExecutor()  # the policy node infers on its own thread
    sim_thread = None
    try:
        if args.sim:
            sim_thread = SimThread(sim_parameters(args))
            sim_thread.start()
        nodes.append(PolicyNode(parameter_overrides=_overrides(policy_parameters(args))))
        if args.record:
            from moe_vla_ros.ros.bag_recorder import BagRecorder, RecorderConfig

            nodes.append(BagRecorder(RecorderConfig(output=args.record)))
        for node in nodes:
            executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if sim_thread is not None:
            sim_thread.stop()
        for node in reversed(nodes):
            node.destroy_node()  # the recorder finishes its bag here
        executor.shutdown()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
