"""Damped-least-squares IK of the gripper site."""

from __future__ import annotations

import numpy as np
import pytest

from moe_vla_ros.sim.arm_sim import HOME_ARM_POSITIONS
from moe_vla_ros.sim.config import ARM_JOINT_NAMES
from moe_vla_ros.sim.kinematics import GripperIK, orientation_error, top_down_rotation


@pytest.fixture
def ik(sim):
    return GripperIK(sim.model)


def test_top_down_rotation_is_a_rotation_with_fingers_down():
    for yaw in (0.0, 0.7, -2.0):
        rot = top_down_rotation(yaw)
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rot) == pytest.approx(1.0)
        np.testing.assert_allclose(rot[:, 2], [0, 0, -1])
        np.testing.assert_allclose(rot[:, 1], [-np.sin(yaw), np.cos(yaw), 0], atol=1e-12)


def test_orientation_error_is_the_rotation_vector_between_frames():
    np.testing.assert_allclose(orientation_error(top_down_rotation(0.3), top_down_rotation(0.3)), 0, atol=1e-9)
    np.testing.assert_allclose(orientation_error(top_down_rotation(0.0), top_down_rotation(0.2)), [0, 0, 0.2], atol=1e-9)


def test_forward_matches_the_simulation(sim, ik):
    pos, rot = ik.forward(sim.joint_positions()[:6])
    np.testing.assert_allclose(pos, sim.gripper_position(), atol=1e-9)
    np.testing.assert_allclose(rot, sim.gripper_rotation(), atol=1e-9)


@pytest.mark.parametrize("target", [(0.32, 0.2, 0.02), (0.5, -0.2, 0.02), (0.45, 0.0, 0.15), (0.3, -0.3, 0.05)])
def test_solves_top_down_poses_over_the_workspace(ik, target):
    yaw = float(np.arctan2(target[1], target[0]))
    result = ik.solve(np.array(HOME_ARM_POSITIONS), np.array(target), top_down_rotation(yaw), max_iterations=100)
    assert result.converged(), result
    pos, rot = ik.forward(result.joint_positions)
    np.testing.assert_allclose(pos, target, atol=2e-3)
    assert np.linalg.norm(orientation_error(rot, top_down_rotation(yaw))) < 0.02


def test_joint_limits_are_respected_for_unreachable_targets(sim, ik):
    result = ik.solve(np.array(HOME_ARM_POSITIONS), np.array([2.0, 0.0, 0.0]), max_iterations=50)
    assert not result.converged()
    ranges = np.array([sim.model.joint(name).range for name in ARM_JOINT_NAMES])  # [6, 2]
    assert np.all(result.joint_positions >= ranges[:, 0]) and np.all(result.joint_positions <= ranges[:, 1])


def test_invalid_parameters_are_rejected(sim):
    with pytest.raises(ValueError, match="damping=0"):
        GripperIK(sim.model, damping=0)
