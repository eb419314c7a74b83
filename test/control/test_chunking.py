"""Tests of moe_vla_ros/control/chunking.py: asynchronous chunk execution and seam blending."""

from dataclasses import replace

import numpy as np
import pytest

from moe_vla_ros.control.blending import blend_weights
from moe_vla_ros.control.chunking import ActionChunkExecutor, ChunkExecutorConfig, is_hold_profile
from moe_vla_ros.control.latency import LatencyEstimator, LatencyEstimatorConfig
from moe_vla_ros.control.safety import FIRST_STEP_SHARE, SafetyFilter, SafetyLimits

DT, H = 0.1, 16
V_MAX, A_MAX = 1.0, 4.0


def executor(num_joints=1, safety=False, **overrides):
    config = ChunkExecutorConfig(num_joints=num_joints, control_period_s=DT, chunk_length=H, **overrides)
    limits = SafetyLimits(tuple(f"j{i}" for i in range(num_joints)), -3.0, 3.0, V_MAX, A_MAX)
    return ActionChunkExecutor(config, SafetyFilter(limits) if safety else None)


def ramp(obs_time, speed=1.0, offset=0.0):
    """A chunk [H, 1] on the line q(t) = offset + speed * t, predicted at obs_time."""
    return (offset + speed * (obs_time + DT * np.arange(1, H + 1)))[:, None]


def accept(ex, chunk, obs_time, now, position=0.0, velocity=None):
    j = chunk.shape[1]
    v = None if velocity is None else np.full(j, velocity)
    return ex.accept(chunk, obs_time, now, current_position=np.full(j, position), current_velocity=v)


# -- accepting and timing --------------------------------------------------------------------


def test_first_chunk_starts_a_period_after_arrival_from_the_extrapolated_measurement():
    ex = executor()
    # measured at 0.95 on the ramp, moving at 1 rad/s; arrives at 1.0: the grid starts there, at
    # the measurement moved on to 1.0, and the chunk is sampled at 1.1, 1.2, ... (the step due at
    # 1.05 lies less than a period after the arrival)
    result = accept(ex, ramp(0.95), obs_time=0.95, now=1.0, position=0.95, velocity=1.0)
    assert result.accepted and result.skipped_steps == 1 and result.chunk_id == 0
    traj = ex.trajectory(1.0)
    assert traj.start_time == pytest.approx(1.0) and traj.chunk_id == 0
    np.testing.assert_allclose(traj.times[:15], 1.0 + DT * np.arange(1, 16))  # up to the last step, 2.55
    np.testing.assert_allclose(traj.positions[:15, 0], traj.times[:15])  # still on the ramp
    np.testing.assert_allclose(traj.velocities[:14], 1.0)  # consistent with the ramp, incl. the first point
    # without an acceleration limit the stop after the last target takes one period
    assert len(traj.positions) == 16 and traj.velocities[-1, 0] == 0.0
    assert traj.positions[-1, 0] == pytest.approx(2.5 + 0.5 * 1.0 * DT)


@pytest.mark.parametrize(
    "latency, lead, skipped", [(0.05, 0.0, 1), (0.25, 0.0, 3), (0.25, 0.06, 4), (0.3, 0.0, 3)]
)
def test_steps_due_within_a_period_of_arrival_are_skipped(latency, lead, skipped):
    ex = executor(execution_lead_s=lead)
    result = accept(ex, ramp(2.0), obs_time=2.0, now=2.0 + latency, position=2.0, velocity=1.0)
    assert result.skipped_steps == skipped
    traj = ex.trajectory(2.0 + latency)
    arrival = 2.0 + latency + lead
    assert traj.start_time == pytest.approx(arrival) and traj.times[0] == pytest.approx(arrival + DT)
    n = int(np.floor((2.0 + H * DT - arrival) / DT + 1e-9))  # grid points within the chunk
    np.testing.assert_allclose(traj.positions[:n, 0], traj.times[:n])  # the ramp sampled on the grid


def test_skipped_steps_agree_with_the_latency_estimate():
    estimator = LatencyEstimator(LatencyEstimatorConfig(cold_start_samples=1))
    estimator.add(1.5)  # cold start, ignored
    for latency in (0.21, 0.22, 0.23):
        estimator.add(latency)
    ex = executor()
    result = accept(ex, ramp(5.0), obs_time=5.0, now=5.0 + estimator.expected(50.0))
    # the late steps, plus the one due less than a period after the arrival (a fresh plan)
    assert result.skipped_steps == estimator.steps_skipped(DT, percentile=50.0) + 1 == 3


def test_refill_is_requested_before_the_chunk_runs_out():
    ex = executor(refill_threshold_steps=4)
    assert ex.needs_refill(0.0)  # nothing planned
    accept(ex, ramp(0.0), obs_time=0.0, now=0.0)  # plan runs until 1.6 s
    assert not ex.needs_refill(1.1)
    assert ex.remaining_s(1.1) == pytest.approx(0.5)
    assert ex.needs_refill(1.2)  # 0.4 s = 4 steps left
    assert ex.needs_refill(1.0, expected_latency_s=0.25)  # 0.6 s left, 0.25 s of it lost to latency
    assert not ex.needs_refill(0.9, expected_latency_s=0.25)
    assert ex.needs_refill(1.6) and ex.remaining_s(1.6) == 0.0  # the chunk's targets are used up ...
    assert ex.trajectory(1.6).times[-1] == pytest.approx(1.7)  # ... its braking tail is not
    assert ex.trajectory(1.7) is None and ex.needs_refill(1.7)


def test_refill_threshold_in_seconds():
    ex = executor(refill_threshold_s=0.25)
    accept(ex, ramp(0.0), obs_time=0.0, now=0.0)
    assert not ex.needs_refill(1.3) and ex.needs_refill(1.35)


# -- rejection -------------------------------------------------------------------------------


def test_stale_chunk_is_rejected_and_the_plan_kept():
    ex = executor(max_observation_age_s=0.5)
    accept(ex, ramp(0.0), obs_time=0.0, now=0.1)
    before = ex.trajectory(0.2)
    result = accept(ex, ramp(0.3, offset=1.0), obs_time=0.3, now=0.81)
    assert not result.accepted and result.reason.startswith("stale: observation is 0.510 s old")
    after = ex.trajectory(0.2)
    np.testing.assert_array_equal(after.positions, before.positions)
    assert ex.active_chunk_id == 0 and ex.rejected_count == 1


@pytest.mark.parametrize(
    "obs_time, now, message",
    [
        (1.2, 1.0, "in the future"),
        (0.5, 0.6, "not newer than the executing chunk"),
        (0.6, 2.4, "all 16 steps are in the past"),
    ],
)
def test_bad_timing_is_rejected(obs_time, now, message):
    ex = executor(max_observation_age_s=5.0)
    accept(ex, ramp(0.5), obs_time=0.5, now=0.55)
    result = accept(ex, ramp(obs_time), obs_time=obs_time, now=now)
    assert not result.accepted and message in result.reason


def test_non_finite_chunk_and_state_are_rejected():
    ex = executor(num_joints=2)
    chunk = np.zeros((H, 2))
    chunk[3, 1] = np.nan
    result = ex.accept(chunk, 0.0, 0.05, current_position=np.zeros(2))
    assert result.reason == "non-finite target at step 3, joint index 1"
    result = ex.accept(np.zeros((H, 2)), 0.0, 0.05, current_position=np.array([0.0, np.inf]))
    assert "non-finite current position" in result.reason
    assert ex.trajectory(0.05) is None


def test_wrong_shapes_raise():
    ex = executor(num_joints=2)
    with pytest.raises(ValueError, match=r"chunk must have shape \(16, 2\), got \(8, 2\)"):
        ex.accept(np.zeros((8, 2)), 0.0, 0.0, current_position=np.zeros(2))
    with pytest.raises(ValueError, match="current_position must have shape"):
        ex.accept(np.zeros((H, 2)), 0.0, 0.0, current_position=np.zeros(3))


def test_safety_rejection_is_reported():
    ex = executor(safety=True)
    result = accept(ex, ramp(0.0), obs_time=0.0, now=0.0, position=3.5)  # far outside [-3, 3]
    assert not result.accepted and result.reason.startswith("safety: joint 'j0' is at 3.5000 rad")
    assert result.safety is not None and not result.safety.accepted


# -- merging ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["smoothstep", "linear", "exponential"])
def test_overlap_is_blended_with_the_configured_weights(mode):
    ex = executor(blend=mode, blend_steps=4)
    accept(ex, np.zeros((H, 1)), obs_time=0.0, now=0.0)
    result = accept(ex, np.ones((H, 1)), obs_time=0.5, now=0.62)  # new steps at 0.6 ... 2.1
    # 0.6 is past; 0.7 is the point the controller is heading to and keeps its position
    assert result.accepted and result.skipped_steps == 2 and result.blended_steps == 4
    traj = ex.trajectory(0.62)
    assert traj.times[0] == pytest.approx(0.7) and traj.chunk_id == 1
    expected = np.ones(15)
    expected[0] = 0.0
    expected[1:5] = blend_weights(mode, 4)
    np.testing.assert_allclose(traj.positions[:, 0], expected)


def test_no_blend_replaces_at_once_and_short_overlap_blends_less():
    ex = executor(blend="none")
    accept(ex, np.zeros((H, 1)), obs_time=0.0, now=0.0)
    assert accept(ex, np.ones((H, 1)), obs_time=0.5, now=0.62).blended_steps == 0
    np.testing.assert_allclose(ex.trajectory(0.62).positions[:3, 0], [0.0, 1.0, 1.0])
    ex = executor(blend="linear", blend_steps=8)
    accept(ex, np.zeros((H, 1)), obs_time=0.0, now=0.0)  # plan ends at 1.6 s
    result = accept(ex, np.ones((H, 1)), obs_time=1.3, now=1.35)  # 1.4 kept, overlap 1.5 and 1.6
    assert result.blended_steps == 2
    np.testing.assert_allclose(ex.trajectory(1.35).positions[:5, 0], [0.0, 1 / 3, 2 / 3, 1.0, 1.0])


def test_the_point_being_approached_never_moves():
    ex = executor(blend="none")
    accept(ex, ramp(0.0), obs_time=0.0, now=0.0)
    heading_to = ex.trajectory(0.43).positions[0].copy()  # due at 0.5
    accept(ex, ramp(0.4, offset=0.3), obs_time=0.4, now=0.43)
    traj = ex.trajectory(0.43)
    assert traj.times[0] == pytest.approx(0.5)
    np.testing.assert_array_equal(traj.positions[0], heading_to)
    np.testing.assert_allclose(traj.positions[1:H, 0], ramp(0.4, offset=0.3)[1:, 0])


def test_unaligned_chunk_is_resampled_on_the_control_grid():
    ex = executor()
    accept(ex, ramp(0.0), obs_time=0.0, now=0.0)
    accept(ex, ramp(0.43), obs_time=0.43, now=0.5)  # the same line, predicted off-grid
    traj = ex.trajectory(0.5)
    np.testing.assert_allclose(np.diff(traj.times), DT)
    assert traj.times[0] == pytest.approx(0.6)
    np.testing.assert_allclose(traj.positions[:-1, 0], traj.times[:-1])  # still exactly on the line
    assert traj.times[-2] <= 0.43 + H * DT + 1e-9  # the last chunk target; then the stop


def test_gap_after_the_plan_holds_its_last_point():
    ex = executor()
    accept(ex, np.zeros((H, 1)), obs_time=0.0, now=0.0)  # ends at 1.6 s
    result = accept(ex, np.ones((H, 1)), obs_time=1.55, now=1.58)  # first new step at 1.65 -> grid 1.7
    assert result.accepted and result.blended_steps == 0
    traj = ex.trajectory(1.58)
    np.testing.assert_allclose(traj.times[:2], [1.6, 1.7])
    np.testing.assert_allclose(traj.positions[:3, 0], [0.0, 1.0, 1.0])


def test_finished_plan_restarts_from_the_measured_state():
    ex = executor()
    accept(ex, np.zeros((H, 1)), obs_time=0.0, now=0.0)
    accept(ex, np.ones((H, 1)), obs_time=3.0, now=3.05, position=0.4)
    traj = ex.trajectory(3.05)
    assert traj.start_time == pytest.approx(3.05)  # the grid starts at the arrival
    np.testing.assert_allclose(traj.velocities[0], (1.0 - 0.4) / (2 * DT) + 0.0)  # from 0.4 at 3.05


def test_tracking_error_realigns_the_plan_with_the_arm():
    ex = executor(max_tracking_error_rad=0.1)
    accept(ex, np.zeros((H, 1)), obs_time=0.0, now=0.0)
    kept = accept(ex, np.zeros((H, 1)), obs_time=0.4, now=0.45, position=0.05)
    assert kept.accepted and not kept.realigned
    result = accept(ex, np.ones((H, 1)), obs_time=0.8, now=0.85, position=0.5)  # the arm is stuck
    assert result.realigned and result.blended_steps == 0
    traj = ex.trajectory(0.85)
    assert traj.start_time == pytest.approx(0.85)  # a new grid from the arrival
    np.testing.assert_allclose(traj.positions[:, 0], 1.0)


def test_reset_clears_the_plan_but_not_the_ids():
    ex = executor()
    assert accept(ex, ramp(0.0), obs_time=0.0, now=0.0).chunk_id == 0
    assert accept(ex, ramp(0.0), obs_time=0.0, now=0.0).chunk_id == 1  # rejected, still numbered
    ex.reset()
    assert ex.trajectory(0.1) is None and ex.needs_refill(0.1) and ex.active_chunk_id is None
    result = accept(ex, ramp(0.0, offset=2.0), obs_time=0.05, now=0.1, position=-1.0)
    assert result.chunk_id == 2 and result.accepted and result.blended_steps == 0
    assert ex.state_at(0.1)[0][0] == pytest.approx(-1.0)  # starts from the measurement


def test_state_at_interpolates_the_commanded_path():
    ex = executor()
    accept(ex, ramp(0.0, speed=2.0), obs_time=0.0, now=0.0, position=0.0)
    position, velocity = ex.state_at(0.35)
    assert position[0] == pytest.approx(0.7) and velocity[0] == pytest.approx(2.0)
    position, velocity = ex.state_at(5.0)  # after the end: at rest where the stop ended
    assert position[0] == pytest.approx(3.2 + 0.5 * 2.0 * DT) and velocity[0] == 0.0
    assert ex.state_at(-1.0) is None


# -- seams of a running executor ---------------------------------------------------------------


def reference(t):
    """A smooth two-joint motion (rad): |velocity| <= 0.5, |acceleration| <= 0.5."""
    return np.stack([0.5 * np.sin(t), 0.3 * np.cos(0.7 * t)], axis=-1)


def run_async(ex, seed, offset, noise, latency=0.13, tick=0.02, duration=12.0):
    """Drive `ex` like a node: request on refill, answer after `latency` with a chunk of the
    reference plus a per-chunk offset and per-step noise. Returns the executed grid path
    (times [N], positions [N, J]: the last value planned for each point before it was due)
    and every trajectory published right after a chunk was accepted."""
    rng = np.random.default_rng(seed)
    executed, published, pending, now = {}, [], None, 0.0
    while now < duration:
        if pending is not None and now >= pending + latency:
            times = pending + DT * np.arange(1, H + 1)
            chunk = reference(times) + rng.uniform(-offset, offset, 2) + rng.normal(0.0, noise, (H, 2))
            assert ex.accept(chunk, pending, now, current_position=reference(pending)).accepted
            published.append(ex.trajectory(now))
            pending = None
        if pending is None and ex.needs_refill(now):
            pending = now
        traj = ex.trajectory(now)
        if traj is not None:  # later plans overwrite points not yet due
            executed.update({round(t, 6): p for t, p in zip(traj.times, traj.positions) if t <= duration})
        now = round(now + tick, 6)
    times = np.array(sorted(executed))
    assert np.allclose(np.diff(times), DT)  # one continuous grid, no gaps or double points
    return times, np.array([executed[t] for t in times]), published


@pytest.mark.parametrize("mode", ["smoothstep", "linear", "exponential", "none"])
@pytest.mark.parametrize("seed", range(3))
def test_seams_respect_the_limits_with_the_safety_filter(mode, seed):
    ex = executor(num_joints=2, safety=True, blend=mode)
    times, positions, published = run_async(ex, seed, offset=0.08, noise=0.01)
    dv_max = A_MAX * DT + 1e-9
    # the path the arm is asked to follow, across every seam
    interval = np.diff(positions, axis=0) / DT  # [N-1, J]
    assert np.abs(np.diff(positions, axis=0)).max() <= V_MAX * DT + 1e-9  # position jump per step
    assert np.abs(np.diff(interval, axis=0)).max() <= dv_max  # velocity jump per step
    assert ex.accepted_count >= 12 and ex.rejected_count == 0
    # still follows the policy; the spline-safe plan turns its acceleration around over ~3 steps,
    # so moving over to a chunk with another offset lags or overshoots more than the former
    # step-wise plan (measured 0.12-0.23 over these cases, was < 0.13)
    assert np.abs(positions - reference(times)).max() < 0.08 + 0.17
    # every published trajectory: velocities consistent with positions and smooth ...
    for traj in published:
        p, v = traj.positions, traj.velocities
        np.testing.assert_allclose(v[1:-1], (p[2:] - p[:-2]) / (2 * DT), atol=1e-12)  # central
        assert np.all(v[-1] == 0.0)  # every trajectory ends at rest
        assert np.abs(np.diff(traj.velocities, axis=0)).max() <= dv_max
    # ... and where a new one takes over, its first velocity continues the previous one
    for before, after in zip(published, published[1:]):
        index = np.flatnonzero(np.isclose(before.times, after.times[0]))
        if index.size:
            assert np.abs(after.velocities[0] - before.velocities[index[0]]).max() <= dv_max


@pytest.mark.parametrize("mode", ["smoothstep", "linear"])
def test_blending_alone_keeps_seams_smooth(mode):
    """Without a safety filter the seam jerk comes from the blend weights alone: the velocity
    step per control step is bounded by max|second difference of the weights| * offset jump."""
    offset = 0.05
    _, smooth, _ = run_async(executor(num_joints=2, blend=mode, blend_steps=4), 0, offset, noise=0.0)
    _, hard, _ = run_async(executor(num_joints=2, blend="none"), 0, offset, noise=0.0)
    weights = np.concatenate([[0.0, 0.0], blend_weights(mode, 4), [1.0, 1.0]])
    jump = 2 * offset  # largest offset difference between consecutive chunks
    reference_dv = 0.5 * DT  # the reference's own velocity change per step
    bound = np.abs(np.diff(weights, 2)).max() * jump / DT + reference_dv
    dv = lambda p: np.abs(np.diff(p, 2, axis=0)).max() / DT
    assert dv(smooth) <= bound
    assert dv(hard) > 2 * dv(smooth)  # blending is what keeps the seams smooth


# -- ends at rest, holds, fresh starts after latency (what joint_trajectory_controller accepts) --


def jtc_verdict(traj, now, joints=("j0",)):
    """joint_trajectory_controller's verdict on `traj` received at `now` (jtc_rules)."""
    from moe_vla_ros.control.jtc_rules import JtcParams, check_trajectory

    return check_trajectory(joints, traj.start_time, traj.times - traj.start_time, traj.positions,
                            traj.velocities, None, JtcParams(joints=joints), now)


def interval_velocities(start, positions):
    return np.diff(np.concatenate([start[None], positions]), axis=0) / DT  # [n, J]


def test_every_chunk_ends_at_rest_within_the_acceleration_limit():
    ex = executor(safety=True)
    accept(ex, ramp(0.0, speed=1.0), obs_time=0.0, now=0.0, velocity=1.0)  # at V_MAX up to the end
    traj = ex.trajectory(0.0)
    assert traj.velocities[-1, 0] == 0.0 and jtc_verdict(traj, 0.0).accepted
    # after the last target the plan brakes to rest, its speed falling at every point; the previous
    # point still moves: a real stop
    tail_v = traj.velocities[H - 1:, 0]
    assert len(tail_v) >= 3 and np.all(np.diff(tail_v) < 0.0) and tail_v[-2] > 0.0
    assert np.all(np.diff(traj.positions[:, 0]) >= 0.0)
    v = interval_velocities(np.array([0.0]), traj.positions)  # from row 0 (0.0 at 0.0 s, 1 rad/s)
    dv = np.abs(np.diff(np.concatenate([[[1.0]], v]), axis=0))
    assert dv.max() <= A_MAX * DT + 1e-9 and np.abs(v).max() <= V_MAX + 1e-9
    # what the controller executes (its cubic from (0, 1 rad/s)) keeps both limits
    acc = spline_accelerations(0.0, [0.0], [1.0], traj)
    assert np.abs(acc).max() <= A_MAX + 1e-9
    assert ex.remaining_s(1.0) == pytest.approx(0.6)  # refill timing uses the last target, not the stop


def test_nonzero_end_velocity_only_when_allowed():
    ex = executor(safety=True, allow_nonzero_end_velocity=True)
    accept(ex, ramp(0.0, speed=1.0), obs_time=0.0, now=0.0, velocity=1.0)
    traj = ex.trajectory(0.0)
    # ends moving at its last interval's velocity (the plan cruises a_max*dt/24 below V_MAX)
    last = (traj.positions[-1, 0] - traj.positions[-2, 0]) / DT
    assert len(traj.positions) == H and traj.velocities[-1, 0] == pytest.approx(last) and last > 0.9
    verdict = jtc_verdict(traj, 0.0)
    assert not verdict.accepted and verdict.rule == "nonzero_end_velocity"  # what JTC refuses by default


@pytest.mark.parametrize("latency", [0.13, 0.25])
def test_end_at_rest_leaves_the_executed_path_unchanged_while_chunks_keep_refilling(latency):
    """The braking tail lies after the last chunk target; a refill replaces the plan before it
    (blending only uses the old chunk's targets), so the executed path is the same to 1e-12."""
    paths = []
    for allow in (True, False):
        ex = executor(num_joints=2, safety=True, allow_nonzero_end_velocity=allow)
        _times, positions, published = run_async(ex, seed=1, offset=0.08, noise=0.01, latency=latency)
        paths.append(positions)
        if not allow:
            assert all(np.all(t.velocities[-1] == 0.0) for t in published)
    assert paths[0].shape == paths[1].shape and np.abs(paths[0] - paths[1]).max() <= 1e-12


def test_a_late_chunk_continues_from_the_stop_within_the_limits():
    ex = executor(safety=True)
    accept(ex, ramp(0.0, speed=0.5), obs_time=0.0, now=0.0, velocity=0.5)  # last target 0.8 rad at 1.6 s
    before = ex.trajectory(0.0)
    # after the last target (at 1.6 s) the plan stops within a few periods, slowing at every point
    assert len(before.positions) > H + 1 and np.all(np.diff(before.velocities[H - 1:, 0]) < 0.0)
    kept = before.positions[H + 1, 0]  # due at 1.8 s
    result = accept(ex, ramp(1.6, speed=0.5, offset=0.05), obs_time=1.6, now=1.75)  # arrives during the stop
    assert result.accepted
    traj = ex.trajectory(1.75)
    assert traj.times[0] == pytest.approx(1.8) and traj.positions[0, 0] == pytest.approx(kept)  # kept
    assert traj.velocities[0, 0] == before.velocities[H + 1, 0]  # with the velocity already sent
    path = np.concatenate([before.positions[:H + 1, 0], traj.positions[:, 0]])  # [.., @1.7, @1.8, ..]
    v = np.diff(np.concatenate([[0.0], path])) / DT
    assert np.abs(np.diff(v)).max() <= A_MAX * DT + 1e-9 and traj.velocities[-1, 0] == 0.0


def test_brake_stops_from_the_commanded_state_at_arrival_within_the_acceleration_limit():
    ex = executor(safety=True, execution_lead_s=0.02)
    accept(ex, ramp(0.0, speed=1.0), obs_time=0.0, now=0.0, velocity=1.0)
    q0, v0 = ex._spline_state(0.52)  # the controller's cubic at the arrival (close to 1 rad/s)
    hold = ex.brake(0.5)  # arrives at 0.52 s
    assert hold.is_hold and hold.chunk_id == -1 and hold.start_time == pytest.approx(0.52)
    # |v0| / 4 rad/s^2 <= 0.25 s -> 3 periods of uniform deceleration (a parabola the cubic reproduces)
    np.testing.assert_allclose(hold.times, [0.62, 0.72, 0.82])
    decel = v0[0] / 0.3
    t = np.array([0.1, 0.2, 0.3])
    np.testing.assert_allclose(hold.positions[:, 0], q0[0] + v0[0] * t - 0.5 * decel * t**2)
    np.testing.assert_allclose(hold.velocities[:, 0], v0[0] - decel * t, atol=1e-12)
    assert hold.velocities[-1, 0] == 0.0 and jtc_verdict(hold, 0.52).accepted
    acc = spline_accelerations(0.52, q0, v0, hold)
    assert np.abs(acc).max() <= A_MAX + 1e-9
    assert ex.holding and ex.active_chunk_id is None and ex.needs_refill(0.5)
    assert ex.state_at(2.0)[0][0] == pytest.approx(q0[0] + 0.15 * v0[0]) and ex.state_at(2.0)[1][0] == 0.0


def test_brake_without_a_plan_holds_the_given_position_or_nothing():
    ex = executor(num_joints=2, safety=True, execution_lead_s=0.02)
    assert ex.brake(1.0) is None  # nothing known to hold at
    hold = ex.brake(1.0, position=np.array([0.3, -0.2]))
    assert hold.start_time == pytest.approx(1.02) and hold.times[0] == pytest.approx(1.12)
    np.testing.assert_array_equal(hold.positions, [[0.3, -0.2]])
    np.testing.assert_array_equal(hold.velocities, [[0.0, 0.0]])
    assert jtc_verdict(hold, 1.02, joints=("j0", "j1")).accepted


def test_brake_without_an_acceleration_limit_stops_in_one_period():
    ex = executor()  # no safety filter
    accept(ex, ramp(0.0, speed=2.0), obs_time=0.0, now=0.0, velocity=2.0)
    hold = ex.brake(0.5)
    np.testing.assert_allclose(hold.positions[:, 0], [1.0 + 0.5 * 2.0 * DT])
    assert hold.velocities[-1, 0] == 0.0


@pytest.mark.parametrize("planned", [True, False], ids=["from_a_plan", "from_a_position"])
def test_a_hold_rests_until_hold_rest_s_so_a_late_delivery_is_still_accepted(planned):
    """joint_trajectory_controller refuses a stamped trajectory whose last point is in the past
    (jtc_rules rule 6) and goes on with the running one: a hold received 0.5 s late must still
    be accepted, and after its stop it stays where it stopped."""
    late = 0.5
    held = {}
    for rest_s in (0.0, 1.0):
        ex = executor(safety=True, execution_lead_s=0.02, hold_rest_s=rest_s)
        if planned:
            accept(ex, ramp(0.0, speed=1.0), obs_time=0.0, now=0.0, velocity=1.0)
        held[rest_s] = ex.brake(0.5, position=np.array([0.3]))
    short, hold = held[0.0], held[1.0]
    assert hold.times[-1] == pytest.approx(0.52 + 1.0)  # rests until arrival + hold_rest_s
    n = len(short.times)
    np.testing.assert_array_equal(hold.positions[:n], short.positions)  # the same stop first
    np.testing.assert_array_equal(hold.positions[n:], np.repeat(short.positions[-1:], len(hold.times) - n, axis=0))
    assert not hold.velocities[n - 1:].any() and is_hold_profile(_points(hold), 1)
    assert not jtc_verdict(short, 0.52 + late).accepted  # the late short hold: refused
    assert jtc_verdict(hold, 0.52 + late).accepted


def spline_accelerations(t0, q0, v0, traj):
    """Accelerations [2 * n, J] at both ends of every segment of the cubic (position + velocity)
    spline joint_trajectory_controller runs from its state (q0, v0) at t0 through `traj`
    (linear in each segment, so these are the extremes)."""
    times = np.concatenate([[t0], traj.times])  # [n + 1]
    q = np.concatenate([np.atleast_2d(q0), traj.positions])  # [n + 1, J]
    v = np.concatenate([np.atleast_2d(v0), traj.velocities])
    T = np.diff(times)[:, None]  # [n, 1]
    dq, va, vb = q[1:] - q[:-1], v[:-1], v[1:]
    start = 6 * dq / T**2 - (4 * va + 2 * vb) / T
    end = -6 * dq / T**2 + (2 * va + 4 * vb) / T
    return np.concatenate([start, end])


@pytest.mark.parametrize("latency", [0.08, 0.12, 0.25])
def test_fresh_plan_after_latency_respects_the_limits_from_the_arrival_state(latency):
    """The arm rests at 0 when observed; the chunk wants 1 rad/s from the observation time on.
    The trajectory reaches the controller at now + lead; from the arm's state there (rest at 0)
    the controller's spline keeps |v| <= V_MAX and |a| <= A_MAX up to the chunk's last target."""
    lead = 0.02
    ex = executor(safety=True, execution_lead_s=lead)
    now = 1.0 + latency
    assert accept(ex, ramp(1.0, offset=-1.0), obs_time=1.0, now=now, position=0.0, velocity=0.0).accepted
    traj = ex.trajectory(now)
    arrival = now + lead
    assert traj.start_time == pytest.approx(arrival) and traj.times[0] == pytest.approx(arrival + DT)
    # from rest the first interval velocity is FIRST_STEP_SHARE * A_MAX * DT (the previous first point
    # was 0.08-0.12 rad away and due 15-30 ms after the arrival)
    assert traj.positions[0, 0] == pytest.approx(FIRST_STEP_SHARE * A_MAX * DT**2)
    v = interval_velocities(np.array([0.0]), traj.positions)  # [n, 1]
    assert np.abs(v).max() <= V_MAX + 1e-9 and np.abs(traj.velocities).max() <= V_MAX + 1e-9
    accelerations = spline_accelerations(arrival, [0.0], [0.0], traj)
    head = spline_accelerations(arrival, [0.0], [0.0], replace(traj, positions=traj.positions[:2],
                                                                 velocities=traj.velocities[:2]))
    assert np.abs(head).max() <= A_MAX + 1e-9  # the start: exactly the limit (was 12-47 rad/s^2)
    # also where the plan stops accelerating (cruise below V_MAX) and stops (was 2 A_MAX)
    assert np.abs(accelerations).max() <= A_MAX + 1e-9
    assert jtc_verdict(traj, arrival).accepted


@pytest.mark.parametrize("late", [0.0, 0.03, 0.06, 0.08])
def test_a_fresh_plan_starts_after_start_lead_so_a_late_delivery_keeps_the_limits(late):
    """start_lead_s: a plan from rest begins 0.1 s after `now` (seams keep execution_lead_s), so a
    trajectory that reaches the controller up to 80 ms later than execution_lead_s plans for
    still starts with the controller's cubic from rest within the acceleration limit."""
    lead, start_lead = 0.02, 0.1
    ex = executor(safety=True, execution_lead_s=lead, start_lead_s=start_lead)
    now = 1.08
    assert accept(ex, ramp(1.0, offset=-1.0), obs_time=1.0, now=now, position=0.0, velocity=0.0).accepted
    traj = ex.trajectory(now)
    assert traj.start_time == pytest.approx(now + start_lead) and traj.times[0] == pytest.approx(now + start_lead + DT)
    receipt = now + lead + late  # the controller starts from rest where it gets the message
    assert np.abs(spline_accelerations(receipt, [0.0], [0.0], traj)).max() <= A_MAX + 1e-9
    assert jtc_verdict(traj, receipt).accepted
    # the next chunk merges at a seam: only execution_lead_s ahead of its `now`
    now2 = 1.5
    before = ex.trajectory(now2)
    assert accept(ex, ramp(1.45, offset=-1.0), obs_time=1.45, now=now2).accepted
    assert ex.trajectory(now2).times[0] == pytest.approx(before.times[0])  # the approached point stays
    assert before.times[0] < now2 + start_lead


@pytest.mark.parametrize("send_delay", [0.0, 0.02, 0.05, 0.15, 0.4])
def test_a_fresh_start_sent_late_moves_later_and_keeps_its_whole_start_lead(send_delay):
    """send_from: a plan from rest that is sent more than execution_lead_s after `accept` planned
    it moves later (every point by the same delay) so that it begins start_lead_s after the
    sending; the controller's cubic from rest then keeps the limits for a delivery up to
    start_lead_s - execution_lead_s late. Without the move, that delivery after a 0.05 s send
    delay needs 1.39x the acceleration limit, and after 0.15 s the first point is past on arrival."""
    lead, start_lead = 0.02, 0.1
    ex = executor(safety=True, execution_lead_s=lead, start_lead_s=start_lead)
    now = 1.08
    assert accept(ex, ramp(1.0, offset=-1.0), obs_time=1.0, now=now, position=0.0, velocity=0.0).accepted
    planned = ex.trajectory(now)
    sent_at = now + send_delay
    traj = ex.send_from(sent_at)
    moved = send_delay > lead
    expected_start = sent_at + start_lead if moved else now + start_lead
    assert traj.start_time == pytest.approx(expected_start)
    np.testing.assert_allclose(traj.positions, planned.positions)  # the same path, only later
    np.testing.assert_allclose(traj.velocities, planned.velocities)
    receipt = sent_at + start_lead - lead  # the delivery as late as the start lead still allows
    assert np.abs(spline_accelerations(receipt, [0.0], [0.0], traj)).max() <= A_MAX + 1e-9
    assert jtc_verdict(traj, receipt).accepted
    # once sent, it never moves again: the executor's plan is what the controller executes
    again = ex.send_from(sent_at + 0.3)
    assert again.start_time - DT * (len(traj.positions) - len(again.positions)) == pytest.approx(traj.start_time)
    # ... and the next chunk merges at a seam on the moved grid
    now2 = expected_start + 0.4
    before = ex.trajectory(now2)
    assert accept(ex, ramp(now2 - 0.05, offset=-1.0), obs_time=now2 - 0.05, now=now2).accepted
    assert ex.trajectory(now2).times[0] == pytest.approx(before.times[0])
    np.testing.assert_allclose(ex.trajectory(now2).positions[0], before.positions[0])


def test_only_a_fresh_plan_from_rest_moves_when_sent_late():
    # measured moving at 1 rad/s: the plan extrapolates the motion, so moving it would be a jump
    ex = executor(safety=True, execution_lead_s=0.02, start_lead_s=0.1)
    assert accept(ex, ramp(0.95), obs_time=0.95, now=1.0, position=0.95, velocity=1.0).accepted
    assert ex.send_from(1.2).start_time == pytest.approx(ex.trajectory(1.2).start_time)
    assert ex.send_from(1.2).times[0] == pytest.approx(ex.trajectory(1.0).times[1])  # nothing moved: a row is due
    # a seam (merged into the executing plan) never moves either
    ex = executor(safety=True, execution_lead_s=0.02, start_lead_s=0.1)
    assert accept(ex, ramp(1.0, offset=-1.0), obs_time=1.0, now=1.08, position=0.0, velocity=0.0).accepted
    ex.send_from(1.08)
    assert accept(ex, ramp(1.4, offset=-1.0), obs_time=1.4, now=1.45).accepted
    before = ex.trajectory(1.45)
    assert ex.send_from(1.7).times[0] == pytest.approx(ex.trajectory(1.7).times[0])
    assert ex.trajectory(1.7).times[-1] == pytest.approx(before.times[-1])


def test_start_lead_is_at_least_the_execution_lead():
    from moe_vla_ros.errors import BadInputError

    assert executor(execution_lead_s=0.02).config.start_lead == 0.02  # None: the same lead
    with pytest.raises(BadInputError, match="start_lead_s"):
        executor(execution_lead_s=0.05, start_lead_s=0.02)


def test_seam_after_latency_keeps_the_approached_point_and_the_limits():
    lead = 0.02
    ex = executor(safety=True, execution_lead_s=lead, blend="none")
    accept(ex, ramp(0.0, speed=1.0), obs_time=0.0, now=0.0, velocity=1.0)  # grid 0.02 + k * 0.1
    now = 0.43  # arrival 0.45: the controller is heading to the point due at 0.52
    before = ex.trajectory(now)
    assert accept(ex, ramp(0.3, speed=-1.0, offset=1.2), obs_time=0.3, now=now).accepted  # reverses
    traj = ex.trajectory(now)
    assert traj.times[0] == pytest.approx(0.52) and traj.positions[0, 0] == before.positions[0, 0]
    assert traj.velocities[0, 0] == before.velocities[0, 0]  # the approached point keeps its velocity too
    # so the controller's cubic runs on unchanged to it, and from it the new segments keep the limits
    rest = replace(traj, start_time=traj.times[0], positions=traj.positions[1:], velocities=traj.velocities[1:])
    acc = spline_accelerations(traj.times[0], traj.positions[0], traj.velocities[0], rest)
    assert np.abs(acc).max() <= A_MAX + 1e-9 and np.abs(traj.velocities).max() <= V_MAX + 1e-9
    assert jtc_verdict(traj, now + lead).accepted


def _points(trajectory):
    """PlannedTrajectory -> point objects as a JointTrajectory message carries them."""
    from types import SimpleNamespace

    return [SimpleNamespace(positions=q, velocities=v) for q, v in zip(trajectory.positions, trajectory.velocities)]


def test_hold_profile_tells_holds_from_policy_chunks():
    from types import SimpleNamespace

    ex = executor(safety=True, execution_lead_s=0.02)
    accept(ex, ramp(0.0, speed=1.0), obs_time=0.0, now=0.0, velocity=1.0)
    chunk = ex.trajectory(0.05)
    assert not is_hold_profile(_points(chunk), 1)  # moving, ends at rest after accelerating: a command
    assert is_hold_profile(_points(ex.brake(0.5)), 1)  # braking to rest
    assert is_hold_profile(_points(ex.brake(1.0, position=np.array([0.3]))), 1)  # one point at rest
    assert is_hold_profile([], 3)  # empty (older nodes)
    moving_at_zero_velocity = [SimpleNamespace(positions=[0.1 * k], velocities=[0.0]) for k in range(3)]
    assert not is_hold_profile(moving_at_zero_velocity, 1)
    assert not is_hold_profile([SimpleNamespace(positions=[0.0], velocities=[])], 1)  # no velocities
