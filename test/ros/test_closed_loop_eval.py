"""Closed-loop evaluation end to end: the simulator in this process, the installed policy node as its
own process driven through its lifecycle, a random-weight tiny model with the simulator's contract."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from moe_vla_ros.evaluation.records import EvaluationError
from moe_vla_ros.evaluation.sim.metrics import sample_trajectory
from moe_vla_ros.ros.closed_loop_eval_config import EvalConfig, policy_node_command, policy_node_config, sim_parameters
from moe_vla_ros.ros.domain import EVALUATION_DOMAINS
from moe_vla_ros.runtime.manifest import read_manifest
from moe_vla_ros.sim.config import JOINT_NAMES

pytestmark = pytest.mark.ros

IMAGE_SIZE = 32  # the simulator renders at the model's contract size


def test_policy_node_command_and_simulator_parameters_follow_the_contract(sim_model_dir):
    cfg = EvalConfig(model=str(sim_model_dir), policy_overrides=("execution.blend_steps:=2",))
    contract = read_manifest(sim_model_dir).contract
    argv = policy_node_command(cfg, sim_model_dir, contract)
    assert argv[0].endswith("/policy_node") and argv[1] == "--ros-args"
    params = [argv[i + 1] for i, a in enumerate(argv) if a == "-p"]
    for expected in ("use_sim_time:=true", "autostart:=false", f"model.path:={sim_model_dir}",
                     "model.providers:=[CPUExecutionProvider]", "qos.instruction_durability:=transient_local"):
        assert expected in params
    assert params[-1] == "execution.blend_steps:=2"  # overrides come last and win
    assert [a for a in argv if a.endswith(".yaml")][-1].endswith("robots/sim_arm.yaml")
    node = policy_node_config(cfg, sim_model_dir, contract)
    assert node.execution.blend_steps == 2 and node.robot.max_velocity[0] == 2.0
    sim = sim_parameters(contract, node, 7)
    assert (sim["cameras.image_height"], sim["cameras.image_width"]) == (IMAGE_SIZE, IMAGE_SIZE)
    assert sim["topics.camera_topics"] == ["/camera/front/image_raw", "/camera/wrist/image_raw"]
    assert sim["publish_clock"] and sim["real_time_factor"] == 1.0 and sim["seed"] == 7


@pytest.mark.parametrize("kwargs, error", [
    ({"tasks": ("reach", "fly")}, "tasks"), ({"episodes": 0}, "episodes"), ({"max_duration_s": 0.1}, "max_duration_s"),
    ({"policy_overrides": ("no_value",)}, "name:=value"), ({"seed_start": -3}, "seed_start"),
    ({"domain_id": 233}, "domain_id"), ({"domain_id": 1.5}, "domain_id"),
])
def test_eval_config_names_the_bad_value(kwargs, error):
    with pytest.raises(EvaluationError, match=error):
        EvalConfig(**kwargs)


def test_missing_or_unreadable_model_is_a_clear_error(tmp_path):
    from moe_vla_ros.ros import closed_loop_eval, demo

    with pytest.raises(EvaluationError, match="does not exist"):
        closed_loop_eval.run_evaluation(EvalConfig(model=str(tmp_path / "nope"), out_dir=str(tmp_path / "o")))
    with pytest.raises(EvaluationError, match="cannot read the model"):
        closed_loop_eval.run_evaluation(EvalConfig(model=str(tmp_path), out_dir=str(tmp_path / "o")))
    assert demo.main(["--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 1
    assert closed_loop_eval.main(["--episodes", "0"]) == 2


def _tracking_errors(record) -> list[float]:
    """|measured - commanded| at every point of every trajectory that the arm had time to reach."""
    t = np.asarray(record.joint_times)
    q = np.asarray(record.joint_positions)  # [T, J]
    errors = []
    for traj in record.trajectories[:-1]:
        for when in traj.point_times()[2:4]:  # a few control periods after the chunk started
            if t[0] <= when <= t[-1] and when <= record.start_s + record.duration_s:
                commanded, _ = sample_trajectory(traj, when)
                measured = np.array([np.interp(when, t, q[:, j]) for j in range(q.shape[1])])
                errors.append(float(np.abs(measured - commanded).max()))
    return errors


def test_closed_loop_episodes_through_the_policy_node_process(sim_model_dir, tmp_path):
    from moe_vla_ros.ros.closed_loop_eval import run_evaluation

    out = tmp_path / "eval"
    max_duration_s = 4.0
    test_domain = os.environ.get("ROS_DOMAIN_ID")
    result = run_evaluation(EvalConfig(model=str(sim_model_dir), episodes=2, tasks=("reach", "push"),
                                       max_duration_s=max_duration_s, out_dir=str(out), progress=False))
    records = result.records
    assert [(r.family, r.seed) for r in records] == [("reach", 10_000), ("push", 10_001)]
    for r in records:
        print(f"episode {r.index}: success {r.success}, {r.duration_s:.2f} s sim, {r.wall_time_s:.2f} s wall, "
              f"{len(r.trajectories)} chunks, {len(r.joint_times)} joint states")
        assert 0.0 < r.duration_s <= max_duration_s + 1e-9 and r.control_steps == round(r.duration_s * 10)
        assert r.joint_names == list(JOINT_NAMES) and r.model_id
        assert len(r.trajectories) >= 2, "the policy node published no chunks"
        assert all(len(p) == 7 for tr in r.trajectories for p in tr.positions)
        assert r.usage and r.traces and r.latency and r.holds >= 1  # deactivation ends with a hold
        assert r.shortfall_m is not None and (r.shortfall_m == 0.0) == r.success  # measured at the end
        assert {u.chunk_id for u in r.usage} >= {tr.chunk_id for tr in r.traces}
        q = np.asarray(r.joint_positions)
        assert np.abs(q - q[0]).max() > 0.02, "the arm did not move"
        errors = _tracking_errors(r)
        assert errors and np.median(errors) < 0.05, f"the arm did not follow the commands: {errors}"
    assert all(r.wall_time_s < 20.0 for r in records)

    report = json.loads((out / "report.json").read_text())
    assert report["success"]["policy"]["overall"]["episodes"] == 2
    assert set(report["success"]["expert"]) == {"reach", "push", "overall"}
    assert report["latency"]["inference"]["count"] >= 1 and report["latency"]["inference"]["p50_ms"] > 0
    assert report["chunk_seams"]["count"] >= 2 and "within_bounds" in report["chunk_seams"]["limits"]
    loads = report["expert_usage"]["per_task"]
    assert set(loads) == {"reach", "push"} and "reach vs push" in report["expert_usage"]["divergence"]
    assert all(abs(sum(v) - 1.0) < 1e-3 for layers in loads.values() for v in layers.values())
    assert report["run"]["achieved_real_time_factor"] > 0.5
    # the graph ran on a domain of its own, and this process's domain is back
    assert report["run"]["ros_domain_id"] in EVALUATION_DOMAINS and os.environ.get("ROS_DOMAIN_ID") == test_domain
    for name in ("success_per_task.png", "expert_usage.png", "joint_trajectory.png", "episode_front.gif",
                 "episodes/episode_000.json", "episodes/episode_001.json"):
        assert (out / name).is_file(), name
    log = (out / "policy_node.log").read_text()
    assert log.count("activated: commanding") == 2 and "configured: model" in log
