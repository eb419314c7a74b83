"""Language-conditioned tasks on the cube table: instruction, success check, time limit.

Families:
  reach  "reach the <color> cube": the gripper site ends just above the cube's top face.
  push   "push the <color> cube to the left|right": the cube slides along y by at least
         PUSH_SUCCESS_DISTANCE_M. Left/right are the robot's (+y is left, REP 103); in the
         "front" camera, which faces the robot, the robot's left is the image's right.
         A white line across the table (along x) marks the push goal, PUSH_GOAL_DISTANCE_M from
         the cube's start in the named direction: it makes the push's progress visible in every
         frame (a policy without memory cannot otherwise tell "pushed 6 cm" from "pushed 12 cm").
  lift   "lift the <color> cube": the cube is held LIFT_SUCCESS_HEIGHT_M above the table.

Each family has a few instruction paraphrases; `sample_task` draws family members
deterministically from a numpy Generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from moe_vla_ros.errors import BadInputError
from moe_vla_ros.sim.arm_sim import ArmSim
from moe_vla_ros.sim.config import CUBE_COLORS, CUBE_HALF_SIZE

TASK_FAMILIES = ("reach", "push", "lift")
PUSH_DIRECTIONS = ("left", "right")  # robot's left (+y) / right (-y)

INSTRUCTION_TEMPLATES: dict[str, tuple[str, ...]] = {
    "reach": (
        "reach the {color} cube",
        "move the gripper to the {color} cube",
        "go to the {color} cube",
        "touch the {color} cube",
    ),
    "push": (
        "push the {color} cube to the {direction}",
        "slide the {color} cube to the {direction}",
        "move the {color} cube to the {direction}",
        "push the {color} cube {direction}",
    ),
    "lift": (
        "lift the {color} cube",
        "pick up the {color} cube",
        "raise the {color} cube",
        "grab the {color} cube and lift it",
    ),
}

MAX_DURATION_S = {"reach": 6.0, "push": 10.0, "lift": 10.0}

# Success thresholds.
REACH_HEIGHT_ABOVE_TOP_M = 0.015  # where "at the cube" is: this far above the top face centre
REACH_TOLERANCE_M = 0.02  # gripper site within this distance of that point
PUSH_SUCCESS_DISTANCE_M = 0.08  # cube displacement along the push direction
PUSH_GOAL_DISTANCE_M = 0.12  # where the push-goal line lies: this far from the cube's start
LIFT_SUCCESS_HEIGHT_M = 0.05  # cube bottom above the table
LIFT_HOLD_RADIUS_M = 0.03  # a lifted cube counts as held with its centre this close to the gripper's (xy)
TABLE_HALF_EXTENT_X = (-0.15, 0.85)  # table top, x range (m)
TABLE_HALF_EXTENT_Y = (-0.55, 0.55)  # table top, y range (m)


class TaskError(BadInputError):
    """A task was specified with an invalid family, color, direction or duration."""


def direction_sign(direction: str) -> float:
    """+1 for "left" (+y), -1 for "right" (-y)."""
    if direction not in PUSH_DIRECTIONS:
        raise TaskError(f"direction must be one of {PUSH_DIRECTIONS}, got {direction!r}")
    return 1.0 if direction == "left" else -1.0


def reach_point(cube_position: np.ndarray) -> np.ndarray:
    """Where the gripper site should be to have reached a cube centred at `cube_position`."""
    return np.asarray(cube_position, dtype=np.float64) + (0.0, 0.0, CUBE_HALF_SIZE + REACH_HEIGHT_ABOVE_TOP_M)


def push_goal_for(cube_start: np.ndarray, direction: str) -> np.ndarray:
    """Centre [2] (x, y in m) of the push-goal line for a cube starting at `cube_start`."""
    return np.asarray(cube_start[:2], dtype=np.float64) + (0.0, direction_sign(direction) * PUSH_GOAL_DISTANCE_M)


@dataclass(frozen=True)
class Task:
    """One task instance.

    Attributes:
        family: one of TASK_FAMILIES.
        color: target cube color, one of CUBE_COLORS.
        direction: "left"/"right" for push, None otherwise.
        instruction: the language instruction given to the policy.
        max_duration_s: episode time limit in seconds.
    """

    family: str
    color: str
    direction: str | None = None
    instruction: str = ""
    max_duration_s: float = 0.0

    def __post_init__(self) -> None:
        if self.family not in TASK_FAMILIES:
            raise TaskError(f"family must be one of {TASK_FAMILIES}, got {self.family!r}")
        if self.color not in CUBE_COLORS:
            raise TaskError(f"color must be one of {CUBE_COLORS}, got {self.color!r}")
        if self.family == "push":
            direction_sign(self.direction)
        elif self.direction is not None:
            raise TaskError(f"direction is only used by push tasks, got {self.direction!r} for {self.family!r}")
        if not self.instruction:
            object.__setattr__(self, "instruction", instruction_for(self.family, self.color, self.direction))
        if self.max_duration_s == 0.0:
            object.__setattr__(self, "max_duration_s", MAX_DURATION_S[self.family])
        if not 0.5 <= self.max_duration_s <= 120.0:
            raise TaskError(f"max_duration_s must be in [0.5, 120] s, got {self.max_duration_s!r}")

    def start(self, sim: ArmSim) -> TaskMonitor:
        """Remember the state the success check is relative to and lay out the task's scene
        (the push-goal line for push, none otherwise); call at the episode start."""
        cube_start = sim.cube_pose(self.color)[0]
        sim.show_push_goal(push_goal_for(cube_start, self.direction) if self.family == "push" else None)
        return TaskMonitor(self, cube_start)


@dataclass(frozen=True)
class TaskMonitor:
    """Success check of a task relative to the cube position at the episode start."""

    task: Task
    cube_start: np.ndarray

    def cube_displacement(self, sim: ArmSim) -> np.ndarray:
        return sim.cube_pose(self.task.color)[0] - self.cube_start

    def is_success(self, sim: ArmSim) -> bool:
        return self.shortfall_m(sim) == 0.0

    def shortfall_m(self, sim: ArmSim) -> float:
        """How far from success the scene is now, in metres (0.0 = success): reach, the gripper
        site's distance beyond the tolerance around the reach point; push, the displacement still
        missing along the named direction (inf once the cube left the table); lift, the missing
        height and the gripper's horizontal distance beyond the holding radius, combined."""
        cube = sim.cube_pose(self.task.color)[0]
        gripper = sim.gripper_position()
        if self.task.family == "reach":
            return max(float(np.linalg.norm(gripper - reach_point(cube))) - REACH_TOLERANCE_M, 0.0)
        if self.task.family == "push":
            on_table = (
                TABLE_HALF_EXTENT_X[0] < cube[0] < TABLE_HALF_EXTENT_X[1]
                and TABLE_HALF_EXTENT_Y[0] < cube[1] < TABLE_HALF_EXTENT_Y[1]
                and cube[2] < CUBE_HALF_SIZE + 0.01
            )
            moved = direction_sign(self.task.direction) * (cube[1] - self.cube_start[1])
            return max(PUSH_SUCCESS_DISTANCE_M - float(moved), 0.0) if on_table else math.inf
        # lift: cube raised and still between the fingers
        missing_height = max(LIFT_SUCCESS_HEIGHT_M - float(cube[2] - CUBE_HALF_SIZE), 0.0)
        off_centre = max(float(np.linalg.norm(gripper[:2] - cube[:2])) - LIFT_HOLD_RADIUS_M, 0.0)
        return math.hypot(missing_height, off_centre)


def instruction_for(family: str, color: str, direction: str | None = None, paraphrase: int = 0) -> str:
    """Instruction text from the `paraphrase`-th template of `family`."""
    if family not in INSTRUCTION_TEMPLATES:
        raise TaskError(f"family must be one of {TASK_FAMILIES}, got {family!r}")
    templates = INSTRUCTION_TEMPLATES[family]
    return templates[paraphrase % len(templates)].format(color=color, direction=direction)


def instruction_words(families: tuple[str, ...] = TASK_FAMILIES) -> list[str]:
    """Every word an instruction of `families` can hold (templates filled with every color and direction)."""
    words: set[str] = set()
    for family in families:
        for paraphrase in range(len(INSTRUCTION_TEMPLATES[family])):
            for color in CUBE_COLORS:
                for direction in PUSH_DIRECTIONS if family == "push" else (None,):
                    words.update(instruction_for(family, color, direction, paraphrase).split())
    return sorted(words)


def sample_task(family: str, rng: np.random.Generator, colors: tuple[str, ...] = CUBE_COLORS) -> Task:
    """A random task of `family`: color, direction (push) and paraphrase drawn from `rng`."""
    if family not in TASK_FAMILIES:
        raise TaskError(f"family must be one of {TASK_FAMILIES}, got {family!r}")
    color = str(colors[int(rng.integers(len(colors)))])
    direction = str(PUSH_DIRECTIONS[int(rng.integers(2))]) if family == "push" else None
    paraphrase = int(rng.integers(len(INSTRUCTION_TEMPLATES[family])))
    return Task(family, color, direction, instruction_for(family, color, direction, paraphrase))
