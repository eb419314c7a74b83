"""`moe_vla_bringup`: the launch files' graph in one process. Parameters: config files, then the
command's own options, then the user's --ros-args (--params-file / -p), later wins; a missing
config file or a policy node that cannot configure ends it with a non-zero status."""

import subprocess
import sys
from pathlib import Path

import pytest

from moe_vla_ros.ros.bringup import (
    build_parser,
    effective_parameters,
    policy_config,
    policy_parameters,
    resolve_config_paths,
    ros_arguments,
)
from moe_vla_ros.ros.testing import REPO_ROOT, RosPeerProcess, isolated_ros_env, spin_until, wait_for_match

pytestmark = pytest.mark.ros
sys.path.insert(0, str(REPO_ROOT / "test" / "launch"))  # launch_helpers.get_parameters

BRINGUP = Path(sys.executable).with_name("moe_vla_bringup")


def _args(*argv):
    args = build_parser().parse_args(list(argv))
    args.policy_config = REPO_ROOT / "config" / "policy.yaml"
    args.robot_config = REPO_ROOT / "config" / "robots" / "sim_arm.yaml"
    args.sim_config = REPO_ROOT / "config" / "sim.yaml"
    return args


def test_parameters_files_then_options_then_the_users_ros_args(tmp_path):
    user_file = tmp_path / "mine.yaml"
    user_file.write_text("/**/policy_node:\n  ros__parameters:\n    execution:\n      blend: linear\n")
    args = _args("--sim", "--instruction", "reach the red cube", "--seed", "4")
    ros = ["--ros-args", "--params-file", str(user_file), "-p", "safety.input_timeout_s:=0.75", "-p", "autostart:=false"]
    policy = effective_parameters(args, "policy_node", ros)
    assert policy["use_sim_time"] is True and policy["robot.joint_names"][-1] == "gripper"
    assert policy["qos.instruction_durability"] == "volatile"
    assert policy["execution.blend"] == "linear"  # the user's --params-file beats config/policy.yaml
    assert policy["safety.input_timeout_s"] == 0.75  # -p beats config/policy.yaml
    assert policy["autostart"] is False  # -p beats the command's own autostart
    sim = effective_parameters(args, "sim_node", ros)
    assert sim["seed"] == 4 and sim["instruction"] == "reach the red cube"
    assert effective_parameters(_args("--sim"), "sim_node")["seed"] == 0  # config/sim.yaml's when not given


def test_the_commands_policy_values_are_spec_parameters():
    from moe_vla_ros.spec.described import BUILTIN_PARAMETERS, param_names
    from moe_vla_ros.spec.policy_node import PolicyNodeConfig

    args = _args("--model", "m", "--backend", "torch", "--instruction", "reach the red cube")
    assert set(policy_parameters(args)) <= set(param_names(PolicyNodeConfig)) | set(BUILTIN_PARAMETERS)
    cfg = policy_config(args, ["--ros-args", "-p", "execution.blend_steps:=2"])
    assert cfg.model.backend == "torch" and cfg.model.path == "m" and cfg.autostart
    assert cfg.execution.default_instruction == "reach the red cube" and cfg.execution.blend_steps == 2
    assert cfg.robot.joint_names[-1] == "gripper"


def test_rcl_gets_the_config_files_before_the_users_arguments(tmp_path):
    args = _args("--sim")
    argv = ["--sim", "--ros-args", "-p", "x:=1"]
    full = ros_arguments(args, tmp_path / "options.yaml", argv)
    files = [full[i + 1] for i, a in enumerate(full) if a == "--params-file"]
    assert files == [str(args.policy_config), str(args.robot_config), str(args.sim_config), str(tmp_path / "options.yaml")]
    assert full[-len(argv):] == argv and full.index("--") < full.index("-p")


def test_default_config_files_come_from_the_share_folder():
    args = resolve_config_paths(build_parser().parse_args([]))
    assert args.policy_config.name == "policy.yaml" and args.robot_config.name == "sim_arm.yaml"


@pytest.mark.parametrize("problem", ["missing", "not_yaml", "user_params_file"])
def test_unreadable_config_file_exits_2_with_one_line(tmp_path, problem):
    bad = tmp_path / "bad.yaml"
    if problem == "not_yaml":
        bad.write_text("/**/policy_node: [unclosed\n")
    argv = ["--ros-args", "--params-file", str(bad)] if problem == "user_params_file" else ["--robot-config", str(bad)]
    run = subprocess.run([str(BRINGUP), *argv], env=isolated_ros_env(), capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and lines[0].startswith("moe_vla_bringup: error:"), run.stderr


def test_policy_node_that_cannot_configure_ends_bringup_non_zero(tmp_path):
    cmd = [str(BRINGUP), "--model", str(tmp_path / "no_model"), "--ros-args", "-p", "model.providers:=[CPUExecutionProvider]"]
    run = subprocess.run(cmd, env=isolated_ros_env(), capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    assert "policy_node could not configure" in run.stderr or "autostart failed" in run.stderr, run.stderr[-2000:]


def test_bringup_sim_closed_loop_in_a_namespace_with_command_line_overrides(ros_context, sim_model_dir):
    from jtc_conformance import JtcConformance, is_hold, shipped_controller_params
    from launch_helpers import get_parameters
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from trajectory_msgs.msg import JointTrajectory

    from moe_vla_msgs.msg import ReasoningTrace
    from moe_vla_ros.ros import qos

    # Simulated time (the sim's /clock), as the controller judges the stamps with use_sim_time.
    node = Node("bringup_probe", context=ros_context, parameter_overrides=[Parameter("use_sim_time", value=True)])
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    commands, traces = [], []
    jtc = JtcConformance(clock=lambda: node.get_clock().now().nanoseconds * 1e-9, params=shipped_controller_params())
    traj_sub = node.create_subscription(JointTrajectory, "/robot7/joint_trajectory_controller/joint_trajectory",
                                        lambda m: (jtc.check(m), commands.append(m)), qos.command_qos(depth=50))
    node.create_subscription(ReasoningTrace, "/robot7/reasoning_trace", traces.append, qos.telemetry_qos(50))
    cmd = [str(BRINGUP), "--sim", "--model", str(sim_model_dir), "--instruction", "reach the red cube",
           "--ros-args", "-r", "__ns:=/robot7", "-p", "model.providers:=[CPUExecutionProvider]",
           "-p", "safety.input_timeout_s:=0.75"]
    with RosPeerProcess(cmd, python=False) as proc:
        try:
            wait_for_match(executor, traj_sub, timeout_s=60)
            spin_until(executor, lambda: len([c for c in commands if not is_hold(c)]) >= 3 and traces, timeout_s=60,
                       what="3 commands and a reasoning trace from bringup")
            values = get_parameters(node, executor, "/robot7/policy_node",
                                    ["model.providers", "safety.input_timeout_s", "execution.blend"])
        finally:
            rc = proc.stop()
    assert rc == 0, proc.output()[-3000:]
    assert list(values["model.providers"]) == ["CPUExecutionProvider"]  # -p over config/policy.yaml's list
    assert values["safety.input_timeout_s"] == 0.75 and values["execution.blend"] == "smoothstep"
    assert commands[0].joint_names[-1] == "gripper" and len(commands[0].joint_names) == 7
    assert traces[0].instruction == "reach the red cube"
    jtc.assert_no_violations()  # the controller of config/controllers would execute every command
    assert "rejected trajectory" not in proc.output(), proc.output()[-3000:]  # and the simulator did
    node.destroy_node()
    executor.shutdown()
