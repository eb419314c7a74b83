"""Tests of moe_vla_ros/control/input_checks.py: the checks every input message passes."""

import numpy as np
import pytest

from moe_vla_ros.control.input_checks import (
    FROZEN,
    JUMP,
    NON_FINITE,
    OUT_OF_LIMITS,
    STAMP_IN_FUTURE,
    STAMP_NOT_NEWER,
    STAMP_TOO_OLD,
    STAMP_ZERO,
    TRACKING_ERROR,
    InputCheckConfig,
    InputChecker,
)
from moe_vla_ros.control.safety import SafetyLimits

NAMES = ("joint_1", "joint_2")
LIMITS = SafetyLimits(NAMES, (-2.0, -2.0), (2.0, 2.0), (1.0, 1.0), (4.0, 4.0))


def checker(limits=LIMITS, **config):
    return InputChecker(InputCheckConfig(**config), NAMES, limits)


def no_plan(t):
    return None


@pytest.mark.parametrize(
    "stamp, code, text",
    [
        (0.0, STAMP_ZERO, "camera/front rejected: header stamp is 0.0 (unset)"),
        (10.3, STAMP_IN_FUTURE, "camera/front rejected: stamp 0.300 s in the future (max 0.05 s)"),
        (9.2, STAMP_TOO_OLD, "camera/front rejected: stamp 0.800 s old (max 0.5 s)"),
    ],
)
def test_stamp_checks(stamp, code, text):
    rejection = checker().check_stamp("camera/front", stamp, 10.0)
    assert rejection.code == code and rejection.text == text and rejection.key == f"camera/front/{code}"
    assert not rejection.is_state_fault


def test_stamps_must_increase_per_input():
    c = checker()
    assert c.check_stamp("camera/front", 9.9, 10.0) is None
    c.accept_stamp("camera/front", 9.9)
    assert c.check_stamp("camera/front", 9.9, 10.0).code == STAMP_NOT_NEWER
    assert c.check_stamp("camera/wrist", 9.9, 10.0) is None  # per input


def test_joint_state_checks_name_the_joint():
    c = checker()
    r = c.check_joint_state("joint_states", 10.0, np.array([0.0, 3.05]), 10.0, no_plan)
    assert r.code == OUT_OF_LIMITS and r.is_state_fault
    assert r.text == "joint_states rejected: joint_2 at 3.05 rad outside [-2.0, 2.0]+0.05"
    assert c.check_joint_state("joint_states", 10.0, np.array([2.04, 0.0]), 10.0, no_plan) is None  # tolerance
    r = c.check_joint_state("joint_states", 10.0, np.array([np.nan, 0.0]), 10.0, no_plan)
    assert r.code == NON_FINITE and r.text == "joint_states rejected: joint_1 position is nan"


def test_jump_between_consecutive_joint_states():
    c = checker()
    c.accept_joint_state("joint_states", 10.0, np.array([0.02, 0.01]), None)
    # 10 ms later: at most 1.5 * 1 rad/s * 0.01 s + 0.02 = 0.035 rad
    assert c.check_joint_state("joint_states", 10.01, np.array([0.05, 0.01]), 10.01, no_plan) is None
    degrees = np.degrees([0.02, 0.01])  # [1.15, 0.57]: inside the position limits, but no arm moves so fast
    r = c.check_joint_state("joint_states", 10.01, degrees, 10.01, no_plan)
    assert r.code == JUMP and r.is_state_fault
    assert r.text == ("joint_states rejected: joint_1 jumped 1.126 rad in 0.010 s "
                      "(max 0.035 rad: 1.5 x 1.0 rad/s + 0.02)")
    assert checker(limits=None).check_joint_state("joint_states", 10.01, degrees, 10.01, no_plan) is None


def test_frozen_values_only_while_the_plan_moves():
    c = checker(frozen_after_s=0.3, frozen_min_motion_rad=0.02)
    q = np.array([0.5, 0.5])
    plan = lambda t: np.array([0.5 + 0.1 * (t - 10.0), 0.5])
    c.accept_joint_state("joint_states", 10.0, q, plan(10.0))
    for k in range(1, 30):  # 0.29 s identical, plan moved 0.029 rad: not yet
        t = 10.0 + 0.01 * k
        assert c.check_joint_state("joint_states", t, q, t, plan) is None
        c.accept_joint_state("joint_states", t, q, plan(t))
    r = c.check_joint_state("joint_states", 10.31, q, 10.31, plan)
    assert r.code == FROZEN and "identical for 0.310 s while the plan moved 0.031 rad" in r.text
    assert c.check_joint_state("joint_states", 10.31, q, 10.31, no_plan) is None  # holding: not frozen


def test_tracking_error():
    c = checker(max_tracking_error_rad=0.2)
    plan = lambda t: np.array([0.0, 1.0])
    r = c.check_joint_state("joint_states", 10.0, np.array([0.0, 0.75]), 10.0, plan)
    assert r.code == TRACKING_ERROR
    assert r.text == ("joint_states rejected: joint_2 at 0.75 rad is 0.25 rad from the commanded 1 (max 0.2): "
                      "the arm does not follow")
    assert c.check_joint_state("joint_states", 10.0, np.array([0.0, 0.85]), 10.0, plan) is None


@pytest.mark.parametrize(
    "change, message",
    [
        ({"position_tolerance_rad": -0.1}, "position_tolerance_rad must be a number >= 0, got -0.1"),
        ({"jump_velocity_factor": 0.0}, "jump_velocity_factor must be a number > 0 or None, got 0.0"),
        ({"frozen_after_s": float("inf")}, "frozen_after_s must be a number > 0 or None, got inf"),
        ({"max_stamp_age_s": None}, "max_stamp_age_s must be a number > 0, got None"),
        ({"max_stamp_future_s": True}, "max_stamp_future_s must be a number >= 0, got True"),
    ],
)
def test_config_validation_names_the_bad_value(change, message):
    with pytest.raises(ValueError, match=message):
        InputCheckConfig(**change)


def test_from_params_turns_non_positive_optional_checks_off():
    params = {"max_tracking_error_rad": 0.0, "frozen_after_s": -1.0, "max_stamp_age_s": 0.3}
    config = InputCheckConfig.from_params(params)
    assert config.max_tracking_error_rad is None and config.frozen_after_s is None and config.max_stamp_age_s == 0.3
    with pytest.raises(ValueError, match=r"unknown input check fields \['tracking'\]"):
        InputCheckConfig.from_params({"tracking": 0.1})
