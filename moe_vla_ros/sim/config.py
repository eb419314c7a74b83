"""Configuration of the MuJoCo arm simulation (`SimConfig`) and the names it exposes.

Frames follow ROS REP 103 with the world frame at the robot base: x forward (away from the
robot), y to the robot's left, z up; the table top is the plane z = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from moe_vla_ros.errors import BadInputError
from moe_vla_ros.validation import require_distinct, require_int, require_number

# Commanded joints, in the order of every state/action vector (same names as a URDF would use).
ARM_JOINT_NAMES = ("joint_1", "joint_2", "joint_3", "joint_4", "joint_5", "joint_6")
GRIPPER_JOINT_NAME = "gripper"
JOINT_NAMES = ARM_JOINT_NAMES + (GRIPPER_JOINT_NAME,)

# Gripper joint: travel of each finger towards the centre line, in metres.
GRIPPER_OPEN = 0.0
GRIPPER_CLOSED = 0.04

CUBE_COLORS = ("red", "green", "blue")
CUBE_HALF_SIZE = 0.02  # m, cubes are 4 cm wide
CAMERA_NAMES = ("front", "wrist", "top")
GRIPPER_SITE = "gripper_site"
PUSH_GOAL_BODY = "push_goal"  # mocap body of the line marking where a push task wants its cube


def default_model_path() -> Path:
    """Path of the bundled MJCF (installed as package data)."""
    return Path(str(resources.files("moe_vla_ros.sim") / "assets" / "arm_table.xml"))


class SimConfigError(BadInputError):
    """A SimConfig field has an invalid value."""


def _check_range(name: str, value: tuple[float, float], lo: float, hi: float) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise SimConfigError(f"{name} must be a (min, max) pair, got {value!r}") from None
    if not (lo <= a <= b <= hi):
        raise SimConfigError(f"{name} must satisfy {lo} <= min <= max <= {hi}, got {value!r}")
    return a, b


@dataclass(frozen=True)
class SimConfig:
    """How the simulation is built, rendered and randomised.

    Attributes:
        seed: seed used by `ArmSim.reset()` when no seed is passed.
        image_height: height in pixels of rendered camera images.
        image_width: width in pixels of rendered camera images.
        camera_names: cameras `ArmSim.render_all()` returns; any of "front", "wrist", "top".
        control_rate_hz: rate at which a controller (expert, policy) sends new targets.
        physics_timestep_s: MuJoCo integration step; must divide the control period.
        cube_spawn_x: (min, max) x of cube centres on the table, metres.
        cube_spawn_y: (min, max) y of cube centres on the table, metres.
        min_cube_separation: minimal distance between cube centres at reset, metres.
        randomize_cube_yaw: rotate each cube about z by a random angle at reset.
        model_path: MJCF file to load; None = the bundled arm_table.xml.
    """

    seed: int = 0
    image_height: int = 96
    image_width: int = 96
    camera_names: tuple[str, ...] = ("front", "wrist")
    control_rate_hz: float = 10.0
    physics_timestep_s: float = 0.002
    cube_spawn_x: tuple[float, float] = (0.32, 0.50)
    cube_spawn_y: tuple[float, float] = (-0.20, 0.20)
    min_cube_separation: float = 0.10
    randomize_cube_yaw: bool = True
    model_path: str | None = None

    def __post_init__(self) -> None:
        require_int("seed", self.seed, 0, error=SimConfigError)
        for name in ("image_height", "image_width"):
            object.__setattr__(self, name, require_int(name, getattr(self, name), 8, 2048, error=SimConfigError))
        object.__setattr__(self, "camera_names", require_distinct("camera_names", self.camera_names, CAMERA_NAMES,
                                                                  error=SimConfigError))
        require_number("control_rate_hz", self.control_rate_hz, 0.5, 100.0, error=SimConfigError)
        require_number("physics_timestep_s", self.physics_timestep_s, 1e-4, 0.01, error=SimConfigError)
        ratio = 1.0 / (self.control_rate_hz * self.physics_timestep_s)
        if abs(ratio - round(ratio)) > 1e-6:
            raise SimConfigError(
                f"physics_timestep_s={self.physics_timestep_s} must divide the control period "
                f"1/control_rate_hz={1.0 / self.control_rate_hz:g} s into a whole number of steps"
            )
        object.__setattr__(self, "cube_spawn_x", _check_range("cube_spawn_x", self.cube_spawn_x, 0.2, 0.6))
        object.__setattr__(self, "cube_spawn_y", _check_range("cube_spawn_y", self.cube_spawn_y, -0.35, 0.35))
        require_number("min_cube_separation", self.min_cube_separation, 2 * CUBE_HALF_SIZE * math.sqrt(2), 0.2,
                       error=SimConfigError)
        if self.model_path is not None and not Path(self.model_path).is_file():
            raise SimConfigError(f"model_path {self.model_path!r} is not a file")

    @property
    def control_period_s(self) -> float:
        return 1.0 / self.control_rate_hz

    @property
    def physics_steps_per_control(self) -> int:
        return int(round(self.control_period_s / self.physics_timestep_s))
