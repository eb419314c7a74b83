"""Node parameters are declared from the config dataclasses with descriptors and validated."""

import pytest

from moe_vla_ros.param_files import flatten_parameters, load_params_file
from moe_vla_ros.spec.described import iter_params
from moe_vla_ros.spec.policy_node import NodeConfigError, PolicyNodeConfig, RobotParams

pytestmark = pytest.mark.ros


def _node(ros_context, overrides=None):
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    params = [Parameter(k, value=v) for k, v in (overrides or {}).items()]
    return Node("params_test", context=ros_context, parameter_overrides=params)


def test_every_parameter_has_a_description():
    names = [name for name, f, _ in iter_params(PolicyNodeConfig)]
    assert "model.path" in names and "safety.input_timeout_s" in names and "autostart" in names
    for name, f, _ in iter_params(PolicyNodeConfig):
        assert len(f.metadata["ros_param"]["description"]) > 10, name


def test_declare_config_defaults_and_descriptors(ros_context):
    from moe_vla_ros.ros.params import declare_config

    node = _node(ros_context)
    cfg = declare_config(node, PolicyNodeConfig)
    assert cfg == PolicyNodeConfig()
    desc = node.describe_parameter("execution.sync_slop_s")
    assert "stamp difference" in desc.description
    assert desc.floating_point_range[0].from_value == pytest.approx(0.001)
    assert node.describe_parameter("model.warmup_runs").integer_range[0].to_value == 100
    assert "One of: onnxruntime, torch" in node.describe_parameter("model.backend").description
    node.destroy_node()


def test_declare_config_overrides_and_validation(ros_context):
    from rclpy.exceptions import InvalidParameterValueException

    from moe_vla_ros.ros.params import declare_config

    node = _node(ros_context, {"robot.joint_names": ["a", "b"], "robot.max_velocity": [1.0, 2.0],
                               "execution.blend": "linear", "autostart": True})
    cfg = declare_config(node, PolicyNodeConfig)
    assert cfg.robot.joint_names == ["a", "b"] and cfg.robot.max_velocity == [1.0, 2.0]
    assert cfg.execution.blend == "linear" and cfg.autostart is True
    node.destroy_node()

    node = _node(ros_context, {"execution.sync_slop_s": 5.0})
    with pytest.raises(InvalidParameterValueException):
        declare_config(node, PolicyNodeConfig)
    node.destroy_node()

    node = _node(ros_context, {"execution.blend": "spline"})
    with pytest.raises(NodeConfigError, match="execution.blend must be one of"):
        declare_config(node, PolicyNodeConfig)
    node.destroy_node()


def test_robot_limits_must_match_joint_count():
    with pytest.raises(NodeConfigError, match="robot.max_velocity has 1 values for 2 joints"):
        RobotParams(joint_names=["a", "b"], max_velocity=[1.0])


def test_params_file_flattening(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("/**:\n  ros__parameters:\n    autostart: true\npolicy_node:\n  ros__parameters:\n"
                    "    model:\n      backend: torch\n")
    assert load_params_file(path, "policy_node") == {"autostart": True, "model.backend": "torch"}
    assert flatten_parameters({"a": {"b": {"c": 1}}, "d": 2}) == {"a.b.c": 1, "d": 2}


def test_node_declares_the_spec_and_reads_the_same_yaml_as_the_offline_evaluator(tmp_path):
    """rcl's own --params-file parsing + declare_config (the node) and the spec's YAML reading (the
    offline evaluator) give the same settings, hence the same runner config, runtime config and
    limits; every spec field is a declared parameter."""
    from rclpy.node import Node

    from moe_vla_ros.contract import PolicyContract, SensorContract
    from moe_vla_ros.evaluation.bag.config import EvaluationConfig
    from moe_vla_ros.ros.contexts import private_context
    from moe_vla_ros.ros.params import declare_config
    from moe_vla_ros.spec.described import param_names
    from moe_vla_ros.spec.policy_node import default_params_files

    tuned = tmp_path / "tuned.yaml"
    tuned.write_text(
        "/**/policy_node:\n  ros__parameters:\n"
        "    model: {precision: int8, warmup_runs: 0}\n"
        "    execution: {refill_threshold_s: 0.4, blend: linear, reasoning_rate_hz: 0.0, default_instruction: go}\n"
        "    safety: {recovery_s: 0.5, require_enable: true}\n"
        "    input_checks: {jump_velocity_factor: 0.0, max_tracking_error_rad: 0.0, frozen_after_s: 0.0}\n"
    )
    files = [*default_params_files(), tuned]
    with private_context(["--ros-args", *[a for f in files for a in ("--params-file", str(f))]]) as context:
        node = Node("policy_node", context=context)
        declared = declare_config(node, PolicyNodeConfig)
        assert all(node.has_parameter(name) for name in param_names(PolicyNodeConfig))
        node.destroy_node()
    offline = EvaluationConfig.from_params_files(files)
    assert offline.node == declared  # tuned.yaml already turns the open-loop checks off
    joints = tuple(declared.robot.joint_names)
    contract = PolicyContract(SensorContract(("front", "wrist"), 8, 8, joints, control_rate_hz=10.0), chunk_length=16)
    assert offline.runner_config(contract) == declared.runner_config(contract)
    assert offline.node.runtime_config() == declared.runtime_config() and not declared.runtime_config().reasoning_enabled
    assert offline.safety(contract) == declared.safety_limits(contract)
