"""TrajectoryFollower against hand-computed setpoints (joint_trajectory_controller semantics)."""

from __future__ import annotations

import numpy as np
import pytest

from moe_vla_ros.sim.trajectory_follower import (
    JointTrajectory,
    TrajectoryError,
    TrajectoryFollower,
    TrajectoryPoint,
)


def point(positions, t, velocities=None):
    return TrajectoryPoint(tuple(positions), t, None if velocities is None else tuple(velocities))


def assert_sample(follower, t, positions, velocities):
    p, v = follower.sample(t)
    np.testing.assert_allclose(p, positions, atol=1e-12)
    np.testing.assert_allclose(v, velocities, atol=1e-12)


def test_holds_initial_positions_until_a_trajectory_arrives():
    f = TrajectoryFollower(["a", "b"], [0.5, -1.0])
    assert_sample(f, 0.0, [0.5, -1.0], [0.0, 0.0])
    assert_sample(f, 100.0, [0.5, -1.0], [0.0, 0.0])


def test_linear_interpolation_from_start_state_then_hold_last_point():
    f = TrajectoryFollower(["a", "b"], [0.0, 0.0])
    kept = f.set_trajectory(JointTrajectory(("a", "b"), (point([1, 2], 1.0), point([3, 2], 3.0))), now=0.0)
    assert kept == 2
    assert_sample(f, 0.5, [0.5, 1.0], [1.0, 2.0])  # start state (0, 0) at t=0 -> first point at t=1
    assert_sample(f, 2.0, [2.0, 2.0], [1.0, 0.0])
    assert_sample(f, 3.0, [3.0, 2.0], [0.0, 0.0])
    assert_sample(f, 10.0, [3.0, 2.0], [0.0, 0.0])
    assert f.end_time() == 3.0


def test_start_state_is_the_given_current_state_when_starting_now():
    f = TrajectoryFollower(["a"], [0.0])
    f.set_trajectory(JointTrajectory(("a",), (point([2.0], 2.0),)), now=1.0, current_positions=[1.0])
    assert_sample(f, 2.0, [1.5], [0.5])  # from 1.0 at t=1 to 2.0 at t=3


def test_cubic_hermite_when_points_carry_velocities():
    f = TrajectoryFollower(["a"], [0.0])
    traj = JointTrajectory(("a",), (point([1.0], 1.0, [0.0]), point([2.0], 3.0, [1.0])))
    f.set_trajectory(traj, now=0.0, current_positions=[0.0], current_velocities=[0.0])
    # first segment (0, v=0) -> (1, v=0) over h=1, s=0.5: p = 0.5, v = 1.5
    assert_sample(f, 0.5, [0.5], [1.5])
    # second segment (1, v=0) -> (2, v=1) over h=2, s=0.5:
    # p = 0.5*1 + 0.125*2*0 + 0.5*2 - 0.125*2*1 = 1.25; v = (-1.5*1 + 1.5*2)/2 - 0.25*1 = 0.5
    assert_sample(f, 2.0, [1.25], [0.5])
    assert_sample(f, 3.0, [2.0], [0.0])


def test_points_in_the_past_are_dropped():
    f = TrajectoryFollower(["a"], [0.0])
    traj = JointTrajectory(("a",), (point([1.0], 0.5), point([2.0], 1.5), point([3.0], 2.5)), start_time=1.0)
    kept = f.set_trajectory(traj, now=2.0, current_positions=[10.0])
    assert kept == 2  # the point at t=1.5 is gone
    assert_sample(f, 2.25, [6.0], [-16.0])  # from 10 at t=2 to 2 at t=2.5
    assert_sample(f, 3.0, [2.5], [1.0])


def test_trajectory_entirely_in_the_past_is_rejected_and_changes_nothing():
    f = TrajectoryFollower(["a"], [0.0])
    f.set_trajectory(JointTrajectory(("a",), (point([1.0], 1.0),)), now=0.0)
    with pytest.raises(TrajectoryError, match="ends in the past"):
        f.set_trajectory(JointTrajectory(("a",), (point([5.0], 0.5),), start_time=1.0), now=2.0)
    assert_sample(f, 0.5, [0.5], [1.0])


def test_new_trajectory_replaces_the_old_one_from_its_start_time():
    f = TrajectoryFollower(["a"], [0.0])
    f.set_trajectory(JointTrajectory(("a",), (point([4.0], 4.0),)), now=0.0)  # slope 1
    f.set_trajectory(JointTrajectory(("a",), (point([0.0], 1.0),), start_time=2.0), now=1.0)
    assert_sample(f, 1.5, [1.5], [1.0])  # old trajectory until t=2
    assert_sample(f, 2.5, [1.0], [-2.0])  # from the old setpoint 2.0 at t=2 to 0 at t=3
    assert_sample(f, 5.0, [0.0], [0.0])  # the old trajectory's later part is gone


def test_replacement_starting_now_uses_the_follower_setpoint_when_no_state_is_given():
    f = TrajectoryFollower(["a"], [0.0])
    f.set_trajectory(JointTrajectory(("a",), (point([4.0], 4.0),)), now=0.0)
    f.set_trajectory(JointTrajectory(("a",), (point([3.0], 1.0),)), now=1.0)
    assert_sample(f, 1.5, [2.0], [2.0])  # from setpoint 1.0 at t=1 to 3.0 at t=2


def test_future_start_without_previous_trajectory_holds_until_start():
    f = TrajectoryFollower(["a"], [1.0])
    f.set_trajectory(JointTrajectory(("a",), (point([3.0], 1.0),), start_time=5.0), now=0.0)
    assert_sample(f, 4.9, [1.0], [0.0])
    assert_sample(f, 5.5, [2.0], [2.0])


def test_first_point_at_time_zero_is_applied_immediately():
    f = TrajectoryFollower(["a"], [0.0])
    f.set_trajectory(JointTrajectory(("a",), (point([1.0], 0.0), point([3.0], 1.0))), now=2.0)
    assert_sample(f, 2.0, [1.0], [2.0])
    assert_sample(f, 2.5, [2.0], [2.0])


def test_joints_matched_by_name_and_missing_joints_hold():
    f = TrajectoryFollower(["a", "b", "c"], [0.0, 7.0, 5.0])
    f.set_trajectory(JointTrajectory(("c", "a"), (point([1.0, 2.0], 1.0),)), now=0.0)
    assert_sample(f, 0.5, [1.0, 7.0, 3.0], [2.0, 0.0, -4.0])
    with pytest.raises(TrajectoryError, match=r"unknown joint names \['d'\]"):
        f.set_trajectory(JointTrajectory(("a", "d"), (point([1.0, 2.0], 1.0),)), now=0.0)


def test_hold_drops_trajectories():
    f = TrajectoryFollower(["a"], [0.0])
    f.set_trajectory(JointTrajectory(("a",), (point([4.0], 4.0),)), now=0.0)
    f.hold([1.5], now=1.0)
    assert_sample(f, 0.5, [0.5], [1.0])
    assert_sample(f, 3.0, [1.5], [0.0])


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: JointTrajectory(("a", "a"), (point([1, 2], 1.0),)), "unique"),
        (lambda: JointTrajectory(("a",), ()), "no points"),
        (lambda: JointTrajectory(("a",), (point([1, 2], 1.0),)), "2 positions for 1 joints"),
        (lambda: JointTrajectory(("a",), (point([1], 1.0), point([2], 1.0))), "strictly increasing"),
        (lambda: JointTrajectory(("a",), (point([1], 1.0, [0]), point([2], 2.0))), "every point or no point"),
        (lambda: point([float("nan")], 1.0), "finite"),
        (lambda: point([1.0], -0.1), "time_from_start"),
        (lambda: point([1.0, 2.0], 1.0, [0.0]), "velocities"),
        (lambda: TrajectoryFollower("ab", [0.0]), "string"),
    ],
)
def test_malformed_input_is_rejected_with_a_clear_message(build, message):
    with pytest.raises(TrajectoryError, match=message):
        build()


def test_from_arrays_builds_points():
    traj = JointTrajectory.from_arrays(["a", "b"], np.array([[0, 1], [2, 3]]), [0.1, 0.2], np.zeros((2, 2)))
    assert traj.has_velocities and traj.points[1].positions == (2.0, 3.0) and traj.points[1].time_from_start == 0.2
    with pytest.raises(TrajectoryError, match="shape"):
        JointTrajectory.from_arrays(["a"], np.zeros((3, 1)), [0.1, 0.2])
