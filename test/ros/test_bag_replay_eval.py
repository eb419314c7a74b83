"""Replaying a recorded bag through the real policy node process and scoring it (ros/bag_replay_eval.py)."""


import pytest

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.from_sim import SimRecordingConfig, record_sim_bag
from moe_vla_ros.bags.reader import BagReader
from moe_vla_ros.bags.synthetic import SyntheticDemo, write_demo_bag
from moe_vla_ros.control.chunking import is_hold_profile
from moe_vla_ros.evaluation.bag.replay import ReplayConfig, node_arguments, output_topics
from moe_vla_ros.param_files import load_params_file
from moe_vla_ros.paths import find_share_file
from moe_vla_ros.ros.bag_replay_eval import main, replay_evaluate
from moe_vla_ros.sim.config import JOINT_NAMES
from moe_vla_ros.spec.policy_node import default_params_files, read_node_params


@pytest.fixture(scope="module")
def sim_model(sim_model_dir):
    """A seeded random-weight tiny MoE-VLA for the simulated arm, exported to ONNX (session fixture)."""
    return sim_model_dir


@pytest.fixture(scope="module")
def expert_bag(tmp_path_factory):
    # Episodes run the full 2.5 s (the task must stay solved longer than that), so each one spans
    # more than one 1.6 s action chunk of the model.
    cfg = SimRecordingConfig(episodes=2, max_episode_s=2.5, success_hold_steps=30, image_size=32,
                             camera_rate_hz=15.0, progress=False)
    return record_sim_bag(tmp_path_factory.mktemp("replay") / "bag", cfg)


def test_replay_through_the_node_records_and_scores_its_outputs(sim_model, expert_bag, tmp_path):
    report = replay_evaluate(expert_bag.path, sim_model, tmp_path / "eval", ReplayConfig(rate=0.5))  # half speed: headroom on a loaded machine
    out = tmp_path / "eval"
    files = {"report.json", "node.log", "node_output", "trajectories.png", "error_over_time.png"}
    assert files <= {p.name for p in out.iterdir()}
    with BagReader(out / "node_output") as bag:
        assert "/joint_trajectory_controller/joint_trajectory" not in bag.topics  # the recorded commands are not played
        commands = [o for _, o in bag.decoded(["/bag_eval/joint_trajectory"])
                    if not is_hold_profile(o.points, len(o.joint_names))]
        traces = [o for _, o in bag.decoded(["/bag_eval/reasoning_trace"])]
        usage = [o for _, o in bag.decoded(["/bag_eval/expert_usage"])]
    assert len(commands) >= 2 and all(list(c.joint_names) == list(JOINT_NAMES) for c in commands)
    assert len(traces) >= 2 and all(t.instruction in [e.task.instruction for e in expert_bag.episodes] for t in traces)
    assert len(usage) == len(commands)
    d = report.data
    assert d["mode"] == "replay" and d["counts"]["commands"] == len(commands)
    assert d["action_error"]["samples"] > 10 and report.action_mae > 0.05  # random weights
    assert d["staleness_s"]["count"] == len(commands) and 0.0 < d["staleness_s"]["p50"] < 0.5
    assert d["reasoning"]["traces"] == len(traces)
    assert set(d["expert_usage"]) == {"trunk.blocks.1.ffn", "action_head.blocks.0.ffn"}
    assert d["node_outputs"]["trajectory"] == "/bag_eval/joint_trajectory"


def test_node_arguments_follow_the_node_parameter_files(sim_model, expert_bag):
    from moe_vla_ros.evaluation.bag.offline import BagInputs

    inputs = BagInputs({"front": "/f/compressed", "wrist": "/w/compressed"}, "/js", "/ins")
    outputs = {"trajectory": "/e/t", "reasoning_trace": "/e/r", "expert_usage": "/e/u", "status": "/e/s"}
    args = node_arguments(sim_model, inputs, outputs, ReplayConfig(node_params={"model.warmup_runs": "0"}), True, False)
    files = [args[i + 1] for i, a in enumerate(args) if a == "--params-file"]
    # the node's files, then the replay file that turns the closed-loop input checks off
    assert files == [str(p) for p in default_params_files()] + [str(find_share_file("config", "bag_replay.yaml"))]
    replay = load_params_file(files[-1], "policy_node")
    assert replay == {"input_checks.max_tracking_error_rad": 0.0, "input_checks.frozen_after_s": 0.0}
    params = dict(args[i + 1].split(":=", 1) for i, a in enumerate(args) if a == "-p")
    assert params["topics.camera_topics"] == "[/f,/w]" and params["topics.camera_transport"] == "compressed"
    assert params["use_sim_time"] == "true" and params["model.providers"] == "[CPUExecutionProvider]"
    assert params["topics.trajectory"] == "/e/t" and params["model.warmup_runs"] == "0"
    assert params["qos.instruction_durability"] == "volatile"  # a volatile recorded publisher
    configured = output_topics(ReplayConfig(output_namespace=""))
    assert configured["trajectory"] == read_node_params(default_params_files())["topics.trajectory"]
    assert output_topics(ReplayConfig())["status"] == "/bag_eval/policy_status"


def test_bad_bag_is_refused_before_the_node_starts(sim_model, tmp_path, capsys):
    bag = tmp_path / "other_robot"
    write_demo_bag(bag, SyntheticDemo(duration_s=0.5))
    with pytest.raises(BagError, match="wrong joint names on /joint_states"):
        replay_evaluate(bag, sim_model, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert main([str(bag), "--model", str(sim_model), "-o", str(tmp_path / "out"), "--rate", "0"]) == 2
    assert "moe_vla_bag_replay_eval: error: rate must be in (0, 100]" in capsys.readouterr().err
