"""Scripted expert: solves every task family on a handful of seeds, with matching traces."""

from __future__ import annotations

import numpy as np
import pytest

from moe_vla_ros.sim.expert import FINAL_PHASES, ExpertConfig, ScriptedExpert
from moe_vla_ros.sim.reasoning_templates import reasoning_vocabulary, trace_words
from moe_vla_ros.sim.rollout import expert_controller, run_episode
from moe_vla_ros.sim.tasks import TASK_FAMILIES, sample_task

SEEDS = range(100, 106)


@pytest.mark.parametrize("family", TASK_FAMILIES)
def test_expert_solves_the_task_family(sim, family):
    expert = ScriptedExpert(sim)
    vocab = set(reasoning_vocabulary())
    successes = 0
    for seed in SEEDS:
        sim.reset(seed)
        task = sample_task(family, np.random.default_rng(seed))
        expert.reset(task)
        result = run_episode(sim, task, expert_controller(expert), record_images=False)
        successes += result.success
        if result.success:
            assert expert.phase in FINAL_PHASES
            assert result.sim_duration_s < task.max_duration_s
        traces = result.episode.reasoning
        assert all(set(trace_words(t)) <= vocab for t in traces)
        assert len(set(traces)) >= 3  # the trace changes with the sub-goals
        assert all(task.color in t for t in traces)
    assert successes >= len(SEEDS) - 1, f"{family}: {successes}/{len(SEEDS)}"


def test_expert_targets_move_smoothly(sim):
    sim.reset(7)
    task = sample_task("push", np.random.default_rng(7))
    expert = ScriptedExpert(sim)
    expert.reset(task)
    result = run_episode(sim, task, expert_controller(expert), record_images=False)
    steps = np.abs(np.diff(result.episode.action[:, :6], axis=0))
    assert steps.max() < 0.35, f"largest joint target jump per step: {steps.max():.3f} rad"


def test_act_before_reset_and_bad_config_are_errors(sim):
    with pytest.raises(RuntimeError, match="reset"):
        ScriptedExpert(sim).act()
    with pytest.raises(ValueError, match="free_speed_mps"):
        ExpertConfig(free_speed_mps=0.0)
    with pytest.raises(ValueError, match="push_opening_m"):
        ExpertConfig(push_opening_m=0.1)
    with pytest.raises(ValueError, match="retreat_opening_m .* must differ"):
        ExpertConfig(push_opening_m=0.035, retreat_opening_m=0.03)


def test_the_gripper_tells_the_pose_after_a_push_from_the_one_before(sim):
    # Hovering behind the pushed cube looks like hovering behind the unpushed one; only the
    # gripper joint (part of the policy's state) tells them apart.
    sim.reset(11)
    task = sample_task("push", np.random.default_rng(11))
    config = ExpertConfig()
    expert = ScriptedExpert(sim, config)
    expert.reset(task)
    result = run_episode(sim, task, expert_controller(expert), record_images=False)
    assert result.success
    gripper_command = result.episode.action[:, 6]  # [T]
    gripper_joint = result.episode.joint_position[:, 6]  # [T]
    assert np.all(gripper_command[:5] == config.push_opening_m)  # approaching
    assert gripper_command[-1] == config.retreat_opening_m  # done
    assert abs(gripper_joint[-1] - config.retreat_opening_m) < 0.005
    pushing = np.flatnonzero(np.char.find(np.asarray(result.episode.reasoning, dtype=str), "pushing") >= 0)
    assert pushing.size and np.all(gripper_command[pushing] == config.push_opening_m)


@pytest.mark.parametrize("seed", [1, 4, 9])
def test_the_expert_pushes_the_cube_onto_the_goal_line(sim, seed):
    sim.reset(seed)
    task = sample_task("push", np.random.default_rng(seed))
    expert = ScriptedExpert(sim)
    expert.reset(task)
    result = run_episode(sim, task, expert_controller(expert), record_images=False)
    assert result.success
    cube_y = sim.cube_pose(task.color)[0][1]
    assert abs(cube_y - sim.push_goal()[1]) < 0.02, "the cube's centre ends on the line"
