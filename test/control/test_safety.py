"""Tests of moe_vla_ros/control/safety.py: limits config and the chunk safety filter."""

import math

import numpy as np
import pytest

from moe_vla_ros.control.safety import (
    FIRST_STEP_SHARE,
    SafetyConfigError,
    SafetyFilter,
    SafetyLimits,
    point_velocities,
)

NAMES = ("shoulder", "elbow", "wrist")
DT = 0.1
TOL = 1e-9


@pytest.fixture
def limits():
    return SafetyLimits.from_config(
        NAMES,
        {
            "lower": [-1.0, -2.0, -3.0],
            "upper": {"shoulder": 1.0, "elbow": 2.0, "wrist": 3.0},
            "max_velocity": [1.0, 0.5, 2.0],
            "max_acceleration": 4.0,
        },
    )


def interval_velocities(start, positions, dt=DT):
    return np.diff(np.concatenate([start[None], positions]), axis=0) / dt  # [H, J]


def assert_within_limits(limits, start, start_velocity, positions, dt=DT, check_acceleration=True):
    a = limits.arrays
    assert (positions >= a["lower"] - TOL).all() and (positions <= a["upper"] + TOL).all()
    v = interval_velocities(start, positions, dt)
    assert (np.abs(v) <= a["max_velocity"] + TOL).all()
    if check_acceleration:
        dv = np.diff(np.concatenate([start_velocity[None], v]), axis=0)  # [H, J]
        assert (np.abs(dv) <= a["max_acceleration"] * dt + TOL).all()


# -- limits ----------------------------------------------------------------------------------


def test_limits_from_scalars_lists_and_mappings(limits):
    assert limits.lower == (-1.0, -2.0, -3.0)
    assert limits.upper == (1.0, 2.0, 3.0)
    assert limits.max_acceleration == (4.0, 4.0, 4.0)
    np.testing.assert_array_equal(limits.arrays["max_velocity"], [1.0, 0.5, 2.0])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"lower": {"shoulder": -1.0, "elbow": -1.0}}, r"lower is missing joints \['wrist'\]"),
        ({"lower": {"shoulder": -1, "elbow": -1, "wrist": -1, "knee": 0}}, r"unknown joints \['knee'\]"),
        ({"upper": [1.0, 2.0]}, "upper has 2 values, expected 3"),
        ({"upper": [1.0, -5.0, 3.0]}, r"lower must be < upper, got elbow: \[-1.0, -5.0\]"),
        ({"max_velocity": [1.0, 0.0, 1.0]}, r"max_velocity must be > 0, got elbow=0.0"),
        ({"max_acceleration": math.nan}, "max_acceleration must be finite"),
        ({"jerk": 1.0}, r"safety limits config has unknown fields \['jerk'\]"),
    ],
)
def test_limit_errors_name_the_bad_value(change, message):
    config = {"lower": -1.0, "upper": 1.0, "max_velocity": 1.0, "max_acceleration": 1.0, **change}
    with pytest.raises(SafetyConfigError, match=message):
        SafetyLimits.from_config(NAMES, config)


def test_missing_limit_fields_are_listed():
    with pytest.raises(SafetyConfigError, match=r"missing fields \['max_velocity', 'max_acceleration'\]"):
        SafetyLimits.from_config(NAMES, {"lower": -1.0, "upper": 1.0})


# -- rejection -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_target_rejects_the_whole_chunk(limits, bad):
    chunk = np.zeros((8, 3))
    chunk[5, 2] = bad
    out = SafetyFilter(limits).filter(chunk, DT, np.zeros(3))
    assert not out.report.accepted and out.positions is None and out.velocities is None
    assert out.report.reason == f"non-finite target at step 5 for joint 'wrist' ({bad})"


def test_non_finite_state_rejects(limits):
    out = SafetyFilter(limits).filter(np.zeros((4, 3)), DT, np.array([0.0, math.nan, 0.0]))
    assert out.report.reason == "non-finite current position for joint 'elbow' (nan)"
    out = SafetyFilter(limits).filter(np.zeros((4, 3)), DT, np.zeros(3), np.array([math.inf, 0.0, 0.0]))
    assert "current velocity for joint 'shoulder'" in out.report.reason


def test_start_far_outside_limits_rejects_and_near_is_clamped(limits):
    safety = SafetyFilter(limits, start_tolerance_rad=0.05)
    out = safety.filter(np.zeros((4, 3)), DT, np.array([1.2, 0.0, 0.0]))
    assert not out.report.accepted and "joint 'shoulder' is at 1.2000 rad" in out.report.reason
    out = safety.filter(np.full((4, 3), 0.9), DT, np.array([1.02, 0.0, 0.0]))
    assert out.report.accepted and out.report.start_clamped.tolist() == [True, False, False]
    assert out.positions[:, 0].max() <= 1.0


def test_wrong_shapes_raise(limits):
    with pytest.raises(ValueError, match=r"targets must have shape \[H >= 1, 3\]"):
        SafetyFilter(limits).filter(np.zeros((4, 2)), DT, np.zeros(3))
    with pytest.raises(ValueError, match="dt must be > 0"):
        SafetyFilter(limits).filter(np.zeros((4, 3)), 0.0, np.zeros(3))


# -- limiting --------------------------------------------------------------------------------


def test_chunk_within_limits_passes_unchanged(limits):
    t = DT * np.arange(1, 17)
    chunk = np.stack([0.3 * np.sin(t), 0.2 * np.sin(0.5 * t), 0.5 * t], axis=1)  # [16, 3]
    velocity = np.array([0.3, 0.1, 0.5])
    out = SafetyFilter(limits).filter(chunk, DT, np.zeros(3), velocity)
    np.testing.assert_allclose(out.positions, chunk, atol=1e-12)
    assert not out.report.modified and out.report.active_limits() == []
    np.testing.assert_allclose(out.velocities, point_velocities(np.zeros(3), chunk, DT))


def test_targets_are_clamped_to_position_limits(limits):
    chunk = np.tile([1.5, 0.0, -2.0], (30, 1))
    out = SafetyFilter(limits).filter(chunk, DT, np.zeros(3))
    assert out.report.position_clamped.tolist() == [True, False, False]
    assert out.report.max_target_clip_rad == pytest.approx(0.5)
    assert out.positions[-1, 0] == pytest.approx(1.0, abs=1e-6)  # reaches the limit, never passes it
    assert out.positions[-1, 2] == pytest.approx(-2.0, abs=1e-6)
    assert_within_limits(limits, np.zeros(3), np.zeros(3), out.positions)


def test_first_step_cannot_jump_from_the_current_state(limits):
    chunk = np.tile([0.9, 1.5, -2.5], (16, 1))  # the whole chunk sits far away
    out = SafetyFilter(limits).filter(chunk, DT, np.zeros(3))
    first_step = np.abs(out.positions[0])
    assert (first_step <= limits.arrays["max_acceleration"] * DT * DT + TOL).all()  # from rest
    assert out.report.velocity_limited.any() and out.report.acceleration_limited.all()
    assert_within_limits(limits, np.zeros(3), np.zeros(3), out.positions)


def test_deceleration_from_the_current_velocity_is_limited(limits):
    chunk = np.full((16, 3), 0.0)  # "stop here" while moving at full speed
    velocity = np.array([1.0, 0.5, -2.0])
    out = SafetyFilter(limits).filter(chunk, DT, np.zeros(3), velocity)
    assert_within_limits(limits, np.zeros(3), velocity, out.positions)
    assert out.report.acceleration_limited.all()


def test_braking_room_keeps_position_and_acceleration_limits(limits):
    # shoulder at 0.8 rad moving up at its 1 rad/s limit; the target lies beyond the limit
    start, velocity = np.array([0.8, 0.0, 0.0]), np.array([1.0, 0.0, 0.0])
    out = SafetyFilter(limits).filter(np.tile([2.0, 0.0, 0.0], (16, 1)), DT, start, velocity)
    assert not out.report.acceleration_overridden.any()
    assert_within_limits(limits, start, velocity, out.positions)


@pytest.mark.parametrize("seed", range(5))
def test_stationary_target_is_reached_from_rest_without_overshoot(limits, seed):
    rng = np.random.default_rng(seed)
    a = limits.arrays
    start = rng.uniform(a["lower"], a["upper"])
    target = rng.uniform(a["lower"], a["upper"])
    out = SafetyFilter(limits).filter(np.tile(target, (60, 1)), DT, start, np.zeros(3))
    travelled = (out.positions - start) * np.sign(target - start)  # [H, J] progress towards the target
    # monotone but for the settling: the spline-safe plan (acceleration changes limited so that
    # the controller's cubic keeps the limit) can arrive still moving and step back by < 1.5 cm
    assert (np.diff(travelled, axis=0) >= -0.015).all()
    assert (travelled <= np.abs(target - start) + TOL).all()  # never beyond the target
    np.testing.assert_allclose(out.positions[-1], target, atol=1e-9)  # 6 s is plenty here
    assert_within_limits(limits, start, np.zeros(3), out.positions)


def test_moving_target_is_caught_up_with_and_then_tracked(limits):
    t = DT * np.arange(1, 41)
    chunk = np.stack([0.2 + 0.1 * t, 0.1 * t, -0.3 * t], axis=1)  # offset ahead, then constant speed
    out = SafetyFilter(limits).filter(chunk, DT, np.zeros(3))
    np.testing.assert_allclose(out.positions[-10:], chunk[-10:], atol=1e-9)
    assert_within_limits(limits, np.zeros(3), np.zeros(3), out.positions)


def test_impossible_start_overrides_acceleration_but_never_position(limits):
    start, velocity = np.array([0.99, 0.0, 0.0]), np.array([1.0, 0.0, 0.0])  # cannot stop in 1 cm
    out = SafetyFilter(limits).filter(np.tile([1.0, 0.0, 0.0], (8, 1)), DT, start, velocity)
    assert out.report.acceleration_overridden.tolist() == [True, False, False]
    assert "acceleration_overridden" in out.report.active_limits()
    assert_within_limits(limits, start, velocity, out.positions, check_acceleration=False)


def brake_feasible_state(rng, limits):
    """A random state from which every limit can be kept (inside braking distance)."""
    a = limits.arrays
    position = rng.uniform(a["lower"], a["upper"])
    velocity = rng.uniform(-a["max_velocity"], a["max_velocity"])
    room = np.where(velocity > 0, a["upper"] - position, position - a["lower"])
    # the spline-safe stop brakes at up to 2/3 of the limit, after a gentle first step and the
    # turn-around of the acceleration (taken as three periods at full speed)
    brake = 2 / 3 * a["max_acceleration"]
    dv = 3 * brake * DT
    reachable = -dv + np.sqrt(dv**2 + 2 * brake * room)
    return position, np.clip(velocity, -reachable, reachable)


@pytest.mark.parametrize("seed", range(40))
def test_random_chunks_never_violate_limits(limits, seed):
    rng = np.random.default_rng(seed)
    safety = SafetyFilter(limits)
    a = limits.arrays
    for _ in range(5):
        start, velocity = brake_feasible_state(rng, limits)
        horizon = int(rng.integers(1, 40))
        scale = rng.choice([0.01, 0.3, 3.0])  # smooth, jerky, wild (far outside the limits)
        chunk = start + np.cumsum(rng.normal(0.0, scale, size=(horizon, 3)), axis=0)
        out = safety.filter(chunk, DT, start, velocity)
        assert out.report.accepted and not out.report.acceleration_overridden.any()
        assert_within_limits(limits, start, velocity, out.positions)
        # reported velocities are consistent with the positions and within the limit
        np.testing.assert_allclose(out.velocities, point_velocities(start, out.positions, DT))
        assert (np.abs(out.velocities) <= a["max_velocity"] + TOL).all()


@pytest.mark.parametrize("seed", range(10))
def test_random_bad_starts_still_keep_position_and_velocity(limits, seed):
    rng = np.random.default_rng(1000 + seed)
    a = limits.arrays
    start = rng.uniform(a["lower"], a["upper"])
    velocity = rng.uniform(-3 * a["max_velocity"], 3 * a["max_velocity"])  # measured spikes
    chunk = rng.uniform(-4.0, 4.0, size=(20, 3))
    out = SafetyFilter(limits).filter(chunk, DT, start, velocity)
    assert_within_limits(limits, start, velocity, out.positions, check_acceleration=False)


# -- optional limits and braking ----------------------------------------------------------------

from moe_vla_ros.control.safety import braking_path


def test_limits_from_optional_lists():
    assert SafetyLimits.from_optional(NAMES, [], [], [], []) is None  # nothing configured
    only_motion = SafetyLimits.from_optional(NAMES, [], [], [1.0, 0.5, 2.0], 4.0)
    assert not only_motion.has_position_limits and only_motion.lower is None and only_motion.upper is None
    assert only_motion.configured == ("max_velocity", "max_acceleration")
    np.testing.assert_array_equal(only_motion.arrays["lower"], -np.inf)
    full = SafetyLimits.from_optional(NAMES, [-1, -1, -1], [1, 1, 1], [1, 1, 1], [])
    assert full.has_position_limits and not full.has_acceleration_limits
    assert full.configured == ("position", "max_velocity")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lower": [-1.0, -1.0, -1.0]}, "position limits need both lower and upper: lower is set, upper is not"),
        ({"upper": [1.0, 1.0, 1.0]}, "position limits need both lower and upper: upper is set, lower is not"),
        ({"max_velocity": [1.0, 2.0]}, "max_velocity has 2 values, expected 3"),
        ({"max_acceleration": [1.0, -2.0, 1.0]}, "max_acceleration must be > 0, got elbow=-2.0"),
    ],
)
def test_optional_limit_errors_name_the_bad_value(kwargs, message):
    with pytest.raises(SafetyConfigError, match=message):
        SafetyLimits.from_optional(NAMES, **kwargs)


def test_from_config_accepts_limits_set_to_none():
    limits = SafetyLimits.from_config(NAMES, {"lower": None, "upper": [], "max_velocity": 1.0, "max_acceleration": 2.0})
    assert not limits.has_position_limits and limits.max_velocity == (1.0, 1.0, 1.0)


def test_velocity_and_acceleration_limits_apply_without_position_limits():
    limits = SafetyLimits.from_optional(NAMES, max_velocity=[1.0, 0.5, 2.0], max_acceleration=4.0)
    start = np.array([5.0, -7.0, 0.0])  # far from anything a position limit would allow: no check
    targets = start + np.array([1.0, -1.0, 3.0]) * np.ones((10, 1))  # a jump of 1-3 rad
    out = SafetyFilter(limits).filter(targets, DT, start)
    assert out.report.accepted and out.report.velocity_limited.any() and out.report.acceleration_limited.all()
    assert_within_limits(limits, start, np.zeros(3), out.positions)
    # from rest the first interval velocity changes by FIRST_STEP_SHARE * A * dt (the spline's first segment)
    first = (out.positions[0] - start) * np.array([1.0, -1.0, 1.0])
    assert np.all(first > 0.0) and np.all(first <= FIRST_STEP_SHARE * 4.0 * DT**2 + TOL)
    np.testing.assert_allclose(first[[0, 2]], FIRST_STEP_SHARE * 4.0 * DT**2)


def test_acceleration_limit_alone_is_applied():
    limits = SafetyLimits.from_optional(("a",), max_acceleration=4.0)
    out = SafetyFilter(limits).filter(np.full((5, 1), 1.0), DT, np.zeros(1))
    v = interval_velocities(np.zeros(1), out.positions)
    assert np.abs(np.diff(np.concatenate([[[0.0]], v]), axis=0)).max() <= 4.0 * DT + TOL


def test_braking_path_stops_all_joints_together_within_the_acceleration_limit():
    q, v = np.array([0.0, 1.0]), np.array([1.0, -0.5])
    positions, velocities = braking_path(q, v, DT, np.array([4.0, 4.0]))
    # joint 0 needs 0.25 s -> 3 periods; both stop at 0.3 s, decelerating at 3.33 and 1.67 rad/s^2
    np.testing.assert_allclose(positions[-1], q + 0.5 * v * 0.3)
    np.testing.assert_allclose(velocities, [[2 / 3, -1 / 3], [1 / 3, -1 / 6], [0.0, 0.0]], atol=1e-12)
    assert np.all(velocities[-1] == 0.0)
    at_rest, rest_v = braking_path(q, np.zeros(2), DT, np.array([4.0, 4.0]))
    np.testing.assert_array_equal(at_rest, [q]) and np.testing.assert_array_equal(rest_v, [[0.0, 0.0]])
    clipped, _ = braking_path(np.array([0.99]), np.array([1.0]), DT, np.array([4.0]), np.array([-1.0]), np.array([1.0]))
    assert clipped.max() <= 1.0
