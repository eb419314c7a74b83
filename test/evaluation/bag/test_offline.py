"""Offline evaluation of policies on a bag recorded from the scripted expert (evaluation/bag/offline.py).

A random-weight model must score a large action error, the oracle baseline (the bag's own
actions, a real Policy) a small one; bad bags are refused with clear errors before anything
is written.
"""

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.from_sim import SimRecordingConfig, record_sim_bag
from moe_vla_ros.bags.synthetic import SyntheticDemo, write_demo_bag
from moe_vla_ros.evaluation.bag.config import EvaluationConfig
from moe_vla_ros.evaluation.bag.offline import evaluate_bag, main
from moe_vla_ros.evaluation.bag.oracle import RecordedActionsPolicy
from moe_vla_ros.runtime.config import RuntimeConfig
from moe_vla_ros.sim.config import JOINT_NAMES
from moe_vla_ros.spec.policy_node import default_params_files

LATENCY_S = 0.05
# On the bag below (reach + push, recovery_s 0) the bundled model default-da2125abe6 scores 0.059 rad and
# a random-weight one 0.20 (measured; default-08bba4787d before it: 0.056; the first, reach + push
# model: 0.036). Noise-injected fine-tuning rounds made it better closed loop and a little further
# from the clean expert offline.
BUNDLED_MAX_MAE_RAD = 0.07
ORT_CPU = RuntimeConfig(providers=("CPUExecutionProvider",))


@pytest.fixture(scope="module")
def expert_bag(tmp_path_factory):
    """Two expert episodes recorded at 48x48 (the model's contract is 32x32: images are resized)."""
    path = tmp_path_factory.mktemp("expert") / "bag"
    cfg = SimRecordingConfig(episodes=2, max_episode_s=3.0, image_size=48, camera_rate_hz=15.0, progress=False)
    return record_sim_bag(path, cfg)


@pytest.fixture(scope="module")
def random_model(sim_model_dir):
    """A seeded random-weight tiny MoE-VLA for the simulated arm's contract (session fixture)."""
    return sim_model_dir


@pytest.fixture(scope="module")
def config():
    """The node's settings (config/policy.yaml + sim_arm.yaml), a fixed simulated latency."""
    return EvaluationConfig.from_params_files(default_params_files(), fixed_latency_s=LATENCY_S, progress=False)


@pytest.fixture(scope="module")
def random_report(expert_bag, random_model, config, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "random"
    return evaluate_bag(expert_bag.path, random_model, out, config, runtime=ORT_CPU)


@pytest.fixture(scope="module")
def oracle_report(expert_bag, config, tmp_path_factory):
    oracle = RecordedActionsPolicy.from_bag(expert_bag.path, config=config, latency_s=LATENCY_S)
    return evaluate_bag(expert_bag.path, None, tmp_path_factory.mktemp("eval") / "oracle", config, policy=oracle)


def test_random_model_scores_a_large_error(random_report):
    d = random_report.data
    assert random_report.commands >= 4 and d["counts"]["inferences"] >= random_report.commands
    assert random_report.action_mae > 0.05
    assert d["chunk_error"]["mae"] > 0.05 and len(d["chunk_error"]["per_step_mae"]) == 16
    assert set(d["action_error"]["per_joint"]) == set(JOINT_NAMES)
    assert d["reference"] == "command /joint_trajectory_controller/joint_trajectory"
    assert d["source_image_sizes"] == {"front": [48, 48], "wrist": [48, 48]}
    assert d["seams"]["count"] >= 1 and d["counts"]["holds"] >= 1  # the silence between the episodes
    assert set(d["expert_usage"]) == {"trunk.blocks.1.ffn", "action_head.blocks.0.ffn"}
    assert d["reasoning"]["traces"] >= 2 and d["latency_s"]["p50"] == pytest.approx(LATENCY_S)


def test_oracle_baseline_scores_a_small_error(oracle_report, random_report):
    assert oracle_report.commands >= 4
    assert oracle_report.action_mae < 0.01
    assert oracle_report.data["chunk_error"]["mae"] < 1e-6  # its chunks are the recording itself
    assert random_report.action_mae > 10 * oracle_report.action_mae


def test_bundled_model_has_a_small_error_and_a_random_model_a_large_one(random_model, config, tmp_path):
    """The bundled model (trained on the scripted expert's demonstrations, other seeds) on a bag of
    two new expert episodes at its own image size, against a random-weight model on the same bag."""
    from moe_vla_ros.paths import bundled_model_dir

    bag = record_sim_bag(tmp_path / "bag", SimRecordingConfig(episodes=2, max_episode_s=3.0, image_size=96,
                                                             camera_rate_hz=15.0, seed=5, progress=False))
    # The two episodes are separated by a silence; after it the node waits safety.recovery_s (1 s of
    # a 3 s episode) before commanding again. Score the model on both episode starts.
    config = dataclasses.replace(config, node=config.node.with_params({"safety.recovery_s": 0.0}))
    trained = evaluate_bag(bag.path, bundled_model_dir(), tmp_path / "bundled", config, runtime=ORT_CPU)
    random = evaluate_bag(bag.path, random_model, tmp_path / "random", config, runtime=ORT_CPU)
    print(f"action MAE: bundled {trained.action_mae:.4f} rad, random {random.action_mae:.4f} rad")
    assert trained.commands >= 4 and random.commands >= 4
    assert trained.action_mae < BUNDLED_MAX_MAE_RAD
    assert random.action_mae > 3 * trained.action_mae


def test_report_files(random_report):
    out = random_report.path.parent
    files = {"report.json", "trajectories.png", "error_over_time.png", "expert_usage.png"}
    assert {p.name for p in out.iterdir()} == files
    data = json.loads(random_report.path.read_text())
    assert data["mode"] == "offline" and data["contract"]["chunk_length"] == 16
    assert data["config"]["node"]["robot.max_velocity"][0] == 2.0  # from config/robots/sim_arm.yaml
    assert len(data["error_over_time"]["t_s"]) == data["action_error"]["samples"]
    assert "MAE" in random_report.format()


def test_simulated_latency_delays_what_the_next_inference_sees(expert_bag, config, tmp_path):
    def run(name, **overrides):
        oracle = RecordedActionsPolicy.from_bag(expert_bag.path, config=config)
        cfg = dataclasses.replace(config, plots=False, **overrides)
        return evaluate_bag(expert_bag.path, None, tmp_path / name, cfg, policy=oracle).data

    slow = run("slow", fixed_latency_s=0.3)
    instant = run("instant", simulate_latency=False)
    assert slow["staleness_s"]["count"] >= 3 and slow["staleness_s"]["p50"] >= 0.3  # chunk available 0.3 s later
    assert instant["staleness_s"]["max"] < 0.1  # the newest pair: at most a camera period old
    assert slow["action_error"]["mae"] > instant["action_error"]["mae"]


def test_max_seconds_and_joint_state_reference(expert_bag, config, tmp_path):
    oracle = RecordedActionsPolicy.from_bag(expert_bag.path, config=config)
    cfg = dataclasses.replace(config, max_seconds=2.0, command_topic="", plots=False)
    d = evaluate_bag(expert_bag.path, None, tmp_path / "short", cfg, policy=oracle).data
    assert d["span_s"]["duration"] <= 2.0 + 1e-6
    assert d["reference"] == "joint states /joint_states"
    assert not (tmp_path / "short" / "trajectories.png").exists()


def _digest(folder) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(p.name.encode() + (p.read_bytes() if p.is_file() else b""))
    return h.hexdigest()


def test_missing_camera_topic_is_a_clear_error(random_model, config, tmp_path):
    bag = record_sim_bag(tmp_path / "front_only", SimRecordingConfig(episodes=1, max_episode_s=0.5, cameras=("front",),
                                                                     image_size=16, progress=False)).path
    before = _digest(bag)
    with pytest.raises(BagError, match=r"lacks topic\(s\) \['/camera/wrist/image_raw'\]"):
        evaluate_bag(bag, random_model, tmp_path / "out", config, runtime=ORT_CPU)
    assert not (tmp_path / "out").exists() and _digest(bag) == before


def test_wrong_joint_names_are_a_clear_error(random_model, config, tmp_path):
    bag = tmp_path / "other_robot"
    write_demo_bag(bag, SyntheticDemo(duration_s=1.0))  # joints j1..j3, wrist camera compressed
    (tmp_path / "out").mkdir()
    before = _digest(bag)
    with pytest.raises(BagError, match=r"wrong joint names on /joint_states .*'joint_1'"):
        evaluate_bag(bag, random_model, tmp_path / "out", config, runtime=ORT_CPU)
    assert list((tmp_path / "out").iterdir()) == [] and _digest(bag) == before


def test_existing_report_is_never_overwritten(expert_bag, config, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "report.json").write_text("{}")
    oracle = RecordedActionsPolicy.from_bag(expert_bag.path, config=config)
    with pytest.raises(BagError, match="not empty"):
        evaluate_bag(expert_bag.path, None, tmp_path / "out", config, policy=oracle)
    assert (tmp_path / "out" / "report.json").read_text() == "{}"


def test_command_line(expert_bag, random_model, tmp_path, capsys):
    args = [str(expert_bag.path), "--model", str(random_model), "-o", str(tmp_path / "cli"),
            "--backend", "torch", "--max-seconds", "1.5", "--no-plots", "--no-progress"]
    assert main(args) == 0
    assert "action:     MAE" in capsys.readouterr().out
    assert json.loads((tmp_path / "cli" / "report.json").read_text())["span_s"]["duration"] <= 1.5 + 1e-6
    assert main([*args[:3], "--out", str(tmp_path / "cli2"), "--backend", "torch", "--camera", "front=/nope"]) == 2
    err = capsys.readouterr().err
    assert "moe_vla_eval_bag: error:" in err and "lacks topic(s) ['/nope']" in err
    checkpoint_only = Path(random_model).parent / "checkpoint_tiny_0_sim"  # no manifest: not for onnxruntime
    assert main([str(expert_bag.path), "--model", str(checkpoint_only), "--out", str(tmp_path / "cli3")]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_oracle_needs_a_contract(tmp_path):
    bag = tmp_path / "demo"
    write_demo_bag(bag, SyntheticDemo(duration_s=0.5))
    with pytest.raises(BagError, match="stores no sensor contract"):
        RecordedActionsPolicy.from_bag(bag)
    oracle = RecordedActionsPolicy.from_bag(bag, SyntheticDemo().contract(), chunk_length=4)
    assert oracle.contract.chunk_length == 4 and np.isfinite(oracle.reference.joint_positions).all()


def test_config_decides_like_the_node_from_its_parameter_files(tmp_path):
    """Namespaced node keys, relative topics, limits without position limits, the runner's
    recovery, end-velocity and input-check settings; the closed-loop checks are off offline."""
    from moe_vla_ros.contract import PolicyContract, SensorContract

    params = tmp_path / "params.yaml"
    params.write_text(
        "/**/policy_node:\n"
        "  ros__parameters:\n"
        "    topics: {joint_states: joint_states, camera_topics: [cam/front]}\n"
        "    robot: {camera_names: [front], position_lower: [], position_upper: [], max_velocity: [1.0, 2.0],\n"
        "            max_acceleration: []}\n"
        "    safety: {recovery_s: 0.25}\n"
        "    execution: {allow_nonzero_velocity_at_trajectory_end: true}\n"
        "    input_checks: {max_tracking_error_rad: 0.0, max_stamp_age_s: 0.3}\n"
    )
    cfg = EvaluationConfig.from_params_files([params], progress=False)
    assert cfg.joint_state_topic == "/joint_states" and cfg.camera_topics == {"front": "/cam/front"}
    assert cfg.node.robot.limit_values() == {"max_velocity": (1.0, 2.0)}
    assert cfg.node.input_checks.max_tracking_error_rad == 0.0 and cfg.node.input_checks.max_stamp_age_s == 0.3
    contract = PolicyContract(SensorContract(("front",), 8, 8, ("a", "b"), control_rate_hz=10.0), chunk_length=8)
    limits = cfg.safety(contract)
    assert not limits.has_position_limits and limits.max_velocity == (1.0, 2.0) and limits.max_acceleration is None
    runner = cfg.runner_config(contract)
    assert runner.recovery_s == 0.25 and runner.executor.allow_nonzero_end_velocity
    checks = runner.input_checks
    assert checks.max_stamp_age_s == 0.3 and checks.max_tracking_error_rad is None and checks.frozen_after_s is None
    lower_only = dataclasses.replace(cfg.node.robot, position_lower=[0.0, 0.0])
    with pytest.raises(BagError, match="need both lower and upper"):
        dataclasses.replace(cfg, node=dataclasses.replace(cfg.node, robot=lower_only)).safety(contract)


def test_a_renamed_topic_or_a_corrupt_chunk_stops_the_evaluation_with_exit_2(expert_bag, random_model, tmp_path, capsys):
    import shutil

    renamed, corrupt = tmp_path / "renamed", tmp_path / "corrupt"
    shutil.copytree(expert_bag.path, renamed)
    shutil.copytree(expert_bag.path, corrupt)
    meta = renamed / "metadata.yaml"
    meta.write_text(meta.read_text().replace("name: /joint_states", "name: /renamed_states"))
    mcap = next(corrupt.glob("*.mcap"))
    data = bytearray(mcap.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):  # inside a chunk of image data
        data[i] ^= 0xFF
    mcap.write_bytes(bytes(data))
    for bag, reason in ((renamed, "does not match its storage"), (corrupt, "fails its CRC check")):
        args = [str(bag), "--model", str(random_model), "--out", str(tmp_path / f"out_{bag.name}"),
                "--no-plots", "--no-progress"]
        assert main(args) == 2
        assert reason in capsys.readouterr().err


def test_command_line_several_bags(expert_bag, random_model, tmp_path, capsys):
    """Several bags: one report per bag in OUT/<bag name>/, equal to the bag evaluated alone; a
    folder that is not a bag is reported in the fleet summary (table + JSON) and the exit code is 1."""
    import shutil

    copy = tmp_path / "robot2" / "bag"
    shutil.copytree(expert_bag.path, copy)
    (tmp_path / "empty").mkdir()
    common = ["--model", str(random_model), "--max-seconds", "1.5", "--latency", "0.05", "--no-plots", "--no-progress"]
    fleet = [str(expert_bag.path), str(tmp_path / "empty"), str(copy)]
    assert main([*fleet, "-o", str(tmp_path / "fleet"), *common]) == 1
    run = capsys.readouterr()
    first = f"{expert_bag.path.parent.name}_bag"
    assert "2 of 3 bags ok, 1 failed" in run.out and "empty: BagError:" in run.out and "action MAE" in run.out
    assert "moe_vla_eval_bag: error: 1 of 3 bags failed" in run.err
    summary = json.loads((tmp_path / "fleet" / "fleet_summary.json").read_text())
    assert [(r["name"], r["status"]) for r in summary["per_bag"]] == [(first, "ok"), ("empty", "failed"), ("robot2_bag", "ok")]
    ok = [r for r in summary["per_bag"] if r["status"] == "ok"]
    assert ok[0]["action_mae"] == ok[1]["action_mae"] and ok[0]["commands"] >= 1  # the same recording twice
    assert summary["totals"]["action_mae"] == pytest.approx(ok[0]["action_mae"])
    assert main([str(expert_bag.path), "-o", str(tmp_path / "alone"), *common]) == 0  # one bag: OUT is the report
    alone = json.loads((tmp_path / "alone" / "report.json").read_text())
    assert alone["action_error"] == json.loads((tmp_path / "fleet" / first / "report.json").read_text())["action_error"]
