"""What joint_trajectory_controller executes from the executor's trajectories - the cubic spline
through the published positions and velocities, sampled at 1 kHz with the simulator's JTC follower
(spline_check.SplineProbe) - keeps the velocity and acceleration limits: fresh starts, chunks
that accelerate and brake, cruising at the velocity limit, seams and holds. Limits and timing of
the simulated arm (config/robots/sim_arm.yaml, 10 Hz)."""

import sys
from pathlib import Path

import numpy as np
import pytest

from moe_vla_ros.control.chunking import ActionChunkExecutor, ChunkExecutorConfig
from moe_vla_ros.control.safety import SafetyFilter, SafetyLimits

sys.path.insert(0, str(Path(__file__).parent))
from spline_check import SplineProbe, run_random

DT, H = 0.1, 16
LOWER = np.array([-2.9, -2.0, -2.6, -2.9, -2.2, -2.9, 0.0])
UPPER = np.array([2.9, 2.0, 2.6, 2.9, 2.2, 2.9, 0.04])
V_MAX = np.array([2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 0.2])
A_MAX = np.array([8.0, 8.0, 8.0, 12.0, 12.0, 12.0, 2.0])
TOL = 1e-6  # sampled ratio over 1.0


def executor(lead=0.0):
    config = ChunkExecutorConfig(num_joints=7, control_period_s=DT, chunk_length=H, execution_lead_s=lead)
    limits = SafetyLimits(tuple(f"j{i}" for i in range(7)), LOWER, UPPER, V_MAX, A_MAX)
    return ActionChunkExecutor(config, SafetyFilter(limits))


def assert_within_limits(probe, t0=None, t1=None):
    v_ratio, a_ratio = probe.peaks(V_MAX, A_MAX, t0, t1)
    assert v_ratio <= 1.0 + TOL and a_ratio <= 1.0 + TOL, (v_ratio, a_ratio)


@pytest.mark.parametrize("lead", [0.0, 0.03])
def test_fresh_start_from_rest_at_the_receipt_time_keeps_the_limits(lead):
    ex, rest = executor(lead), np.zeros(7)
    far = np.clip(np.array([2.0, -1.5, 1.0, 2.5, -2.0, 1.0, 0.04]), LOWER, UPPER)
    assert ex.accept(np.tile(far, (H, 1)), 1.0, 1.0, current_position=rest).accepted
    probe = SplineProbe(7, rest)
    probe.send(ex.trajectory(1.0), receipt=1.0 + lead)  # the first segment starts at rest at the receipt
    assert_within_limits(probe)


def test_accelerate_then_brake_chunk_keeps_the_limits():
    """A chunk that goes out and comes back: full acceleration, then full braking at once."""
    ex, start = executor(), np.zeros(7)
    t = DT * np.arange(1, H + 1)[:, None]
    chunk = np.clip(1.2 * np.sin(np.pi * t / (H * DT)) * np.sign(UPPER), LOWER, UPPER)  # [H, 7]
    chunk[: H // 2] = np.clip(1.5 * np.sign(UPPER), LOWER, UPPER)  # jump out, then back to 0
    chunk[H // 2:] = 0.0
    assert ex.accept(chunk, 1.0, 1.0, current_position=start).accepted
    probe = SplineProbe(7, start)
    probe.send(ex.trajectory(1.0), receipt=1.0)
    assert_within_limits(probe)


def test_cruising_at_the_velocity_limit_does_not_overshoot_it():
    """Targets moving faster than the limit: the plan cruises just below it (no 7 % overshoot)."""
    ex, start = executor(), np.array([-2.5, -1.8, -2.4, -2.5, -2.0, -2.5, 0.0])
    ramp = start + 1.5 * V_MAX * DT * np.arange(1, H + 1)[:, None]  # [H, 7]
    assert ex.accept(np.clip(ramp, LOWER, UPPER), 1.0, 1.0, current_position=start).accepted
    probe = SplineProbe(7, start)
    probe.send(ex.trajectory(1.0), receipt=1.0)
    v_ratio, a_ratio = probe.peaks(V_MAX, A_MAX)
    assert 0.9 < v_ratio <= 1.0 + TOL and a_ratio <= 1.0 + TOL


@pytest.mark.parametrize("lead", [0.0, 0.05])
def test_seam_between_chunks_keeps_the_limits(lead):
    """A second chunk reverses the motion while the first runs at speed; the controller switches
    at the receipt from its running cubic."""
    ex, start = executor(lead), np.zeros(7)
    out = np.clip(2.0 * np.sign(UPPER), LOWER, UPPER)
    assert ex.accept(np.tile(out, (H, 1)), 1.0, 1.0, current_position=start).accepted
    probe = SplineProbe(7, start)
    probe.send(ex.trajectory(1.0), receipt=1.0 + lead)
    now = 1.63
    measured, _ = probe.follower.sample(now - 0.1)
    assert ex.accept(np.tile(-out, (H, 1)), now - 0.1, now, current_position=measured).accepted
    probe.send(ex.trajectory(now), receipt=now + lead)
    assert_within_limits(probe)


@pytest.mark.parametrize("when", [1.35, 1.62, 1.9])
def test_hold_keeps_the_limits(when):
    """Holds while accelerating, at speed and while braking."""
    ex, start = executor(), np.zeros(7)
    out = np.clip(2.0 * np.sign(UPPER), LOWER, UPPER)
    assert ex.accept(np.tile(out, (H, 1)), 1.0, 1.0, current_position=start).accepted
    probe = SplineProbe(7, start)
    probe.send(ex.trajectory(1.0), receipt=1.0)
    hold = ex.brake(when)
    assert hold.is_hold and np.all(hold.velocities[-1] == 0.0)
    probe.send(hold, receipt=when)
    assert_within_limits(probe)


@pytest.mark.parametrize("seed", range(4))
def test_random_chunks_seams_and_holds_keep_the_limits(seed):
    rng = np.random.default_rng(seed)
    initial = rng.uniform(0.5 * LOWER, 0.5 * UPPER)
    probe = run_random(executor(0.03), rng, initial, LOWER, UPPER, steps=8, lead=0.03)
    assert_within_limits(probe)
