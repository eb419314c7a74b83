"""The offline evaluator decides as the node would: from the same parameter files it builds the
same PolicyRunner settings as the policy node (except the checks that compare joint states with
the evaluated policy's own plan, which a recorded bag cannot pass: tracking error, frozen)."""

from dataclasses import replace

from moe_vla_ros.bags.evaluate_config import EvaluationConfig, default_params_files
from moe_vla_ros.contract import PolicyContract
from moe_vla_ros.ros.params import build_config, load_params_file
from moe_vla_ros.ros.policy_node_config import PolicyNodeConfig
from moe_vla_ros.sim.arm_sim import sim_sensor_contract


def _node_config(files) -> PolicyNodeConfig:
    flat: dict = {}
    for path in files:
        flat.update(load_params_file(path, "policy_node"))
    return build_config(PolicyNodeConfig, flat)


def test_node_and_offline_evaluator_build_the_same_runner_config_from_the_same_yaml(tmp_path):
    contract = PolicyContract(sim_sensor_contract(("front", "wrist"), 32, 10.0), chunk_length=16)
    extra = tmp_path / "tuned.yaml"  # non-default values in every group the runner reads
    extra.write_text(
        "/**/policy_node:\n  ros__parameters:\n"
        "    execution: {refill_threshold_s: 0.4, blend: linear, blend_steps: 3, execution_lead_s: 0.03,\n"
        "                max_observation_age_s: 0.4, reasoning_rate_hz: 2.0, sync_slop_s: 0.04,\n"
        "                allow_nonzero_velocity_at_trajectory_end: true}\n"
        "    safety: {input_timeout_s: 0.7, startup_grace_s: 3.0, recovery_s: 0.5}\n"
        "    input_checks: {position_tolerance_rad: 0.1, jump_velocity_factor: 0.0, max_stamp_age_s: 0.3}\n"
    )
    for files in (default_params_files(), [*default_params_files(), extra]):
        node = _node_config(files).runner_config(contract)
        offline = EvaluationConfig.from_params_files(files).runner_config(contract)
        open_loop = replace(node.input_checks, max_tracking_error_rad=None, frozen_after_s=None)
        assert offline == replace(node, input_checks=open_loop)
