"""The offline evaluator decides as the node would: from the same parameter files it holds the same
node spec and builds the same PolicyRunner settings, runtime config and safety limits as the policy
node replaying a bag (the node's files + config/bag_replay.yaml, which turns off the checks that
compare joint states with the evaluated policy's own plan: tracking error, frozen)."""

from __future__ import annotations

import pytest
import yaml

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.contract import PolicyContract, SensorContract
from moe_vla_ros.evaluation.bag.config import EvaluationConfig
from moe_vla_ros.paths import find_share_file
from moe_vla_ros.spec.described import param_names
from moe_vla_ros.spec.policy_node import NodeInvocation, PolicyNodeConfig, default_params_files

JOINTS = ("joint_1", "joint_2", "joint_3", "joint_4", "joint_5", "joint_6", "gripper")
CONTRACT = PolicyContract(SensorContract(("front", "wrist"), 32, 32, JOINTS, control_rate_hz=10.0), chunk_length=16)

TUNED = (  # non-default values in every group the runner, the runtime and the limits read
    "/**/policy_node:\n  ros__parameters:\n"
    "    model: {precision: int8, intra_op_threads: 2, warmup_runs: 0}\n"
    "    robot: {max_acceleration: [4.0, 4.0, 4.0, 6.0, 6.0, 6.0, 1.0]}\n"
    "    execution: {refill_threshold_s: 0.4, blend: linear, blend_steps: 3, execution_lead_s: 0.03,\n"
    "                max_observation_age_s: 0.4, reasoning_rate_hz: 2.0, sync_slop_s: 0.04,\n"
    "                default_instruction: reach the red cube, allow_nonzero_velocity_at_trajectory_end: true}\n"
    "    safety: {input_timeout_s: 0.7, startup_grace_s: 3.0, recovery_s: 0.5, require_enable: true,\n"
    "             max_unread_words: 2}\n"
    "    input_checks: {position_tolerance_rad: 0.1, jump_velocity_factor: 0.0, max_stamp_age_s: 0.3}\n"
)


def _replay_node(files) -> PolicyNodeConfig:
    """What the policy node replaying a bag runs with (ros/bag_replay_eval.py's files)."""
    return NodeInvocation((*files, find_share_file("config", "bag_replay.yaml"))).config()


def test_node_and_offline_evaluator_build_the_same_objects_from_the_same_yaml(tmp_path):
    extra = tmp_path / "tuned.yaml"
    extra.write_text(TUNED)
    for files in (default_params_files(), [*default_params_files(), extra]):
        node = _replay_node(files)
        offline = EvaluationConfig.from_params_files(files)
        assert offline.runner_config(CONTRACT) == node.runner_config(CONTRACT)
        assert offline.node.runtime_config() == node.runtime_config()
        assert offline.safety(CONTRACT) == node.safety_limits(CONTRACT)
        assert offline.node.model.warmup_runs == node.model.warmup_runs
        # the closed-loop node (no bag_replay.yaml) differs only in the open-loop checks
        closed = PolicyNodeConfig.from_params_files(files)
        assert closed.open_loop() == node and offline.node == closed
    tuned = EvaluationConfig.from_params_files([*default_params_files(), extra]).runner_config(CONTRACT)
    assert tuned.executor.blend == "linear" and not tuned.start_enabled and tuned.default_instruction == "reach the red cube"


def test_every_node_parameter_reaches_the_evaluator_and_its_report(tmp_path):
    """A field added to the spec is in the evaluator's config (and report) without other edits."""
    cfg = EvaluationConfig.from_params_files()
    report = cfg.to_dict()
    assert list(report["node"]) == param_names(PolicyNodeConfig)
    yaml.safe_dump(report)  # plain values only (report.json)
    assert report["node"] == PolicyNodeConfig.from_params_files(default_params_files()).to_params()


def test_bag_topics_default_to_the_nodes_in_the_root_namespace(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(
        "/**/policy_node:\n"
        "  ros__parameters:\n"
        "    topics: {joint_states: js, camera_topics: [cam/front, /abs/wrist], camera_transport: compressed}\n"
        "    robot: {camera_names: [front, wrist]}\n"
    )
    cfg = EvaluationConfig.from_params_files([params], progress=False)
    assert cfg.joint_state_topic == "/js" and cfg.instruction_topic == "/instruction"
    assert cfg.camera_topics == {"front": "/cam/front/compressed", "wrist": "/abs/wrist/compressed"}
    assert cfg.command_topic == "/joint_trajectory_controller/joint_trajectory"
    assert EvaluationConfig.from_params_files([params], joint_state_topic="/other").joint_state_topic == "/other"
    assert EvaluationConfig().camera_topics == {}  # no camera names: /camera/<name>/image_raw per contract camera
    params.write_text("/**/policy_node:\n  ros__parameters:\n    robot: {camera_names: [front]}\n")
    with pytest.raises(BagError, match="differ in length"):
        EvaluationConfig.from_params_files([params])


def test_bad_node_parameters_are_bag_errors_naming_the_value(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("/**/policy_node:\n  ros__parameters:\n    execution: {blend: spline}\n")
    with pytest.raises(BagError, match="execution.blend must be one of"):
        EvaluationConfig.from_params_files([params])
    with pytest.raises(BagError, match="cannot read parameter file"):
        EvaluationConfig.from_params_files([tmp_path / "missing.yaml"])
    with pytest.raises(BagError, match="poll_period_s"):
        EvaluationConfig(poll_period_s=0.0)
