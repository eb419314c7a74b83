"""SimNodeConfig: validation names the bad value, tasks from instructions, config/sim.yaml in sync."""

from pathlib import Path

import pytest

from moe_vla_ros.param_files import load_params_file
from moe_vla_ros.ros.sim_node_config import (
    CameraParams,
    ControllerParams,
    SimNodeConfig,
    SimNodeConfigError,
    SimTopicParams,
    TaskParams,
    task_from_instruction,
)
from moe_vla_ros.sim.config import JOINT_NAMES
from moe_vla_ros.sim.tasks import INSTRUCTION_TEMPLATES, Task, instruction_for
from moe_vla_ros.spec.described import build_config, default_value, iter_params

SIM_YAML = Path(__file__).resolve().parents[2] / "config" / "sim.yaml"


def test_defaults_match_the_gazebo_ros2_control_topics():
    cfg = SimNodeConfig()
    assert cfg.topics.camera_topics == ["camera/front/image_raw", "camera/wrist/image_raw"]  # relative: namespaces
    assert cfg.topics.trajectory == "joint_trajectory_controller/joint_trajectory"
    assert (cfg.camera_rate_hz, cfg.joint_state_rate_hz, cfg.real_time_factor) == (30.0, 100.0, 1.0)
    assert cfg.resolve_task() is None
    sim = cfg.sim_config()
    assert (sim.image_height, sim.image_width, sim.camera_names) == (224, 224, ("front", "wrist"))
    assert sim.physics_timestep_s == cfg.physics_timestep_s


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: CameraParams(names=["front", "side"]), r"cameras.names .* got \['front', 'side'\]"),
        (lambda: CameraParams(names=["front", "front"], frame_ids=["a", "b"]), "cameras.names must be non-empty and distinct"),
        (lambda: CameraParams(frame_ids=["only_one"]), r"one non-empty frame per camera .* \['only_one'\]"),
        (lambda: CameraParams(encoding="mono8"), "cameras.encoding .* got 'mono8'"),
        (lambda: SimTopicParams(joint_states="camera/front/image_raw"), "non-empty and distinct"),
        (lambda: TaskParams(family="stack"), "task.family .* got 'stack'"),
        (lambda: TaskParams(family="reach", color="pink"), "task.color .* got 'pink'"),
        (lambda: TaskParams(family="push"), "task.direction .* got '' for family 'push'"),
        (lambda: TaskParams(family="lift", direction="left"), "got 'left' for family 'lift'"),
        (lambda: SimNodeConfig(real_time_factor=0.0), r"real_time_factor must be in \[0.01, 100\], got 0.0"),
        (lambda: SimNodeConfig(camera_rate_hz=float("nan")), "camera_rate_hz .* got nan"),
        (lambda: SimNodeConfig(seed=-1), "seed .* got -1"),
        (lambda: SimNodeConfig(topics=SimTopicParams(camera_topics=["/c"])), "1 topics for 2 cameras"),
    ],
)
def test_invalid_values_are_named(make, message):
    with pytest.raises(SimNodeConfigError, match=message):
        make()


@pytest.mark.parametrize("family", list(INSTRUCTION_TEMPLATES))
def test_every_instruction_template_gives_its_task(family):
    directions = ("left", "right") if family == "push" else (None,)
    for paraphrase in range(len(INSTRUCTION_TEMPLATES[family])):
        for color in ("red", "green", "blue"):
            for direction in directions:
                text = instruction_for(family, color, direction, paraphrase)
                task = task_from_instruction(text.capitalize() + ".")
                assert (task.family, task.color, task.direction) == (family, color, direction), text
                assert task.instruction == text.capitalize() + "."
    assert task_from_instruction("wave at the camera") is None


def test_task_parameters_take_precedence_over_the_instruction_text():
    by_text = SimNodeConfig(instruction="push the blue cube to the right").resolve_task()
    assert (by_text.family, by_text.color, by_text.direction) == ("push", "blue", "right")
    explicit = SimNodeConfig(instruction="do the thing", task=TaskParams("lift", "green")).resolve_task()
    assert explicit == Task("lift", "green", None, "do the thing")
    assert SimNodeConfig(task=TaskParams("reach", "red")).resolve_task().instruction == "reach the red cube"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(trajectory_tolerances=[0.1] * 3), r"controller.\*: trajectory_tolerances must be 7 .* got \[0.1, 0.1, "
                                                r"0.1\]"),
        (dict(goal_tolerances=[0.1] * 6 + [-1.0]), r"goal_tolerances .* got \[0.1, .*, -1.0\]"),
        (dict(interpolation_method="cubic"), "controller.interpolation_method .* got 'cubic'"),
        (dict(goal_time=-0.5), "constraints.goal_time must be >= 0, got -0.5"),
    ],
)
def test_invalid_controller_values_are_named(kwargs, message):
    with pytest.raises(SimNodeConfigError, match=message):
        ControllerParams(**kwargs)


def test_controller_parameters_are_those_of_a_joint_trajectory_controller_for_the_arm():
    params = ControllerParams(open_loop_control=True, allow_nonzero_velocity_at_trajectory_end=True).jtc_params()
    assert params.joints == JOINT_NAMES and params.command_interfaces == ("position",)
    assert params.state_interfaces == ("position", "velocity")  # what sim_node's joint states carry
    assert params.interpolate_from_desired_state and params.allow_nonzero_velocity_at_trajectory_end
    default = SimNodeConfig().controller.jtc_params()
    assert not (default.allow_partial_joints_goal or default.allow_nonzero_velocity_at_trajectory_end)
    assert default.trajectory_tolerances[-1] == default.goal_tolerances[-1] == 0.0  # the gripper grasps


def test_sim_yaml_sets_every_parameter_to_its_default():
    values = load_params_file(SIM_YAML, "sim_node")
    names = {name: f for name, f, _ in iter_params(SimNodeConfig)}
    assert sorted(values) == sorted(names)
    assert {"seed", "instruction"} <= set(values)  # top-level: launch/sim.launch.py passes them
    for name, value in values.items():
        assert value == default_value(names[name]), name
    assert build_config(SimNodeConfig, values) == SimNodeConfig()


@pytest.mark.ros
def test_declared_parameters_have_descriptors(ros_context):
    from rclpy.node import Node

    from moe_vla_ros.ros.params import declare_config

    node = Node("sim_node_params_test", context=ros_context)
    assert declare_config(node, SimNodeConfig) == SimNodeConfig()
    for name, f, _ in iter_params(SimNodeConfig):
        assert len(node.describe_parameter(name).description) > 20, name
    assert node.describe_parameter("real_time_factor").floating_point_range[0].to_value == 100.0
    assert "One of: rgb8, bgr8" in node.describe_parameter("cameras.encoding").description
    node.destroy_node()
