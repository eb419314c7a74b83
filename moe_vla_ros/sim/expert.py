"""Scripted expert: solves the cube tasks from the simulator state with damped-least-squares IK.

The expert reads privileged state (cube poses, gripper site); the learned policy will not.
Each task is a short sequence of sub-goals (phases). At every control step the expert moves a
Cartesian setpoint towards the current sub-goal at a bounded speed, turns it into arm joint
targets with `GripperIK` (fingers pointing down, a task-dependent yaw) and adds the gripper
command. A phase ends when the measured gripper site has reached its sub-goal (or, for the
grasp, after a fixed time); each phase has its own reasoning trace.

Phases:
  reach: approach (above the cube) -> descend -> reached
  push:  approach_side (above a point beside the cube) -> descend_side -> push -> retreat -> pushed
         (the gripper opens for the retreat, so the joint state tells "pushed" from "not yet")
  lift:  approach -> descend_around -> grasp -> lift -> lifted (back to approach if the cube slips)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from moe_vla_ros.errors import BadInputError
from moe_vla_ros.sim.arm_sim import ArmSim
from moe_vla_ros.sim.config import CUBE_HALF_SIZE, GRIPPER_CLOSED, GRIPPER_OPEN
from moe_vla_ros.sim.kinematics import GripperIK, top_down_rotation
from moe_vla_ros.sim.reasoning_templates import TEMPLATES, relation, render_trace
from moe_vla_ros.sim.tasks import PUSH_GOAL_DISTANCE_M, Task, TaskMonitor, direction_sign, reach_point
from moe_vla_ros.validation import require_number, require_positive

FINGER_HALF_LENGTH_ACROSS = 0.012  # m, finger extent along the push direction (finger box x half-size)
GRASP_SITE_HEIGHT = 0.015  # m, gripper site height when grasping (fingertips 1 cm above the table)
PUSH_SITE_HEIGHT = 0.02  # m, gripper site height when pushing (cube mid-height)
PHASES = tuple(TEMPLATES)  # every phase of every task; each has its reasoning template
FINAL_PHASES = ("reached", "pushed", "lifted")
MIN_OPENING_DIFFERENCE_M = 0.01  # m, retreat vs push gripper opening (ExpertConfig.retreat_opening_m)
APPROACH_PHASES = ("approach", "approach_side", "descend", "descend_side", "descend_around")  # towards the cube


@dataclass(frozen=True)
class ExpertConfig:
    """Motion parameters of the scripted expert.

    Attributes:
        free_speed_mps: Cartesian speed of the gripper in free space.
        slow_speed_mps: speed when descending, pushing or lifting.
        yaw_rate_radps: how fast the gripper yaw setpoint turns.
        hover_height_m: gripper site height above the cube top while approaching.
        waypoint_tolerance_m: the measured gripper site within this distance of a sub-goal
            has reached it.
        push_distance_m: how far the expert pushes the cube (success needs less).
        push_standoff_m: gap between the fingers and the cube face before pushing.
        push_opening_m: gripper joint value while pushing (two-finger paddle).
        retreat_opening_m: gripper joint value once the push is over (retreat, pushed). It must
            differ from push_opening_m: hovering behind the pushed cube looks like hovering
            behind the unpushed one (the cube's start is not in the picture), and the gripper
            joint is what tells a policy without memory that the push is done.
        grasp_duration_s: time spent closing the gripper before lifting.
        lift_height_m: how high the cube bottom is lifted.
    """

    free_speed_mps: float = 0.30
    slow_speed_mps: float = 0.10
    yaw_rate_radps: float = 2.0
    hover_height_m: float = 0.07
    waypoint_tolerance_m: float = 0.012
    push_distance_m: float = PUSH_GOAL_DISTANCE_M
    push_standoff_m: float = 0.025
    push_opening_m: float = 0.035
    retreat_opening_m: float = GRIPPER_OPEN
    grasp_duration_s: float = 0.6
    lift_height_m: float = 0.09

    def __post_init__(self) -> None:
        for name in ("free_speed_mps", "slow_speed_mps", "yaw_rate_radps", "hover_height_m",
                     "waypoint_tolerance_m", "push_distance_m", "push_standoff_m", "grasp_duration_s",
                     "lift_height_m"):
            require_positive(f"ExpertConfig.{name}", getattr(self, name))
        require_number("ExpertConfig.push_opening_m", self.push_opening_m, GRIPPER_OPEN, GRIPPER_CLOSED)
        require_number("ExpertConfig.retreat_opening_m", self.retreat_opening_m, GRIPPER_OPEN, GRIPPER_CLOSED)
        if abs(self.retreat_opening_m - self.push_opening_m) < MIN_OPENING_DIFFERENCE_M:
            raise BadInputError(
                f"ExpertConfig.retreat_opening_m ({self.retreat_opening_m}) must differ from push_opening_m "
                f"({self.push_opening_m}) by >= {MIN_OPENING_DIFFERENCE_M} m: the gripper joint is what tells "
                "the pose after the push from the one before it")


@dataclass(frozen=True)
class ExpertAction:
    """What the expert commands at one control step."""

    joint_targets: np.ndarray  # [7] arm joints (rad) + gripper (m), JOINT_NAMES order
    reasoning: str
    phase: str

    @property
    def done(self) -> bool:
        """The expert has finished its script (it holds the final pose)."""
        return self.phase in FINAL_PHASES


@dataclass(frozen=True)
class _SubGoal:
    position: np.ndarray  # [3] gripper site target (m)
    yaw: float  # rad, see top_down_rotation
    gripper: float  # gripper joint command (m)
    speed: float  # m/s


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def _cube_yaw(quat: np.ndarray) -> float:
    w, x, y, z = quat
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


class ScriptedExpert:
    """Solves one task per episode on `sim`; call `reset(task)` at every episode start."""

    def __init__(self, sim: ArmSim, config: ExpertConfig | None = None) -> None:
        self.sim = sim
        self.config = config or ExpertConfig()
        self.ik = GripperIK(sim.model)
        self.task: Task | None = None
        self.monitor: TaskMonitor | None = None

    def reset(self, task: Task) -> None:
        """Start `task` from the current sim state (call after `sim.reset`)."""
        self.task = task
        self.monitor = task.start(self.sim)
        self._phase = {"reach": "approach", "push": "approach_side", "lift": "approach"}[task.family]
        self._phase_start = self.sim.time
        self._setpoint = self.sim.gripper_position()
        self._yaw = self._current_yaw()
        self._arm_targets = self.sim.joint_targets()[:6]
        self._push_goal_y = 0.0

    @property
    def phase(self) -> str:
        return self._phase

    def _current_yaw(self) -> float:
        closing = self.sim.gripper_rotation()[:, 1]  # site y axis = closing direction
        return math.atan2(-closing[0], closing[1])

    # ------------------------------------------------------------------ sub-goals
    def _face_yaw(self, cube_quat: np.ndarray, cube_pos: np.ndarray) -> float:
        """Yaw that closes the fingers on two opposite cube faces, nearest the radial yaw."""
        radial = math.atan2(cube_pos[1], cube_pos[0])
        return radial + _wrap(4 * (_cube_yaw(cube_quat) - radial)) / 4

    def _sub_goal(self, cube_pos: np.ndarray, cube_quat: np.ndarray) -> _SubGoal:
        c, task, phase = self.config, self.task, self._phase
        top = cube_pos[2] + CUBE_HALF_SIZE
        hover = np.array([cube_pos[0], cube_pos[1], top + c.hover_height_m])
        radial = math.atan2(cube_pos[1], cube_pos[0])
        if task.family == "reach":
            if phase == "approach":
                return _SubGoal(hover, radial, GRIPPER_OPEN, c.free_speed_mps)
            return _SubGoal(reach_point(cube_pos), radial, GRIPPER_OPEN, c.slow_speed_mps)
        if task.family == "push":
            sign = direction_sign(task.direction)
            yaw = math.pi / 2 if radial >= 0 else -math.pi / 2  # fingers side by side along x: a paddle
            contact = CUBE_HALF_SIZE * math.sqrt(2) + FINGER_HALF_LENGTH_ACROSS
            side = np.array([self.monitor.cube_start[0], cube_pos[1] - sign * (contact + c.push_standoff_m)])
            if phase == "approach_side":
                return _SubGoal(np.append(side, hover[2]), yaw, c.push_opening_m, c.free_speed_mps)
            if phase == "descend_side":
                return _SubGoal(np.append(side, PUSH_SITE_HEIGHT), yaw, c.push_opening_m, c.slow_speed_mps)
            if phase == "push":  # along y on the line through the cube's start position
                goal = np.array([self.monitor.cube_start[0], self._push_goal_y, PUSH_SITE_HEIGHT])
                return _SubGoal(goal, yaw, c.push_opening_m, c.slow_speed_mps)
            up = self._setpoint.copy()  # retreat, pushed: straight up, the gripper marks "done"
            up[2] = hover[2]
            return _SubGoal(up, yaw, c.retreat_opening_m, c.slow_speed_mps)
        yaw = self._face_yaw(cube_quat, cube_pos)
        if phase == "approach":
            return _SubGoal(hover, yaw, GRIPPER_OPEN, c.free_speed_mps)
        if phase == "descend_around":
            goal = np.array([cube_pos[0], cube_pos[1], GRASP_SITE_HEIGHT])
            return _SubGoal(goal, yaw, GRIPPER_OPEN, c.slow_speed_mps)
        if phase == "grasp":
            return _SubGoal(self._setpoint.copy(), self._yaw, GRIPPER_CLOSED, c.slow_speed_mps)
        lifted = self._setpoint.copy()
        lifted[2] = GRASP_SITE_HEIGHT + c.lift_height_m
        return _SubGoal(lifted, self._yaw, GRIPPER_CLOSED, c.slow_speed_mps)

    def _advance_phase(self, goal: _SubGoal, cube_pos: np.ndarray) -> bool:
        """Switch to the next phase if the current one is complete; True if switched."""
        c, phase = self.config, self._phase
        gripper = self.sim.gripper_position()
        arrived = (
            np.linalg.norm(self._setpoint - goal.position) < 1e-6
            and np.linalg.norm(gripper - goal.position) <= c.waypoint_tolerance_m
        )
        elapsed = self.sim.time - self._phase_start
        nxt = None
        if phase == "approach" and arrived:
            nxt = "descend" if self.task.family == "reach" else "descend_around"
        elif phase == "descend" and arrived:
            nxt = "reached"
        elif phase == "approach_side" and arrived:
            nxt = "descend_side"
        elif phase == "descend_side" and arrived:
            sign = direction_sign(self.task.direction)
            contact = CUBE_HALF_SIZE + FINGER_HALF_LENGTH_ACROSS
            self._push_goal_y = self.monitor.cube_start[1] + sign * (c.push_distance_m - contact)
            nxt = "push"
        elif phase == "push":
            moved = direction_sign(self.task.direction) * self.monitor.cube_displacement(self.sim)[1]
            if arrived or moved >= c.push_distance_m - 0.01:
                nxt = "retreat"
        elif phase == "retreat" and arrived:
            nxt = "pushed"
        elif phase == "descend_around" and arrived:
            nxt = "grasp"
        elif phase == "grasp" and elapsed >= c.grasp_duration_s:
            nxt = "lift"
        elif phase in ("lift", "lifted"):
            if gripper[2] - cube_pos[2] > 0.04:  # the cube slipped out: try again
                nxt = "approach"
            elif phase == "lift" and arrived:
                nxt = "lifted"
        if nxt is None:
            return False
        self._phase, self._phase_start = nxt, self.sim.time
        return True

    # ---------------------------------------------------------------------- step
    def act(self) -> ExpertAction:
        """Joint targets for the next control period and the reasoning trace behind them."""
        if self.task is None:
            raise RuntimeError("call reset(task) before act()")
        cube_pos, cube_quat = self.sim.cube_pose(self.task.color)
        goal = self._sub_goal(cube_pos, cube_quat)
        if self._advance_phase(goal, cube_pos):
            goal = self._sub_goal(cube_pos, cube_quat)
        dt = self.sim.config.control_period_s
        delta = goal.position - self._setpoint
        distance = float(np.linalg.norm(delta))
        step = goal.speed * dt
        self._setpoint = goal.position.copy() if distance <= step else self._setpoint + delta * (step / distance)
        yaw_error = _wrap(goal.yaw - self._yaw)
        self._yaw += float(np.clip(yaw_error, -self.config.yaw_rate_radps * dt, self.config.yaw_rate_radps * dt))
        solution = self.ik.solve(self._arm_targets, self._setpoint, top_down_rotation(self._yaw))
        self._arm_targets = solution.joint_positions
        targets = np.concatenate([self._arm_targets, [goal.gripper]])
        return ExpertAction(targets, self._trace(cube_pos), self._phase)

    def _trace(self, cube_pos: np.ndarray) -> str:
        color, phase = self.task.color, self._phase
        gripper = self.sim.gripper_position()
        if phase in ("approach", "approach_side"):
            distance = float(np.linalg.norm(cube_pos - gripper))
            return render_trace(phase, color, relation=relation(gripper, cube_pos), cm=distance)
        if phase == "push":
            moved = direction_sign(self.task.direction) * self.monitor.cube_displacement(self.sim)[1]
            return render_trace(phase, color, direction=self.task.direction, togo=max(self.config.push_distance_m - moved, 0.0))
        if phase in ("retreat", "pushed"):
            moved = direction_sign(self.task.direction) * self.monitor.cube_displacement(self.sim)[1]
            return render_trace(phase, color, direction=self.task.direction, cm=max(moved, 0.0))
        if phase == "lift":
            togo = self.config.lift_height_m - (cube_pos[2] - CUBE_HALF_SIZE)
            return render_trace(phase, color, togo=max(togo, 0.0))
        return render_trace(phase, color)
