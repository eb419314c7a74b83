"""`ArmSim`: the MuJoCo arm + table + cubes simulation that stands in for Gazebo/Isaac.

Joint vectors (positions, velocities, targets) always follow `JOINT_NAMES`
(joint_1..joint_6 in rad, gripper in m, see `config`). Joint targets go to position actuators,
like a ros2_control position interface; a `setpoint` callable (e.g. a trajectory follower's
`positions_at`) can instead supply a new target at every physics step, like a controller
running at the physics rate.

Determinism: `reset(seed)` fully defines the state, so the same seed and the same commands give
identical joint states and identical images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from moe_vla_ros.contract import SensorContract
from moe_vla_ros.sim.config import (
    CUBE_COLORS,
    CUBE_HALF_SIZE,
    GRIPPER_OPEN,
    GRIPPER_SITE,
    JOINT_NAMES,
    PUSH_GOAL_BODY,
    SimConfig,
    default_model_path,
)
from moe_vla_ros.sim.mujoco_backend import mujoco
from moe_vla_ros.sim.rendering import CameraRenderer, OwnsRenderer

# Arm joints at reset: gripper 30 cm in front of the base, 25 cm above the table, pointing down.
HOME_ARM_POSITIONS = (0.0, 0.05, 1.75, 0.0, 1.35, 0.0)
HOME_JOINT_POSITIONS = HOME_ARM_POSITIONS + (GRIPPER_OPEN,)

Setpoint = Callable[[float], np.ndarray]
PUSH_GOAL_HEIGHT = 0.0006  # m, centre of the 1 mm thick push-goal line lying on the table top


def sim_sensor_contract(
    camera_names: Sequence[str] = ("front", "wrist"),
    image_size: int | tuple[int, int] = 96,
    control_rate_hz: float = 10.0,
) -> SensorContract:
    """The SensorContract the simulated robot provides (`image_size`: int or (height, width))."""
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    return SensorContract(
        camera_names=tuple(camera_names),
        image_height=height,
        image_width=width,
        joint_names=JOINT_NAMES,
        control_rate_hz=control_rate_hz,
    )


def sensor_contract_for(config: SimConfig) -> SensorContract:
    """The SensorContract a simulator built from `config` provides (no simulator needed)."""
    return sim_sensor_contract(config.camera_names, (config.image_height, config.image_width), config.control_rate_hz)


class ArmSim(OwnsRenderer):
    """The simulated arm. Use as a context manager (or call `close()`) to free the renderer."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        path = self.config.model_path or default_model_path()
        self.model = mujoco.MjModel.from_xml_path(str(path))
        self.model.opt.timestep = self.config.physics_timestep_s
        self.data = mujoco.MjData(self.model)
        self._joint_qpos = np.array([int(self.model.joint(n).qposadr[0]) for n in JOINT_NAMES])
        self._joint_dof = np.array([int(self.model.joint(n).dofadr[0]) for n in JOINT_NAMES])
        self._actuators = np.array([self.model.actuator(n).id for n in JOINT_NAMES])
        self._ctrl_low = self.model.actuator_ctrlrange[self._actuators, 0].copy()
        self._ctrl_high = self.model.actuator_ctrlrange[self._actuators, 1].copy()
        self._cube_qpos = {c: int(self.model.joint(f"cube_{c}").qposadr[0]) for c in CUBE_COLORS}
        self._site_id = self.model.site(GRIPPER_SITE).id
        self._push_goal_mocap = int(self.model.body(PUSH_GOAL_BODY).mocapid[0])
        self._push_goal_hidden = self.model.body(PUSH_GOAL_BODY).pos.copy()
        self._renderer: CameraRenderer | None = None
        self.seed = self.config.seed
        self.reset(self.config.seed)

    # ------------------------------------------------------------------ state
    @property
    def joint_names(self) -> tuple[str, ...]:
        return JOINT_NAMES

    @property
    def time(self) -> float:
        """Simulated time in seconds since the last reset."""
        return float(self.data.time)

    def sensor_contract(self) -> SensorContract:
        return sensor_contract_for(self.config)

    def reset(self, seed: int | None = None) -> None:
        """Arm at home with the gripper open, cubes at random non-overlapping poses, time 0."""
        self.seed = self.config.seed if seed is None else int(seed)
        rng = np.random.default_rng(self.seed)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self._joint_qpos] = HOME_JOINT_POSITIONS
        self._sync_mirror_finger()
        for color, (x, y, yaw) in zip(CUBE_COLORS, self._sample_cube_layout(rng)):
            adr = self._cube_qpos[color]
            self.data.qpos[adr : adr + 3] = (x, y, CUBE_HALF_SIZE)
            self.data.qpos[adr + 3 : adr + 7] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
        self.data.ctrl[self._actuators] = HOME_JOINT_POSITIONS
        mujoco.mj_forward(self.model, self.data)

    def _sync_mirror_finger(self) -> None:
        mirror = int(self.model.joint("gripper_mirror").qposadr[0])
        self.data.qpos[mirror] = self.data.qpos[self._joint_qpos[-1]]

    def _sample_cube_layout(self, rng: np.random.Generator) -> list[tuple[float, float, float]]:
        c = self.config
        for _ in range(1000):
            xy = np.column_stack([rng.uniform(*c.cube_spawn_x, 3), rng.uniform(*c.cube_spawn_y, 3)])
            gaps = [np.linalg.norm(xy[i] - xy[j]) for i in range(3) for j in range(i + 1, 3)]
            if min(gaps) >= c.min_cube_separation:
                yaws = rng.uniform(-np.pi / 4, np.pi / 4, 3) if c.randomize_cube_yaw else np.zeros(3)
                return [(float(x), float(y), float(a)) for (x, y), a in zip(xy, yaws)]
        raise RuntimeError(
            f"cannot place 3 cubes {c.min_cube_separation} m apart in x {c.cube_spawn_x}, y {c.cube_spawn_y}"
        )

    def show_push_goal(self, xy: Sequence[float] | None) -> None:
        """Lay the push-goal line (along x) on the table centred at `xy` (x, y in m); None hides it
        under the table (where `reset` leaves it). Visual only: nothing collides with it."""
        if xy is None:
            position = self._push_goal_hidden
        else:
            x, y = (float(v) for v in xy)
            if not (np.isfinite(x) and np.isfinite(y)):
                raise ValueError(f"push goal must be finite, got {xy!r}")
            position = np.array([x, y, PUSH_GOAL_HEIGHT])
        self.data.mocap_pos[self._push_goal_mocap] = position
        mujoco.mj_forward(self.model, self.data)

    def push_goal(self) -> np.ndarray | None:
        """Centre [2] (x, y in m) of the push-goal line, or None while it is hidden."""
        position = self.data.mocap_pos[self._push_goal_mocap]
        return None if position[2] < 0.0 else position[:2].copy()

    def joint_positions(self) -> np.ndarray:
        """Measured positions [7] (rad, gripper in m), in JOINT_NAMES order."""
        return self.data.qpos[self._joint_qpos].copy()

    def joint_velocities(self) -> np.ndarray:
        """Measured velocities [7] (rad/s, gripper in m/s), in JOINT_NAMES order."""
        return self.data.qvel[self._joint_dof].copy()

    def joint_targets(self) -> np.ndarray:
        """Position targets [7] currently applied to the actuators."""
        return self.data.ctrl[self._actuators].copy()

    def set_joint_targets(self, targets: Sequence[float] | Mapping[str, float]) -> None:
        """Command position targets: a full vector in JOINT_NAMES order, or {name: value} for
        a subset (the other joints keep their targets). Values are clipped to the joint ranges."""
        current = self.joint_targets()
        if isinstance(targets, Mapping):
            unknown = sorted(set(targets) - set(JOINT_NAMES))
            if unknown:
                raise ValueError(f"unknown joint names {unknown}; joints are {list(JOINT_NAMES)}")
            for name, value in targets.items():
                current[JOINT_NAMES.index(name)] = value
        else:
            current = np.asarray(targets, dtype=np.float64)
            if current.shape != (len(JOINT_NAMES),):
                raise ValueError(f"joint targets must have shape ({len(JOINT_NAMES)},), got {current.shape}")
        if not np.all(np.isfinite(current)):
            raise ValueError(f"joint targets must be finite, got {current.tolist()}")
        self.data.ctrl[self._actuators] = np.clip(current, self._ctrl_low, self._ctrl_high)

    def cube_pose(self, color: str) -> tuple[np.ndarray, np.ndarray]:
        """(position [3] in m, orientation quaternion [4] w-x-y-z) of the cube of `color`."""
        if color not in self._cube_qpos:
            raise ValueError(f"unknown cube color {color!r}; cubes are {list(CUBE_COLORS)}")
        adr = self._cube_qpos[color]
        return self.data.qpos[adr : adr + 3].copy(), self.data.qpos[adr + 3 : adr + 7].copy()

    def cube_positions(self) -> dict[str, np.ndarray]:
        return {color: self.cube_pose(color)[0] for color in CUBE_COLORS}

    def gripper_position(self) -> np.ndarray:
        """Position [3] of the gripper site (between the fingertips), in m."""
        return self.data.site_xpos[self._site_id].copy()

    def gripper_rotation(self) -> np.ndarray:
        """Rotation [3, 3] of the gripper site (z out of the fingers, y = closing direction)."""
        return self.data.site_xmat[self._site_id].reshape(3, 3).copy()

    # ---------------------------------------------------------------- stepping
    def step(self, n: int = 1, setpoint: Setpoint | None = None) -> None:
        """Advance `n` physics steps. With `setpoint`, the targets are set to `setpoint(time)`
        before every step (the sim time at the start of that step)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n!r}")
        if setpoint is None:
            mujoco.mj_step(self.model, self.data, int(n))
        else:
            for _ in range(int(n)):
                self.set_joint_targets(setpoint(float(self.data.time)))
                mujoco.mj_step(self.model, self.data)
        # mj_step leaves positions one step ahead of the derived quantities: refresh them so
        # that site positions and rendered images show the current state.
        mujoco.mj_forward(self.model, self.data)

    def step_to(self, t: float, setpoint: Setpoint | None = None) -> None:
        """Advance until the sim time reaches `t` (to the nearest physics step)."""
        dt = self.model.opt.timestep
        n = int(round((t - self.data.time) / dt))
        if n < 0:
            raise ValueError(f"cannot step back in time: now {self.data.time:.4f} s, asked {t:.4f} s")
        self.step(n, setpoint)

    # --------------------------------------------------------------- rendering
    def render(self, camera: str) -> np.ndarray:
        """Image of `camera` at the configured size: uint8 [H, W, 3] RGB."""
        if self._renderer is None:
            self._renderer = CameraRenderer(self.model, self.config.image_height, self.config.image_width)
        return self._renderer.render(self.data, camera)

    def render_all(self) -> dict[str, np.ndarray]:
        """Images of every camera in `config.camera_names`."""
        return {camera: self.render(camera) for camera in self.config.camera_names}
