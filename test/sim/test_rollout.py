"""Closed-loop episode runner: recording, controller outputs, ending rules."""

from __future__ import annotations

import numpy as np
import pytest

from moe_vla_ros.sim.config import JOINT_NAMES
from moe_vla_ros.sim.rollout import ControlStep, run_episode
from moe_vla_ros.sim.tasks import Task
from moe_vla_ros.sim.trajectory_follower import JointTrajectory


def test_records_observations_actions_and_stops_at_the_time_limit(sim):
    task = Task("reach", "red", max_duration_s=1.0)
    held = sim.joint_targets()
    seen = []

    def stay(obs):
        seen.append(obs)
        return ControlStep(held, "waiting.")

    result = run_episode(sim, task, stay)
    ep = result.episode
    assert not result.success and result.steps == 10 and len(ep) == 10
    np.testing.assert_allclose(ep.timestamp, np.arange(10) * 0.1, atol=1e-9)
    assert ep.images["front"].shape == (10, 48, 64, 3) and ep.images["front"].dtype == np.uint8
    np.testing.assert_allclose(ep.action, np.repeat(held[None], 10, 0).astype(np.float32))
    assert ep.reasoning == ["waiting."] * 10 and ep.instruction == task.instruction and ep.task == "reach"
    assert seen[3].instruction == task.instruction and seen[3].joint_position.shape == (7,)
    ep.validate(sim.sensor_contract())


def test_a_controller_trajectory_is_executed_instead_of_the_single_target(sim):
    task = Task("reach", "red", max_duration_s=1.0)
    start = sim.joint_targets()
    goal = start + np.array([0.3, 0, 0, 0, 0, 0, 0])
    chunk = JointTrajectory.from_arrays(JOINT_NAMES, np.stack([goal]), [0.5])

    def send_chunk_once(obs):
        return ControlStep(goal, trajectory=chunk if obs.time == 0.0 else None)

    def hold_start_after(obs):  # sends the single target `start` except at t=0
        return ControlStep(start if obs.time > 0 else goal, trajectory=chunk if obs.time == 0.0 else None)

    run_episode(sim, task, send_chunk_once, record_images=False)
    assert sim.joint_positions()[0] == pytest.approx(goal[0], abs=5e-3)
    sim.reset(0)
    run_episode(sim, task, hold_start_after, record_images=False)
    assert sim.joint_positions()[0] == pytest.approx(start[0], abs=5e-3)


def test_invalid_controller_output_is_an_error(sim):
    with pytest.raises(ValueError, match="expected 7 finite values"):
        run_episode(sim, Task("reach", "red"), lambda obs: ControlStep(np.zeros(3)), record_images=False)


def test_episode_ends_only_when_a_controller_that_reports_done_is_done(sim):
    task = Task("reach", "red", max_duration_s=1.0)
    target = sim.joint_targets()
    # Float the red cube under the gripper: the task succeeds from the first step on.
    sim.model.opt.gravity[:] = 0.0
    adr = int(sim.model.joint("cube_red").qposadr[0])
    sim.data.qpos[adr : adr + 3] = sim.gripper_position() - (0, 0, 0.035)
    sim.step(1)
    busy = run_episode(sim, task, lambda obs: ControlStep(target, done=False), record_images=False)
    assert busy.steps == 10 and busy.success
    quiet = run_episode(sim, task, lambda obs: ControlStep(target), success_hold_steps=2, record_images=False)
    assert quiet.steps == 2 and quiet.success
