"""TrajectoryFollower against hand-computed setpoints: joint_trajectory_controller's acceptance,
replacement, sampling (trajectory.cpp) and tolerance holds (update)."""

from __future__ import annotations

import numpy as np
import pytest

from moe_vla_ros.control.jtc_rules import JtcParams
from moe_vla_ros.sim.trajectory_follower import (
    JointTrajectory,
    TrajectoryError,
    TrajectoryFollower,
    TrajectoryPoint,
)


def point(positions, t, velocities=None, accelerations=None):
    return TrajectoryPoint(tuple(positions), t, None if velocities is None else tuple(velocities),
                           None if accelerations is None else tuple(accelerations))


def traj(names, *points, start=0.0):
    return JointTrajectory(tuple(names), tuple(points), start)


def assert_sample(follower, t, positions, velocities):
    p, v = follower.sample(t)
    np.testing.assert_allclose(p, positions, atol=1e-12)
    np.testing.assert_allclose(v, velocities, atol=1e-12)


def test_holds_initial_positions_until_a_trajectory_arrives():
    f = TrajectoryFollower(["a", "b"], [0.5, -1.0])
    assert_sample(f, 0.0, [0.5, -1.0], [0.0, 0.0])
    assert_sample(f, 100.0, [0.5, -1.0], [0.0, 0.0])
    assert f.holding


def test_linear_interpolation_from_start_state_then_hold_last_point():
    f = TrajectoryFollower(["a", "b"], [0.0, 0.0])
    f.set_trajectory(traj("ab", point([1, 2], 1.0), point([3, 2], 3.0)), now=0.0)
    assert_sample(f, 0.5, [0.5, 1.0], [1.0, 2.0])  # start state (0, 0) at t=0 -> first point at t=1
    assert_sample(f, 2.0, [2.0, 2.0], [1.0, 0.0])
    assert_sample(f, 3.0, [3.0, 2.0], [0.0, 0.0])
    assert_sample(f, 10.0, [3.0, 2.0], [0.0, 0.0])
    assert f.end_time() == 3.0 and not f.holding


def test_start_state_is_the_measured_state_when_given():
    f = TrajectoryFollower(["a"], [0.0])
    f.set_trajectory(traj("a", point([2.0], 2.0)), now=1.0, current_positions=[1.0])
    assert_sample(f, 2.0, [1.5], [0.5])  # from 1.0 at t=1 to 2.0 at t=3


def test_interpolate_from_desired_state_ignores_the_measured_state():
    f = TrajectoryFollower(["a"], [0.0], JtcParams(joints=("a",), interpolate_from_desired_state=True))
    f.set_trajectory(traj("a", point([2.0], 2.0)), now=1.0, current_positions=[1.0])
    assert_sample(f, 2.0, [1.0], [1.0])  # from the last command 0.0 at t=1 to 2.0 at t=3


def test_cubic_spline_when_points_carry_velocities():
    f = TrajectoryFollower(["a"], [0.0])
    f.set_trajectory(traj("a", point([1.0], 1.0, [0.0]), point([2.0], 3.0, [0.0])), now=0.0,
                     current_positions=[0.0], current_velocities=[0.0])
    # first segment (0, v=0) -> (1, v=0) over 1 s, half way: p = 0.5, v = 1.5
    assert_sample(f, 0.5, [0.5], [1.5])
    assert_sample(f, 2.0, [1.5], [0.75])  # (1, 0) -> (2, 0) over 2 s, half way
    assert_sample(f, 3.0, [2.0], [0.0])


def test_first_segment_starts_with_the_measured_velocity():
    f = TrajectoryFollower(["a"], [0.0])
    f.set_trajectory(traj("a", point([1.0], 1.0, [0.0])), now=0.0, current_positions=[0.0], current_velocities=[2.0])
    # cubic (0, v=2) -> (1, v=0) over 1 s: c2 = -1, c3 = 0 -> p(0.5) = 1 - 0.25 = 0.75, v(0.5) = 2 - 1 = 1
    assert_sample(f, 0.5, [0.75], [1.0])


def test_quintic_spline_with_accelerations():
    f = TrajectoryFollower(["a"], [0.0])
    f.set_trajectory(traj("a", point([1.0], 1.0, [0.0], [0.0])), now=0.0, current_positions=[0.0],
                     current_velocities=[0.0])
    # minimum-jerk 0 -> 1 over 1 s: p(0.5) = 0.5, v(0.5) = 1.875
    assert_sample(f, 0.5, [0.5], [1.875])
    assert_sample(f, 0.25, [10 * 0.25**3 - 15 * 0.25**4 + 6 * 0.25**5], [30 * 0.25**2 - 60 * 0.25**3 + 30 * 0.25**4])


def test_mixed_segments_use_the_fields_both_ends_have():
    f = TrajectoryFollower(["a"], [0.0])
    f.set_trajectory(traj("a", point([1.0], 1.0), point([3.0], 2.0, [0.0])), now=0.0, current_positions=[0.0],
                     current_velocities=[0.0])
    assert_sample(f, 0.5, [0.5], [1.0])  # first point without velocities: linear
    assert_sample(f, 1.5, [2.0], [2.0])  # point 0 has none: linear again


def test_interpolation_none_holds_the_start_state_then_steps_to_each_next_point():
    f = TrajectoryFollower(["a"], [0.0], JtcParams(joints=("a",), interpolation_method="none"))
    f.set_trajectory(traj("a", point([1.0], 1.0), point([3.0], 2.0)), now=0.0, current_positions=[0.5])
    assert f.positions_at(0.9)[0] == 0.5
    assert f.positions_at(1.2)[0] == 3.0
    assert f.positions_at(5.0)[0] == 3.0


def test_a_first_point_already_due_at_receipt_makes_the_setpoint_jump_into_the_trajectory():
    f = TrajectoryFollower(["a"], [0.0])
    t = traj("a", point([1.0], 0.5), point([2.0], 1.5), point([3.0], 2.5), start=1.0)
    f.set_trajectory(t, now=2.0, current_positions=[10.0])  # points due at 1.5, 2.5, 3.5
    assert_sample(f, 2.0, [1.5], [1.0])  # the measured 10.0 is ignored: segment 1.5 -> 2.5
    assert_sample(f, 3.0, [2.5], [1.0])


def test_a_trajectory_ending_before_receipt_is_refused_and_changes_nothing():
    f = TrajectoryFollower(["a"], [0.0])
    f.set_trajectory(traj("a", point([1.0], 1.0)), now=0.0)
    with pytest.raises(TrajectoryError, match=r"non-zero start time \(1.000000\) that ends in the past \(1.500000\)"):
        f.set_trajectory(traj("a", point([5.0], 0.5), start=1.0), now=2.0)
    assert_sample(f, 0.5, [0.5], [1.0])


def test_a_new_trajectory_replaces_the_running_one_at_once_even_with_a_future_stamp():
    f = TrajectoryFollower(["a"], [0.0])
    f.set_trajectory(traj("a", point([4.0], 4.0)), now=0.0)  # slope 1
    f.set_trajectory(traj("a", point([0.0], 1.0), start=2.0), now=1.0)  # first point due at 3.0
    # no waiting for the stamp: from the command at receipt (1.0) straight to 0.0 at t=3
    assert_sample(f, 1.5, [0.75], [-0.5])
    assert_sample(f, 2.5, [0.25], [-0.5])
    assert_sample(f, 5.0, [0.0], [0.0])  # the old trajectory's later part is gone
    assert_sample(f, 0.5, [0.5], [1.0])  # before the receipt: the old one


def test_replacement_starting_now_uses_the_follower_command_when_no_state_is_given():
    f = TrajectoryFollower(["a"], [0.0])
    f.set_trajectory(traj("a", point([4.0], 4.0)), now=0.0)
    f.set_trajectory(traj("a", point([3.0], 1.0)), now=1.0)
    assert_sample(f, 1.5, [2.0], [2.0])  # from the command 1.0 at t=1 to 3.0 at t=2


def test_a_future_stamp_moves_slowly_from_the_state_at_receipt():
    f = TrajectoryFollower(["a"], [1.0])
    f.set_trajectory(traj("a", point([3.0], 1.0), start=5.0), now=0.0)  # first point due at 6.0
    assert_sample(f, 3.0, [2.0], [1.0 / 3.0])
    assert_sample(f, 6.0, [3.0], [0.0])


def test_first_point_at_time_zero_is_applied_immediately():
    f = TrajectoryFollower(["a"], [0.0])
    f.set_trajectory(traj("a", point([1.0], 0.0), point([3.0], 1.0)), now=2.0)
    assert_sample(f, 2.0, [1.0], [2.0])
    assert_sample(f, 2.5, [2.0], [2.0])


def test_joints_are_matched_by_name():
    f = TrajectoryFollower(["a", "b"], [0.0, 7.0])
    f.set_trajectory(traj("ba", point([1.0, 2.0], 1.0)), now=0.0)
    assert_sample(f, 0.5, [1.0, 4.0], [2.0, -6.0])


def test_partial_goals_are_refused_by_default():
    f = TrajectoryFollower(["a", "b", "c"], [0.0, 7.0, 5.0])
    with pytest.raises(TrajectoryError, match="Joints on incoming trajectory don't match the controller joints.") as e:
        f.set_trajectory(traj("ca", point([1.0, 2.0], 1.0)), now=0.0)
    assert e.value.rule == "partial_joints"


def test_partial_goals_when_allowed_keep_the_last_command_of_the_missing_joints():
    params = JtcParams(joints=("a", "b", "c"), allow_partial_joints_goal=True)
    f = TrajectoryFollower(["a", "b", "c"], [0.0, 7.0, 5.0], params)
    f.set_trajectory(traj("ca", point([1.0, 2.0], 1.0, [0.0, 0.0])), now=0.0)
    assert_sample(f, 0.5, [1.0, 7.0, 3.0], [3.0, 0.0, -6.0])  # cubic from rest to rest
    with pytest.raises(TrajectoryError, match="Incoming joint d doesn't match the controller's joints."):
        f.set_trajectory(traj("ad", point([1.0, 2.0], 1.0)), now=0.0)


def test_an_empty_trajectory_is_refused_not_a_hold():
    with pytest.raises(TrajectoryError, match="Empty trajectory received.") as e:
        traj("a")
    assert e.value.rule == "empty_trajectory"


def test_a_last_point_that_still_moves_is_refused_unless_allowed():
    moving = traj("a", point([1.0], 1.0, [0.5]))
    f = TrajectoryFollower(["a"], [0.0])
    with pytest.raises(TrajectoryError, match="Velocity of last trajectory point of joint a is not zero"):
        f.set_trajectory(moving, now=0.0)
    assert f.holding and f.positions_at(1.0)[0] == 0.0
    allowed = TrajectoryFollower(["a"], [0.0], JtcParams(joints=("a",), allow_nonzero_velocity_at_trajectory_end=True))
    allowed.set_trajectory(moving, now=0.0)
    assert_sample(allowed, 5.0, [1.0], [0.5])  # past the end: the last point as is


def test_accelerations_without_velocities_are_refused():
    f = TrajectoryFollower(["a"], [0.0])
    with pytest.raises(TrajectoryError, match="accelerations but no velocities") as e:
        f.set_trajectory(traj("a", point([1.0], 1.0, None, [0.0])), now=0.0)
    assert e.value.rule == "warning"


def test_hold_drops_trajectories():
    f = TrajectoryFollower(["a"], [0.0])
    f.set_trajectory(traj("a", point([4.0], 4.0)), now=0.0)
    f.hold([1.5], now=1.0)
    assert_sample(f, 0.5, [0.5], [1.0])
    assert_sample(f, 3.0, [1.5], [0.0])
    assert f.holding


def tolerant(**kwargs) -> TrajectoryFollower:
    return TrajectoryFollower(["a", "b"], [0.0, 0.0], JtcParams(joints=("a", "b"), **kwargs))


def test_a_path_tolerance_violation_holds_the_measured_position():
    f = tolerant(trajectory_tolerances=(0.1, 0.0))
    f.set_trajectory(traj("ab", point([1.0, 1.0], 1.0)), now=0.0)
    np.testing.assert_allclose(f.update(0.5, [0.45, -3.0]), [0.5, 0.5])  # b is not checked (tolerance 0)
    assert f.pop_events() == []
    f.update(0.6, [0.3, 0.6])  # a: |0.6 - 0.3| > 0.1
    (when, text), = f.pop_events()
    assert when == 0.6 and "Holding position due to state tolerance violation" in text and "a |error| 0.3000" in text
    assert f.holding
    np.testing.assert_allclose(f.update(0.7, [0.35, 0.6]), [0.3, 0.6])  # held where it was measured
    assert f.pop_events() == []  # no checks while holding
    f.set_trajectory(traj("ab", point([0.0, 0.0], 1.0)), now=0.8, current_positions=[0.35, 0.6])
    assert not f.holding


def test_the_path_tolerance_is_not_checked_after_the_end_but_the_goal_tolerance_is():
    f = tolerant(trajectory_tolerances=(0.1, 0.1), goal_tolerances=(0.05, 0.05), goal_time=0.5)
    f.set_trajectory(traj("ab", point([1.0, 1.0], 1.0)), now=0.0)
    f.update(0.0, [0.0, 0.0])
    f.update(1.2, [0.8, 1.0])  # after the end, 0.2 off: the goal time has not run out
    assert f.pop_events() == [] and not f.holding
    f.update(1.6, [0.8, 1.0])
    (_, text), = f.pop_events()
    assert text.startswith("Exceeded goal_time_tolerance: holding position...") and f.holding


def test_a_zero_goal_time_waits_forever():
    f = tolerant(goal_tolerances=(0.05, 0.05))
    f.set_trajectory(traj("ab", point([1.0, 1.0], 1.0)), now=0.0)
    f.update(100.0, [0.0, 0.0])
    assert f.pop_events() == [] and not f.holding


def test_cmd_timeout_holds_after_the_end_when_above_goal_time():
    f = tolerant(cmd_timeout=0.5)
    f.set_trajectory(traj("ab", point([1.0, 1.0], 1.0)), now=0.0)
    f.update(1.4, [1.0, 1.0])
    assert not f.holding
    np.testing.assert_allclose(f.update(1.6, [0.9, 1.0]), [1.0, 1.0])  # this cycle's command is still written
    assert f.pop_events()[0][1] == "Aborted due to command timeout" and f.holding
    np.testing.assert_allclose(f.update(1.7, [0.95, 1.0]), [0.9, 1.0])


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: traj(("a", "a"), point([1, 2], 1.0)), "unique"),
        (lambda: traj((), point([], 1.0)), "Empty joint names on incoming trajectory."),
        (lambda: traj("a", point([1, 2], 1.0)), r"joint_names size \(1\) and positions \(2\) at point #0"),
        (lambda: traj("a", point([1], 1.0), point([2], 1.0)), "is not strictly increasing"),
        (lambda: point([float("nan")], 1.0), "finite"),
        (lambda: point([1.0], float("inf")), "time_from_start"),
        (lambda: point([1.0, 2.0], 1.0, [0.0]), "velocities"),
        (lambda: point([1.0], 1.0, [0.0], [0.0, 1.0]), "accelerations"),
        (lambda: TrajectoryFollower("ab", [0.0]), "string"),
        (lambda: TrajectoryFollower(["a"], [0.0], JtcParams(joints=("b",))), "params.joints"),
    ],
)
def test_malformed_input_is_rejected_with_a_clear_message(build, message):
    with pytest.raises(TrajectoryError, match=message):
        build()


def test_from_arrays_builds_points():
    t = JointTrajectory.from_arrays(["a", "b"], np.array([[0, 1], [2, 3]]), [0.1, 0.2], np.zeros((2, 2)),
                                    accelerations=np.ones((2, 2)))
    assert t.has_velocities and t.points[1].positions == (2.0, 3.0) and t.points[1].time_from_start == 0.2
    assert t.points[0].accelerations == (1.0, 1.0)
    with pytest.raises(TrajectoryError, match="shape"):
        JointTrajectory.from_arrays(["a"], np.zeros((3, 1)), [0.1, 0.2])
