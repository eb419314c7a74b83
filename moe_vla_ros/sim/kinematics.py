"""Damped-least-squares inverse kinematics of the gripper site (MuJoCo's mj_jacSite).

The solver works on its own scratch `MjData`, so it never disturbs the simulation state.
Orientation targets are rotation matrices of the gripper site; `top_down_rotation(yaw)` builds
the usual "fingers pointing down" orientation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from moe_vla_ros.sim.config import ARM_JOINT_NAMES, GRIPPER_SITE
from moe_vla_ros.sim.mujoco_backend import mujoco


def top_down_rotation(yaw: float) -> np.ndarray:
    """Site rotation (columns = site axes in the world) with the fingers pointing down (-z)
    and the closing direction (site y) at angle `yaw` from the world y axis, about z."""
    c, s = np.cos(yaw), np.sin(yaw)
    x_axis = np.array([-c, -s, 0.0])
    y_axis = np.array([-s, c, 0.0])
    z_axis = np.array([0.0, 0.0, -1.0])
    return np.column_stack([x_axis, y_axis, z_axis])


def orientation_error(current: np.ndarray, desired: np.ndarray) -> np.ndarray:
    """Rotation vector (world frame, rad) that turns `current` into `desired` (3x3 matrices)."""
    q_cur, q_des, q_err = np.empty(4), np.empty(4), np.empty(4)
    mujoco.mju_mat2Quat(q_cur, np.ascontiguousarray(current).ravel())
    mujoco.mju_mat2Quat(q_des, np.ascontiguousarray(desired).ravel())
    mujoco.mju_negQuat(q_cur, q_cur)
    mujoco.mju_mulQuat(q_err, q_des, q_cur)
    if q_err[0] < 0:  # shortest rotation
        q_err = -q_err
    rotvec = np.empty(3)
    mujoco.mju_quat2Vel(rotvec, q_err, 1.0)
    return rotvec


@dataclass(frozen=True)
class IKResult:
    """Outcome of one solve: joint positions (arm joints only), residual errors, iterations."""

    joint_positions: np.ndarray
    position_error: float  # m
    orientation_error: float  # rad
    iterations: int

    def converged(self, position_tol: float = 2e-3, orientation_tol: float = 0.02) -> bool:
        return self.position_error <= position_tol and self.orientation_error <= orientation_tol


class GripperIK:
    """Damped-least-squares IK for the pose of the gripper site, over the arm joints.

    Args:
        model: the MuJoCo model (shared, read-only here).
        joint_names: joints the solver moves, in the order of its vectors.
        damping: DLS damping lambda; larger = smoother, slower convergence near singularities.
        orientation_weight: metres of position error equivalent to one radian of orientation error.
        max_step_rad: largest change of any joint in one iteration.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        joint_names: Sequence[str] = ARM_JOINT_NAMES,
        damping: float = 0.03,
        orientation_weight: float = 0.15,
        max_step_rad: float = 0.2,
    ) -> None:
        if damping <= 0 or orientation_weight < 0 or max_step_rad <= 0:
            raise ValueError(
                f"damping and max_step_rad must be > 0 and orientation_weight >= 0, got "
                f"damping={damping!r} orientation_weight={orientation_weight!r} max_step_rad={max_step_rad!r}"
            )
        self.model = model
        self.data = mujoco.MjData(model)
        self.damping = float(damping)
        self.orientation_weight = float(orientation_weight)
        self.max_step_rad = float(max_step_rad)
        joints = [model.joint(name) for name in joint_names]
        self._qpos_adr = np.array([int(j.qposadr[0]) for j in joints])
        self._dof_adr = np.array([int(j.dofadr[0]) for j in joints])
        self._lower = np.array([float(j.range[0]) for j in joints])
        self._upper = np.array([float(j.range[1]) for j in joints])
        self._site_id = model.site(GRIPPER_SITE).id
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def forward(self, joint_positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gripper site (position [3], rotation [3, 3]) for the given arm joint positions."""
        self.data.qpos[self._qpos_adr] = joint_positions
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self._site_id].copy(), self.data.site_xmat[self._site_id].reshape(3, 3).copy()

    def solve(
        self,
        initial: np.ndarray,
        target_position: np.ndarray,
        target_rotation: np.ndarray | None = None,
        max_iterations: int = 30,
        position_tol: float = 5e-4,
        orientation_tol: float = 5e-3,
    ) -> IKResult:
        """Iterate from `initial` (arm joint positions) towards the target pose; joint limits
        are enforced at every iteration. Returns the best iterate, converged or not."""
        q = np.clip(np.asarray(initial, dtype=np.float64).copy(), self._lower, self._upper)
        target_position = np.asarray(target_position, dtype=np.float64)
        for iteration in range(max_iterations + 1):
            pos, rot = self.forward(q)
            pos_err = target_position - pos
            rot_err = np.zeros(3) if target_rotation is None else orientation_error(rot, target_rotation)
            pos_norm, rot_norm = float(np.linalg.norm(pos_err)), float(np.linalg.norm(rot_err))
            if (pos_norm <= position_tol and rot_norm <= orientation_tol) or iteration == max_iterations:
                break
            mujoco.mj_comPos(self.model, self.data)
            mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self._site_id)
            jac_p = self._jacp[:, self._dof_adr]  # [3, n]
            if target_rotation is None:
                jac, err = jac_p, pos_err
            else:
                w = self.orientation_weight
                jac = np.vstack([jac_p, w * self._jacr[:, self._dof_adr]])  # [6, n]
                err = np.concatenate([pos_err, w * rot_err])  # [6]
            jjt = jac @ jac.T + (self.damping**2) * np.eye(jac.shape[0])
            dq = jac.T @ np.linalg.solve(jjt, err)  # [n]
            largest = float(np.max(np.abs(dq)))
            if largest > self.max_step_rad:
                dq *= self.max_step_rad / largest
            q = np.clip(q + dq, self._lower, self._upper)
        return IKResult(q, pos_norm, rot_norm, iteration)
