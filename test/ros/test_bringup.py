"""`moe_vla_bringup --sim` starts the simulator and the policy node in one process from the config
files, and the policy drives the simulated arm (commands and reasoning traces on the graph)."""

import sys
from pathlib import Path

import pytest

from moe_vla_ros.ros.bringup import build_parser, policy_parameters, sim_parameters
from moe_vla_ros.ros.testing import REPO_ROOT, RosPeerProcess, spin_until, wait_for_match

pytestmark = pytest.mark.ros


def test_bringup_parameters_come_from_the_config_files():
    args = build_parser().parse_args(["--sim", "--instruction", "reach the red cube", "--seed", "4"])
    args.policy_config = REPO_ROOT / "config" / "policy.yaml"
    args.robot_config = REPO_ROOT / "config" / "robots" / "sim_arm.yaml"
    args.sim_config = REPO_ROOT / "config" / "sim.yaml"
    policy = policy_parameters(args)
    assert policy["autostart"] is True and policy["use_sim_time"] is True
    assert policy["robot.joint_names"][-1] == "gripper" and policy["execution.blend"] == "smoothstep"
    assert policy["qos.instruction_durability"] == "transient_local"
    sim = sim_parameters(args)
    assert sim["seed"] == 4 and sim["instruction"] == "reach the red cube"


def test_bringup_sim_closed_loop(ros_context, sim_model_dir):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from trajectory_msgs.msg import JointTrajectory

    from moe_vla_msgs.msg import ReasoningTrace
    from moe_vla_ros.ros import qos

    node = Node("bringup_probe", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    commands, traces = [], []
    traj_sub = node.create_subscription(JointTrajectory, "/joint_trajectory_controller/joint_trajectory",
                                        commands.append, qos.command_qos(depth=50))
    node.create_subscription(ReasoningTrace, "/reasoning_trace", traces.append, qos.telemetry_qos(50))
    exe = Path(sys.executable).with_name("moe_vla_bringup")
    cmd = [str(exe), "--sim", "--model", str(sim_model_dir), "--instruction", "reach the red cube",
           "--ros-args", "-p", "model.providers:=[CPUExecutionProvider]"]
    with RosPeerProcess(cmd, python=False) as proc:
        try:
            wait_for_match(executor, traj_sub, timeout_s=60)
            spin_until(executor, lambda: len([c for c in commands if c.points]) >= 3 and traces, timeout_s=60,
                       what="3 commands and a reasoning trace from bringup")
        finally:
            rc = proc.stop()
    assert rc == 0, proc.output()[-3000:]
    assert commands[0].joint_names[-1] == "gripper" and len(commands[0].joint_names) == 7
    assert traces[0].instruction == "reach the red cube"
    node.destroy_node()
    executor.shutdown()
