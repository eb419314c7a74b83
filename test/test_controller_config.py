"""config/controllers/joint_trajectory_controller.yaml: the joints of the simulated arm, real
joint_trajectory_controller parameters only, settings that accept what policy_node sends, and
the parameters sim_node models."""

from __future__ import annotations

from pathlib import Path

import yaml

from moe_vla_ros.control.jtc_rules import JTC_PARAMETER_NAMES, JtcParams, unknown_parameter_names
from moe_vla_ros.param_files import flatten_parameters
from moe_vla_ros.ros.sim_node_config import SimNodeConfig
from moe_vla_ros.sim.config import JOINT_NAMES

REPO = Path(__file__).resolve().parents[1]
CONTROLLER_YAML = REPO / "config" / "controllers" / "joint_trajectory_controller.yaml"
SIM_ARM_YAML = REPO / "config" / "robots" / "sim_arm.yaml"
CONTROLLER = "joint_trajectory_controller"


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _node_block(tree: dict, node: str) -> dict:
    """The ros__parameters of `node`, keyed plainly or with a namespace wildcard ("/**/node")."""
    keys = [k for k in tree if k == node or k.endswith(f"/{node}")]
    assert len(keys) == 1, f"expected one block for {node}, got {list(tree)}"
    return tree[keys[0]]["ros__parameters"]


def _controller_block() -> dict:
    return _node_block(_load(CONTROLLER_YAML), CONTROLLER)


def _robot() -> dict:
    return flatten_parameters(_node_block(_load(SIM_ARM_YAML), "policy_node"))


def test_the_controller_manager_loads_the_trajectory_controller_and_the_joint_state_broadcaster():
    manager = _node_block(_load(CONTROLLER_YAML), "controller_manager")
    assert manager[CONTROLLER]["type"] == "joint_trajectory_controller/JointTrajectoryController"
    assert manager["joint_state_broadcaster"]["type"] == "joint_state_broadcaster/JointStateBroadcaster"
    assert manager["update_rate"] >= 50  # well above policy_node's 10 Hz points


def test_joints_are_the_simulated_arms():
    block = _controller_block()
    assert block["joints"] == _robot()["robot.joint_names"] == list(JOINT_NAMES)
    assert set(block["constraints"]) - {"goal_time", "stopped_velocity_tolerance"} == set(JOINT_NAMES)


def test_every_key_is_a_joint_trajectory_controller_parameter():
    flat = flatten_parameters(_controller_block())
    assert unknown_parameter_names(flat, JOINT_NAMES) == []
    assert "open_loop_control" not in flat and "open_loop_control" not in JTC_PARAMETER_NAMES  # removed in kilted


def test_the_controller_accepts_what_policy_node_sends():
    block = _controller_block()
    assert block["command_interfaces"] == ["position"] and block["state_interfaces"] == ["position", "velocity"]
    assert block["allow_nonzero_velocity_at_trajectory_end"] is False  # chunks and holds end at rest
    assert block["allow_partial_joints_goal"] is False  # every message names all joints
    assert block["interpolate_from_desired_state"] is False and block["interpolation_method"] == "splines"
    # The node publishes on the controller's ~/joint_trajectory topic, with a QoS that matches the
    # controller's rclcpp::SystemDefaultsQoS subscription (reliable, volatile).
    assert _robot()["topics.trajectory"].lstrip("/") == f"{CONTROLLER}/joint_trajectory"
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    from moe_vla_ros.ros.qos import command_qos

    assert command_qos().reliability == ReliabilityPolicy.RELIABLE
    assert command_qos().durability == DurabilityPolicy.VOLATILE


def test_sim_node_models_this_controller():
    params = JtcParams.from_ros_parameters(_controller_block())
    assert params == SimNodeConfig().controller.jtc_params()  # config/sim.yaml sets the defaults
    assert params.trajectory_tolerances[-1] == params.goal_tolerances[-1] == 0.0  # gripper: grasps
    assert all(t > 0.0 for t in params.trajectory_tolerances[:-1]) and params.goal_time > 0.0
