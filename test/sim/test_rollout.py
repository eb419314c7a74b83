"""Closed-loop episode runner: recording, controller outputs, ending rules."""

from __future__ import annotations

import numpy as np
import pytest

from moe_vla_ros.sim.config import JOINT_NAMES
from moe_vla_ros.sim.rollout import ControlStep, ExecutionNoise, noisy_execution, run_episode
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


def test_noisy_execution_perturbs_the_arm_but_records_the_controller_targets(sim):
    task = Task("reach", "red", max_duration_s=2.0)
    held = sim.joint_targets()
    clean = run_episode(sim, task, lambda obs: ControlStep(held), record_images=False).episode
    sim.reset(0)
    noise = ExecutionNoise(std_rad=0.05, correlation=0.8)
    noisy = run_episode(sim, task, noisy_execution(lambda obs: ControlStep(held), noise, np.random.default_rng(0), 0.1),
                        record_images=False).episode
    np.testing.assert_array_equal(noisy.action, clean.action)  # labels are the controller's
    offset = noisy.joint_position[5:, :6] - clean.joint_position[5:, :6]  # [T-5, 6] arm joints
    assert 0.01 < np.abs(offset).mean() < 0.1  # perturbed by about the noise level
    np.testing.assert_allclose(noisy.joint_position[:, 6], clean.joint_position[:, 6], atol=1e-4)  # gripper not commanded
    # smooth, not white: consecutive offsets are strongly correlated
    assert np.corrcoef(offset[:-1].ravel(), offset[1:].ravel())[0, 1] > 0.5


def test_noisy_execution_stops_once_the_controller_is_done_and_passes_trajectories(sim):
    target = sim.joint_targets()
    chunk = JointTrajectory.from_arrays(JOINT_NAMES, np.stack([target]), [0.5])
    noise = ExecutionNoise(std_rad=0.1)
    rng = np.random.default_rng(0)
    for step in (ControlStep(target, done=True), ControlStep(target, trajectory=chunk)):
        out = noisy_execution(lambda obs, s=step: s, noise, rng, 0.1)(None)
        assert out is step
    perturbed = noisy_execution(lambda obs: ControlStep(target, "go.", done=False), noise, rng, 0.1)(None)
    np.testing.assert_array_equal(perturbed.joint_targets, target)
    assert perturbed.reasoning == "go." and perturbed.done is False
    executed = np.array(perturbed.trajectory.points[0].positions)
    assert perturbed.trajectory.points[0].time_from_start == 0.1
    assert np.any(executed[:6] != target[:6]) and executed[6] == target[6]


def test_noise_limited_to_phases_decays_outside_them():
    target = np.zeros(len(JOINT_NAMES))
    current = {"phase": "approach_side"}
    noise = ExecutionNoise(std_rad=0.1, correlation=0.8, phases=("approach_side",))
    control = noisy_execution(lambda obs: ControlStep(target), noise, np.random.default_rng(0), 0.1,
                              phase=lambda: current["phase"])
    every_phase = noisy_execution(lambda obs: ControlStep(target), ExecutionNoise(std_rad=0.1, correlation=0.8),
                                  np.random.default_rng(0), 0.1)

    def offset(step: ControlStep) -> np.ndarray:
        return np.array(step.trajectory.points[0].positions[:6])  # [6] arm joints, target 0

    noisy = [offset(control(None)) for _ in range(10)]
    unlimited = [offset(every_phase(None)) for _ in range(10)]
    np.testing.assert_allclose(noisy, unlimited)  # in a listed phase: the unlimited noise, same stream
    assert np.abs(noisy[-1]).max() > 0.01
    current["phase"] = "push"  # not listed: no new noise, the offset decays back to the path
    decaying = [offset(control(None)) for _ in range(30)]
    np.testing.assert_allclose(decaying[0], 0.8 * noisy[-1])
    np.testing.assert_allclose(decaying[1], 0.8**2 * noisy[-1])
    assert np.abs(decaying[-1]).max() < 0.01 * np.abs(noisy[-1]).max()  # 0.8**30 = 0.0012
    with pytest.raises(ValueError, match="phase"):
        noisy_execution(lambda obs: ControlStep(target), noise, np.random.default_rng(0), 0.1)  # phases, no phase()


@pytest.mark.parametrize("kwargs, message", [(dict(std_rad=-0.1), "std_rad"), (dict(std_rad=float("nan")), "std_rad"),
                                             (dict(correlation=1.0), "correlation"), (dict(phases=("wave",)), "phases"),
                                             (dict(phases="push"), "phases")])
def test_invalid_execution_noise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ExecutionNoise(**kwargs)
