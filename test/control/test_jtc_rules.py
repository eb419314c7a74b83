"""joint_trajectory_controller's acceptance rules (control/jtc_rules.py), one test per rule of
``validate_trajectory_msg``, with the cases the upstream code decides (refused and accepted)."""

from __future__ import annotations

import numpy as np
import pytest

from moe_vla_ros.control.jtc_rules import (
    FLT_EPSILON,
    JTC_PARAMETER_NAMES,
    JtcParams,
    JtcParamsError,
    check_trajectory,
    unknown_parameter_names,
)

JOINTS = ("j1", "j2", "j3")
PARAMS = JtcParams(joints=JOINTS)
NOW = 100.0


def verdict(names=JOINTS, stamp=0.0, times=(0.5, 1.0), positions=None, velocities=None, accelerations=None,
            params=PARAMS, now=NOW, efforts=None):
    """A well-formed 2-point trajectory unless a field is given."""
    n = len(names)
    if positions is None:
        positions = [[0.1 * (i + 1)] * n for i in range(len(times))]
    return check_trajectory(names, stamp, times, positions, velocities, accelerations, params, now, efforts)


def assert_refused(v, rule, text):
    assert not v.accepted and v.rule == rule, v
    assert text in v.reason, v.reason


def test_a_complete_position_only_trajectory_starting_now_is_accepted():
    v = verdict()
    assert v.accepted and v.conforming and v.reason == "" and v.rule == ""


def test_positions_and_velocities_ending_at_rest_are_accepted():
    v = verdict(velocities=[[0.3, 0.2, 0.1], [0.0, 0.0, 0.0]])
    assert v.conforming


def test_a_missing_joint_is_refused_when_partial_goals_are_not_allowed():
    assert_refused(verdict(names=("j1", "j2")), "partial_joints",
                   "Joints on incoming trajectory don't match the controller joints.")


def test_a_partial_goal_is_accepted_when_allowed():
    params = JtcParams(joints=JOINTS, allow_partial_joints_goal=True)
    assert verdict(names=("j3", "j1"), params=params).conforming


def test_the_partial_goal_check_counts_names_only():
    # Upstream compares sizes: a full-size list with an unknown name fails the name check instead.
    assert_refused(verdict(names=("j1", "j2", "elbow")), "unknown_joint",
                   "Incoming joint elbow doesn't match the controller's joints.")


def test_empty_joint_names_are_refused():
    params = JtcParams(joints=JOINTS, allow_partial_joints_goal=True)  # else rule 1 reports it first
    assert_refused(verdict(names=(), params=params, positions=[[], []]), "empty_joint_names",
                   "Empty joint names on incoming trajectory.")


def test_an_empty_trajectory_is_refused_not_a_hold():
    assert_refused(verdict(times=(), positions=[]), "empty_trajectory", "Empty trajectory received.")


def test_an_unknown_joint_is_refused_even_when_partial_goals_are_allowed():
    params = JtcParams(joints=JOINTS, allow_partial_joints_goal=True)
    assert_refused(verdict(names=("j1", "wrist"), params=params), "unknown_joint", "Incoming joint wrist")


def test_a_last_point_that_still_moves_is_refused_by_default():
    v = verdict(velocities=[[0.3, 0.2, 0.1], [0.0, 0.05, 0.0]])
    assert_refused(v, "nonzero_end_velocity", "Velocity of last trajectory point of joint j2 is not zero: "
                                              "0.050000000000000")


def test_end_velocity_within_float_epsilon_counts_as_zero():
    assert verdict(velocities=[[0.3, 0.2, 0.1], [FLT_EPSILON, -FLT_EPSILON, 0.0]]).accepted
    assert not verdict(velocities=[[0.3, 0.2, 0.1], [2 * FLT_EPSILON, 0.0, 0.0]]).accepted


def test_a_moving_last_point_is_accepted_when_allowed():
    params = JtcParams(joints=JOINTS, allow_nonzero_velocity_at_trajectory_end=True)
    assert verdict(velocities=[[0.3, 0.2, 0.1], [0.3, 0.2, 0.1]], params=params).conforming


def test_only_the_last_point_needs_zero_velocity_and_a_last_point_without_velocities_passes():
    assert verdict(velocities=[[0.3, 0.2, 0.1], []]).accepted


def test_a_stamped_trajectory_that_ends_before_now_is_refused():
    v = verdict(stamp=NOW - 2.0, times=(0.5, 1.0))  # ends at NOW - 1
    assert_refused(v, "ends_in_the_past", "Received trajectory with non-zero start time (98.000000) that ends in "
                                          "the past (99.000000)")


def test_stamp_zero_means_now_and_is_never_in_the_past():
    assert verdict(stamp=0.0, now=1e9).conforming


def test_a_stamp_in_the_past_whose_end_is_still_ahead_is_accepted():
    assert verdict(stamp=NOW - 0.7, times=(0.5, 1.0)).accepted  # first point already due, last ahead


def test_a_trajectory_ending_exactly_now_is_accepted():
    assert verdict(stamp=NOW - 1.0, times=(0.5, 1.0)).accepted  # upstream refuses end < now only


def test_a_future_stamp_is_accepted():
    assert verdict(stamp=NOW + 5.0).conforming


def test_times_must_strictly_increase():
    assert_refused(verdict(times=(0.5, 0.5)), "time_not_increasing",
                   "Time between points 0 and 1 is not strictly increasing, it is 0.500000 and 0.500000 respectively")
    assert_refused(verdict(times=(0.5, 1.0, 0.9), positions=[[0.0] * 3] * 3), "time_not_increasing",
                   "points 1 and 2")


def test_the_first_point_time_is_not_checked():
    assert verdict(times=(0.0, 0.1)).accepted
    assert verdict(times=(-0.2, 0.1)).accepted


def test_positions_must_have_one_value_per_joint_name():
    assert_refused(verdict(positions=[[0.0] * 3, [0.0] * 2]), "size_mismatch",
                   "Mismatch between joint_names size (3) and positions (2) at point #1.")
    assert_refused(verdict(positions=[[], [0.0] * 3]), "size_mismatch", "positions (0) at point #0")


def test_velocities_and_accelerations_may_be_empty_or_complete_only():
    assert verdict(velocities=[[], [0.0] * 3], accelerations=[[0.0] * 3, []]).accepted
    assert_refused(verdict(velocities=[[0.1] * 2, [0.0] * 3]), "size_mismatch", "velocities (2) at point #0")
    assert_refused(verdict(accelerations=[[0.0] * 3, [0.0] * 4]), "size_mismatch", "accelerations (4) at point #1")


def test_points_without_positions_need_integration_and_some_field():
    params = JtcParams(joints=JOINTS, allow_integration_in_goal_trajectories=True)
    assert verdict(positions=[[], []], velocities=[[0.1] * 3, [0.0] * 3], params=params).accepted
    assert_refused(verdict(positions=[[], [0.0] * 3], params=params), "no_position_velocity_acceleration",
                   "The given trajectory has no position, velocity, or acceleration points.")
    assert_refused(verdict(positions=[[0.0] * 2, [0.0] * 3], params=params), "size_mismatch", "positions (2)")


def test_effort_values_need_an_effort_command_interface():
    efforts = [[0.0] * 3, [0.0] * 3]
    assert_refused(verdict(efforts=efforts), "effort_without_effort_interface",
                   "Trajectories with effort fields are only supported for controllers using the 'effort' "
                   "command interface.")
    params = JtcParams(joints=JOINTS, command_interfaces=("position", "effort"))
    assert verdict(efforts=efforts, params=params).accepted


def test_rules_apply_in_upstream_order():
    # A partial goal that is also empty: rule 1 is checked before rule 3.
    assert verdict(names=("j1",), times=(), positions=[]).rule == "partial_joints"
    # Moving end and stamped in the past: the velocity rule (5) comes before the time rule (6).
    v = verdict(stamp=1.0, velocities=[[0.1] * 3, [0.1] * 3])
    assert v.rule == "nonzero_end_velocity"
    # Point 0 with a size error before point 1's time error.
    assert verdict(times=(0.5, 0.4), positions=[[0.0] * 2, [0.0] * 3]).rule == "size_mismatch"


def test_accepted_but_badly_executed_trajectories_carry_warnings():
    v = verdict(names=("j1", "j1", "j2"))
    assert v.accepted and not v.conforming and "duplicate joint names ['j1']" in v.warnings[0]
    v = verdict(positions=[[0.0, float("nan"), 0.0], [0.0] * 3])
    assert v.accepted and "non-finite" in v.warnings[0]
    v = verdict(accelerations=[[0.0] * 3, [0.0] * 3])  # no velocities: no spline upstream
    assert v.accepted and "accelerations but no velocities" in v.warnings[0]
    no_splines = JtcParams(joints=JOINTS, interpolation_method="none")
    assert verdict(accelerations=[[0.0] * 3] * 2, params=no_splines).conforming


def test_numpy_rows_are_accepted():
    v = check_trajectory(list(JOINTS), 0.0, np.array([0.1, 0.2]), np.zeros((2, 3)), np.zeros((2, 3)), None,
                         PARAMS, NOW)
    assert v.conforming


def test_params_defaults_are_the_upstream_defaults():
    p = JtcParams(joints=JOINTS)
    assert (p.allow_partial_joints_goal, p.allow_nonzero_velocity_at_trajectory_end,
            p.allow_integration_in_goal_trajectories, p.interpolate_from_desired_state) == (False,) * 4
    assert (p.interpolation_method, p.cmd_timeout, p.stopped_velocity_tolerance, p.goal_time) == ("splines", 0.0,
                                                                                                  0.01, 0.0)
    assert p.trajectory_tolerances == p.goal_tolerances == (0.0, 0.0, 0.0)


def test_cmd_timeout_only_counts_above_goal_time():
    assert JtcParams(joints=JOINTS, cmd_timeout=0.5).effective_cmd_timeout == 0.5
    assert JtcParams(joints=JOINTS, cmd_timeout=0.5, goal_time=0.5).effective_cmd_timeout == 0.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(joints=()), r"joints must be non-empty and distinct, got \[\]"),
        (dict(joints=("a", "a")), r"got \['a', 'a'\]"),
        (dict(joints="abc"), "the string 'abc'"),
        (dict(command_interfaces=("torque",)), r"got \['torque'\]"),
        (dict(command_interfaces=("velocity", "effort")), "'velocity' is used alone or with 'position'"),
        (dict(command_interfaces=("position", "velocity", "effort")), "'effort' is used alone or with 'position'"),
        (dict(state_interfaces=("velocity",)), r"state_interfaces \['velocity'\]"),
        (dict(state_interfaces=("position", "acceleration")), "position \\[velocity \\[acceleration\\]\\]"),
        (dict(interpolation_method="cubic"), "got 'cubic'"),
        (dict(goal_time=-1.0), "constraints.goal_time must be >= 0, got -1.0"),
        (dict(cmd_timeout=float("nan")), "cmd_timeout must be a finite number, got nan"),
        (dict(allow_partial_joints_goal="yes"), "allow_partial_joints_goal must be a bool, got 'yes'"),
        (dict(trajectory_tolerances=(0.1, 0.1)), r"3 finite values >= 0 .* got \[0.1, 0.1\]"),
        (dict(goal_tolerances=(0.1, -0.1, 0.1)), r"goal_tolerances .* got \[0.1, -0.1, 0.1\]"),
    ],
)
def test_invalid_params_are_named(kwargs, message):
    kwargs = {"joints": JOINTS, **kwargs}
    with pytest.raises(JtcParamsError, match=message):
        JtcParams(**kwargs)


def test_params_from_a_ros_parameters_block():
    block = {
        "joints": list(JOINTS), "command_interfaces": ["position"], "state_interfaces": ["position", "velocity"],
        "allow_nonzero_velocity_at_trajectory_end": False, "interpolation_method": "splines",
        "constraints": {"goal_time": 0.5, "stopped_velocity_tolerance": 0.02, "j1": {"trajectory": 0.2, "goal": 0.05}},
        "gains": {"j2": {"p": 10.0}},
    }
    p = JtcParams.from_ros_parameters(block)
    assert p.goal_time == 0.5 and p.stopped_velocity_tolerance == 0.02
    assert p.trajectory_tolerances == (0.2, 0.0, 0.0) and p.goal_tolerances == (0.05, 0.0, 0.0)
    with pytest.raises(JtcParamsError, match=r"not joint_trajectory_controller parameters: \['open_loop_control'\]"):
        JtcParams.from_ros_parameters({**block, "open_loop_control": False})  # removed before kilted
    with pytest.raises(JtcParamsError, match=r"\['constraints.elbow.goal'\]"):
        JtcParams.from_ros_parameters({**block, "constraints": {"elbow": {"goal": 0.1}}})
    assert unknown_parameter_names({"joints": [], "constraints.j1.trajectory": 0.1}, JOINTS) == []
    assert "constraints.<joint>.trajectory" in JTC_PARAMETER_NAMES and "open_loop_control" not in JTC_PARAMETER_NAMES
