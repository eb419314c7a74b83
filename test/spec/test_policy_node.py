"""The policy node's spec is the one source of its settings: every field is a described parameter,
the groups build the runtime config, limits, contract check and runner config, a field added to a
group reaches the runner (or is listed as the node's own), and the command line round-trips."""

from __future__ import annotations

import dataclasses
import typing

import pytest
import yaml

from moe_vla_ros.contract import ContractError, PolicyContract, SensorContract
from moe_vla_ros.param_files import nest_parameters
from moe_vla_ros.runtime.config import INT_RANGES, RuntimeConfig
from moe_vla_ros.spec.described import default_value, iter_params, param, param_meta, param_names
from moe_vla_ros.spec.policy_node import (
    ExecutionParams,
    InputCheckParams,
    ModelParams,
    NodeConfigError,
    NodeInvocation,
    PolicyNodeConfig,
    RobotParams,
    SafetyParams,
    default_params_files,
    read_node_params,
)

JOINTS = ("joint_1", "joint_2", "joint_3", "joint_4", "joint_5", "joint_6", "gripper")
CONTRACT = PolicyContract(SensorContract(("front", "wrist"), 8, 8, JOINTS, control_rate_hz=10.0), chunk_length=16)



@dataclasses.dataclass
class ExtendedExecution(ExecutionParams):
    """The execution group with one more setting, as a developer would add it."""

    new_setting_s: float = param(0.25, "A setting added to the execution group [s].", min=0.0, max=1.0)


@dataclasses.dataclass
class ExtendedConfig(PolicyNodeConfig):
    execution: ExtendedExecution = dataclasses.field(default_factory=ExtendedExecution)


# Fields the PolicyRunner does not read, each with where it goes instead.
NOT_RUNNER = {
    "execution.status_rate_hz": "the node's status timer",
    "safety.allow_missing_position_limits": "the node's activate transition",
}


def other_value(f: dataclasses.Field, typ) -> typing.Any:
    """A valid value of a scalar parameter different from its default (None: no generic one)."""
    meta, default = param_meta(f), default_value(f)
    if typ is bool:
        return not default
    if typ is str and meta["choices"]:
        return next(c for c in meta["choices"] if c != default)
    if typ is str:
        return f"{default}tuned"
    if typ in (int, float):
        lo = meta["min"] if meta["min"] is not None else 0
        hi = meta["max"] if meta["max"] is not None else 2 * default + 10
        value = (lo + hi) / 2 if typ is float else (lo + hi) // 2
        return value if value != default else value + (1 if typ is int else 0.5 * (hi - value))
    return None


def tuned(group: str) -> dict[str, typing.Any]:
    """{dotted name: non-default value} for every scalar parameter of `group`."""
    cls = typing.get_type_hints(PolicyNodeConfig)[group]
    return {f"{group}.{name}": other_value(f, typ) for name, f, typ in iter_params(cls)
            if other_value(f, typ) is not None}


def write_params(path, flat: dict) -> str:
    path.write_text(yaml.safe_dump({"/**/policy_node": {"ros__parameters": nest_parameters(flat)}}))
    return str(path)


def test_every_field_is_a_described_parameter_with_a_valid_default():
    names = param_names(PolicyNodeConfig)
    assert len(names) == len(set(names)) and "model.path" in names and "autostart" in names
    for name, f, _ in iter_params(PolicyNodeConfig):
        assert len(param_meta(f)["description"]) > 10, name
    flat = PolicyNodeConfig().to_params()
    assert list(flat) == names and PolicyNodeConfig.from_params(flat) == PolicyNodeConfig()


def test_model_choices_and_ranges_are_the_runtimes():
    meta = {name: param_meta(f) for name, f, _ in iter_params(ModelParams)}
    for name, (lo, hi) in INT_RANGES.items():
        assert (meta[name]["min"], meta[name]["max"]) == (lo, hi), name
    with pytest.raises(NodeConfigError, match="device_id must be an integer in"):
        ModelParams(device_id=INT_RANGES["device_id"][1] + 1)
    assert RuntimeConfig(device_id=INT_RANGES["device_id"][1]).device_id == INT_RANGES["device_id"][1]
    with pytest.raises(NodeConfigError, match="torch_device"):
        ModelParams(device="tpu")  # the runtime's check, at parameter time


def test_every_model_field_reaches_the_runtime_config():
    runtime_fields = {f.name for f in dataclasses.fields(RuntimeConfig)}
    for f in dataclasses.fields(ModelParams):
        assert f.name in ModelParams.NODE_ONLY or ModelParams.RUNTIME_NAMES.get(f.name, f.name) in runtime_fields, f.name
    model = ModelParams(backend="torch", providers=["CPUExecutionProvider"], formulation="dense", precision="fp16",
                        device="cuda:1", device_id=3, trt_engine_cache_dir="/tmp/trt", trt_fp16=False,
                        trt_workspace_mb=4096, intra_op_threads=2)
    cfg = PolicyNodeConfig(model=model, execution=ExecutionParams(reasoning_rate_hz=0.0)).runtime_config()
    assert cfg == RuntimeConfig(backend="torch", providers=("CPUExecutionProvider",), formulation="dense",
                                precision="fp16", torch_device="cuda:1", device_id=3, trt_engine_cache_dir="/tmp/trt",
                                trt_fp16=False, trt_workspace_mb=4096, intra_op_threads=2, reasoning_enabled=False,
                                verify_on_target=False)  # (verification: onnxruntime only)
    assert PolicyNodeConfig().runtime_config().verify_on_target


@pytest.mark.parametrize("group", ["execution", "safety", "input_checks"])
def test_every_runner_field_changes_the_runner_config(group):
    """Adding a field to these groups is one edit: it reaches the PolicyRunner (or is listed)."""
    base = PolicyNodeConfig().runner_config(CONTRACT)
    for name, value in tuned(group).items():
        changed = PolicyNodeConfig.from_params({name: value}).runner_config(CONTRACT)
        if name in NOT_RUNNER:
            assert changed == base, name
        else:
            assert changed != base, f"{name} (= {value!r}) does not reach the runner config"


def test_runner_config_from_the_groups():
    cfg = PolicyNodeConfig(
        execution=ExecutionParams(refill_threshold_s=30.0, reasoning_rate_hz=0.0, default_instruction="reach"),
        safety=SafetyParams(require_enable=True, recovery_s=0.5, max_unread_words=-1),
        input_checks=InputCheckParams(jump_velocity_factor=0.0, max_stamp_age_s=0.3),
    )
    runner = cfg.runner_config(CONTRACT)
    assert runner.executor.refill_threshold_s == pytest.approx(0.999 * CONTRACT.chunk_duration_s)  # capped
    assert runner.reasoning_period_s is None and not cfg.runtime_config().reasoning_enabled
    assert not runner.start_enabled and runner.default_instruction == "reach" and runner.recovery_s == 0.5
    assert runner.max_unread_words == -1
    assert runner.input_checks.jump_velocity_factor is None and runner.input_checks.max_stamp_age_s == 0.3
    open_loop = cfg.open_loop().runner_config(CONTRACT)
    assert open_loop.input_checks.max_tracking_error_rad is None and open_loop.input_checks.frozen_after_s is None
    assert dataclasses.replace(open_loop, input_checks=runner.input_checks) == runner


def test_open_loop_is_what_config_bag_replay_yaml_sets():
    from moe_vla_ros.paths import find_share_file

    files = default_params_files()
    replayed = PolicyNodeConfig.from_params_files([*files, find_share_file("config", "bag_replay.yaml")])
    assert replayed == PolicyNodeConfig.from_params_files(files).open_loop()


def test_contract_check_and_limits():
    robot = RobotParams(joint_names=list(JOINTS), camera_names=["front", "wrist"], max_velocity=[1.0] * 7)
    cfg = PolicyNodeConfig(robot=robot)
    cfg.check_contract(CONTRACT)
    limits = cfg.safety_limits(CONTRACT)
    assert limits.max_velocity == (1.0,) * 7 and not limits.has_position_limits
    assert PolicyNodeConfig().safety_limits(CONTRACT) is None
    other = PolicyContract(SensorContract(("front", "wrist"), 8, 8, ("a", "b"), control_rate_hz=10.0), chunk_length=4)
    with pytest.raises(ContractError, match="joint_names: model has \\['a', 'b'\\]"):
        cfg.check_contract(other)
    with pytest.raises(ContractError, match="camera_names"):
        PolicyNodeConfig(robot=RobotParams(camera_names=["wrist", "front"])).check_contract(CONTRACT)
    with pytest.raises(ContractError, match="robot.max_velocity"):
        PolicyNodeConfig(robot=RobotParams(max_velocity=[1.0, 2.0])).safety_limits(CONTRACT)
    with pytest.raises(ContractError, match="topics.camera_topics has 1 topics"):
        PolicyNodeConfig.from_params({"topics.camera_topics": ["cam"]}).check_contract(CONTRACT)
    with pytest.raises(NodeConfigError, match="need both lower and upper"):
        PolicyNodeConfig(robot=RobotParams(position_lower=[0.0] * 7)).safety_limits(CONTRACT)


def test_invocation_command_line_and_config(tmp_path):
    files = default_params_files()
    inv = NodeInvocation(files, {"use_sim_time": True, "model.providers": ["CPUExecutionProvider"],
                                 "execution.blend_steps": 3}, ("execution.blend_steps:=2",))
    args = inv.command("/bin/policy_node")
    assert args[:2] == ["/bin/policy_node", "--ros-args"]
    assert [args[i + 1] for i, a in enumerate(args) if a == "--params-file"] == [str(f) for f in files]
    params = [args[i + 1] for i, a in enumerate(args) if a == "-p"]
    assert params == ["use_sim_time:=true", "model.providers:=[CPUExecutionProvider]", "execution.blend_steps:=3",
                      "execution.blend_steps:=2"]
    cfg = inv.config()  # later wins, as rcl applies them; use_sim_time is not the node's own
    assert cfg.execution.blend_steps == 2 and cfg.model.providers == ["CPUExecutionProvider"]
    assert cfg.robot.joint_names[-1] == "gripper"
    with pytest.raises(NodeConfigError, match="name:=value"):
        NodeInvocation(files, overrides=("blend",))
    with pytest.raises(NodeConfigError, match="cannot read parameter file"):
        read_node_params([tmp_path / "missing.yaml"])
    with pytest.raises(NodeConfigError, match="execution.blend must be one of"):
        NodeInvocation([write_params(tmp_path / "p.yaml", {"execution.blend": "spline"})]).config()


def test_yaml_reaches_every_tuned_parameter(tmp_path):
    flat = {**tuned("execution"), **tuned("safety"), **tuned("input_checks"), **tuned("qos")}
    cfg = PolicyNodeConfig.from_params_files([*default_params_files(), write_params(tmp_path / "t.yaml", flat)])
    params = cfg.to_params()
    for name, value in flat.items():
        assert params[name] == pytest.approx(value) if isinstance(value, float) else params[name] == value, name


def test_a_new_field_is_a_parameter_read_from_yaml_and_reported_without_other_edits(tmp_path):
    from moe_vla_ros.evaluation.bag.config import EvaluationConfig

    assert "execution.new_setting_s" in param_names(ExtendedConfig)
    path = write_params(tmp_path / "p.yaml", {"execution.new_setting_s": 0.5})
    cfg = ExtendedConfig.from_params_files([*default_params_files(), path])
    assert cfg.execution.new_setting_s == 0.5 and cfg.robot.joint_names[-1] == "gripper"
    assert cfg.to_params()["execution.new_setting_s"] == 0.5
    assert EvaluationConfig(node=cfg).to_dict()["node"]["execution.new_setting_s"] == 0.5  # the evaluator's report
    with pytest.raises(NodeConfigError):
        ExtendedConfig.from_params({"execution.new_setting_s": 0.5, "execution.blend": "spline"})


def test_triton_parameters_reach_the_runtime_config(tmp_path):
    from moe_vla_ros.runtime.config import TRITON_RANGES, TritonConfig

    names = [n for n in param_names(PolicyNodeConfig) if n.startswith("model.triton.")]
    assert [n.removeprefix("model.triton.") for n in names] == [f.name for f in dataclasses.fields(TritonConfig)]
    meta = {name: param_meta(f) for name, f, _ in iter_params(PolicyNodeConfig)}
    for name, (lo, hi) in TRITON_RANGES.items():
        assert (meta[f"model.triton.{name}"]["min"], meta[f"model.triton.{name}"]["max"]) == (lo, hi), name
    assert PolicyNodeConfig.from_params_files(default_params_files()).runtime_config().triton == TritonConfig()
    flat = {"model.backend": "triton", "model.triton.url": "fleet-gpu:8001", "model.triton.deadline_s": 0.05,
            "model.triton.connect_timeout_s": 2.0, "model.triton.model_version": "3", "model.triton.ssl": True,
            "model.triton.fallback_onboard": True, "model.triton.retry_primary_s": 0.0}
    cfg = PolicyNodeConfig.from_params_files([*default_params_files(), write_params(tmp_path / "t.yaml", flat)])
    runtime = cfg.runtime_config()
    assert runtime.backend == "triton" and runtime.triton == TritonConfig(
        url="fleet-gpu:8001", deadline_s=0.05, connect_timeout_s=2.0, model_version="3", ssl=True,
        fallback_onboard=True, retry_primary_s=0.0)
    assert runtime.verify_on_target  # for the onboard fallback
    no_fallback = cfg.with_params({"model.triton.fallback_onboard": False}).runtime_config()
    assert not no_fallback.verify_on_target and not no_fallback.triton.fallback_onboard
    for name, value, error in (("url", "fleet-gpu", "url must be 'host:port'"), ("deadline_s", 0.0, "deadline_s"),
                               ("model_version", "latest", "model_version"), ("retry_primary_s", -1.0, "retry_primary_s")):
        with pytest.raises(NodeConfigError, match=f"model.triton: {error}"):
            PolicyNodeConfig.from_params({f"model.triton.{name}": value})
