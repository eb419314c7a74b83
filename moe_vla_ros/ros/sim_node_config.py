"""Configuration of the simulator node (`sim_node`): every field is a ROS parameter (see params.py).

Pure dataclasses (no rclpy). `seed` and `instruction` are top-level parameter names because
launch/sim.launch.py passes them; the other parameters are grouped like the policy node's
(`topics.*`, `qos.*`) so that the topic names of both nodes read the same in config/*.yaml.

`SimNodeConfig.resolve_task()` gives the task whose success the node reports: the one named by
`task.*`, else the one whose instruction template matches `instruction` (see sim/tasks.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from moe_vla_ros.control.jtc_rules import INTERPOLATION_METHODS, JtcParams, JtcParamsError
from moe_vla_ros.errors import BadInputError
from moe_vla_ros.sim.config import CAMERA_NAMES, CUBE_COLORS, JOINT_NAMES, SimConfig
from moe_vla_ros.sim.tasks import INSTRUCTION_TEMPLATES, PUSH_DIRECTIONS, TASK_FAMILIES, Task, TaskError
from moe_vla_ros.spec.described import PARAM_META, param, param_meta
from moe_vla_ros.spec.policy_node import RELIABILITIES
from moe_vla_ros.validation import require_choice, require_distinct, require_int, require_number

ENCODINGS = ("rgb8", "bgr8")


class SimNodeConfigError(BadInputError):
    """A sim_node parameter has an invalid value."""


def _check_ranges(config) -> None:
    """Every field of `config` declared with a range (param() min/max, the range the node declares)
    lies in it; SimNodeConfigError naming the field otherwise."""
    for f in fields(config):
        meta = param_meta(f) if PARAM_META in f.metadata else {"min": None, "max": None}
        if meta["min"] is not None or meta["max"] is not None:
            check = require_int if f.type in ("int", int) else require_number
            check(f.name, getattr(config, f.name), meta["min"], meta["max"], error=SimNodeConfigError)


def _normalise(text: str) -> str:
    return " ".join(text.lower().replace(",", " ").rstrip(".!").split())


def task_from_instruction(instruction: str) -> Task | None:
    """The task whose instruction templates produce `instruction` (case, commas and a final
    period ignored), or None when no template matches."""
    wanted = _normalise(instruction)
    for family, templates in INSTRUCTION_TEMPLATES.items():
        for template in templates:
            for color in CUBE_COLORS:
                for direction in PUSH_DIRECTIONS if family == "push" else (None,):
                    if _normalise(template.format(color=color, direction=direction)) == wanted:
                        return Task(family, color, direction, instruction)
    return None


@dataclass
class TaskParams:
    family: str = param("", "Task whose success the node checks: reach, push or lift. Empty: derived from "
                            "`instruction` when it matches a task template (sim/tasks.py), else no task.")
    color: str = param("red", "Target cube color of the task (with task.family).", choices=CUBE_COLORS)
    direction: str = param("", "Push direction: left (robot's +y) or right (-y) for push tasks, empty otherwise.")

    def __post_init__(self) -> None:
        require_choice("task.family", self.family, ("", *TASK_FAMILIES), error=SimNodeConfigError)
        require_choice("task.color", self.color, CUBE_COLORS, error=SimNodeConfigError)
        if (self.family == "push") != (self.direction != ""):
            raise SimNodeConfigError(
                f"task.direction must be one of {list(PUSH_DIRECTIONS)} for push tasks and empty otherwise, "
                f"got {self.direction!r} for family {self.family!r}"
            )


@dataclass
class CameraParams:
    names: list[str] = param(["front", "wrist"], "Simulated cameras, one image topic each.", choices=CAMERA_NAMES)
    frame_ids: list[str] = param(["front_camera_optical_frame", "wrist_camera_optical_frame"],
                                 "header.frame_id of each camera's images, in cameras.names order.")
    image_height: int = param(224, "Rendered image height [px].", min=8, max=2048)
    image_width: int = param(224, "Rendered image width [px].", min=8, max=2048)
    encoding: str = param("rgb8", "sensor_msgs/Image encoding of the published images.", choices=ENCODINGS)

    def __post_init__(self) -> None:
        names = list(require_distinct("cameras.names", self.names, CAMERA_NAMES, error=SimNodeConfigError))
        if len(self.frame_ids) != len(names) or not all(self.frame_ids):
            raise SimNodeConfigError(
                f"cameras.frame_ids must give one non-empty frame per camera {names}, got {list(self.frame_ids)}"
            )
        require_choice("cameras.encoding", self.encoding, ENCODINGS, error=SimNodeConfigError)


@dataclass
class SimTopicParams:
    camera_topics: list[str] = param(["camera/front/image_raw", "camera/wrist/image_raw"],
                                     "sensor_msgs/Image topic of each camera, in cameras.names order.")
    joint_states: str = param("joint_states", "sensor_msgs/JointState output topic.")
    trajectory: str = param("joint_trajectory_controller/joint_trajectory",
                            "trajectory_msgs/JointTrajectory command topic (joint_trajectory_controller's).")
    instruction: str = param("instruction", "std_msgs/String topic the instruction is published on (latched, and "
                                          "again to every new subscriber).")

    def __post_init__(self) -> None:
        require_distinct("topics", [*self.camera_topics, self.joint_states, self.trajectory, self.instruction],
                         error=SimNodeConfigError)


@dataclass
class SimQosParams:
    camera_reliability: str = param("reliable", "Reliability of the image publishers (reliable also matches "
                                                "best-effort subscribers).", choices=RELIABILITIES)
    camera_depth: int = param(2, "History depth of the image publishers.", min=1, max=100)

    def __post_init__(self) -> None:
        require_choice("qos.camera_reliability", self.camera_reliability, RELIABILITIES, error=SimNodeConfigError)


# Defaults of the controller group: config/controllers/joint_trajectory_controller.yaml, the
# joint_trajectory_controller configuration shipped for this arm (why each value: its comments).
ARM_TRAJECTORY_TOLERANCE = 0.3  # rad, ~4x the largest lag of the position actuators under the expert
ARM_GOAL_TOLERANCE = 0.1  # rad
GOAL_TIME_S = 1.0


@dataclass
class ControllerParams:
    """The joint_trajectory_controller parameters the simulator models (control/jtc_rules.py).

    The node refuses what a joint_trajectory_controller with these parameters refuses, replaces
    and samples trajectories as it does and holds position on the same tolerance violations
    (sim/trajectory_follower.py). Defaults: config/controllers/joint_trajectory_controller.yaml.
    """

    open_loop_control: bool = param(False, "joint_trajectory_controller's interpolate_from_desired_state (formerly "
                                           "open_loop_control): a new trajectory starts from the last command "
                                           "instead of the measured state.")
    allow_partial_joints_goal: bool = param(False, "Accept trajectories naming a subset of the joints (the others "
                                                   "keep their last command); false refuses them, as "
                                                   "joint_trajectory_controller does by default.")
    allow_nonzero_velocity_at_trajectory_end: bool = param(
        False, "Accept trajectories whose last point still moves; false refuses them, as joint_trajectory_controller "
               "does by default.")
    interpolation_method: str = param("splines", "joint_trajectory_controller's interpolation_method: splines "
                                                 "(linear/cubic/quintic) or none.", choices=INTERPOLATION_METHODS)
    cmd_timeout: float = param(0.0, "Seconds after the end of a trajectory until the controller holds position "
                                     "(0 = off; ignored unless above goal_time).", min=0.0, max=3600.0)
    goal_time: float = param(GOAL_TIME_S, "constraints.goal_time [s]: how long after the end goal_tolerances may "
                                          "be violated before the controller holds position (0 = forever).",
                             min=0.0, max=3600.0)
    stopped_velocity_tolerance: float = param(0.01, "constraints.stopped_velocity_tolerance [rad/s] (no effect with "
                                                    "the position command interface).", min=0.0, max=100.0)
    trajectory_tolerances: list[float] = param(
        [ARM_TRAJECTORY_TOLERANCE] * 6 + [0.0],
        "constraints.<joint>.trajectory per joint (joint_1..joint_6, gripper; rad, m; 0 = not checked): a larger "
        "position error while moving makes the controller hold position.")
    goal_tolerances: list[float] = param(
        [ARM_GOAL_TOLERANCE] * 6 + [0.0],
        "constraints.<joint>.goal per joint (0 = not checked): the position error allowed goal_time after the end.")

    # fields passed to JtcParams as they are (same name there)
    JTC_NAMES = ("allow_partial_joints_goal", "allow_nonzero_velocity_at_trajectory_end", "interpolation_method",
                 "cmd_timeout", "stopped_velocity_tolerance", "goal_time")

    def __post_init__(self) -> None:
        require_choice("controller.interpolation_method", self.interpolation_method, INTERPOLATION_METHODS,
                       error=SimNodeConfigError)
        try:
            self.jtc_params()
        except JtcParamsError as e:
            raise SimNodeConfigError(f"controller.*: {e}") from None

    def jtc_params(self) -> JtcParams:
        """The JtcParams of a joint_trajectory_controller for the simulated arm with these values
        (command interface position, state interfaces position + velocity, like sim_node's
        joint states)."""
        same = {name: getattr(self, name) for name in self.JTC_NAMES}
        return JtcParams(
            joints=JOINT_NAMES,
            command_interfaces=("position",),
            state_interfaces=("position", "velocity"),
            interpolate_from_desired_state=self.open_loop_control,
            trajectory_tolerances=tuple(self.trajectory_tolerances),
            goal_tolerances=tuple(self.goal_tolerances),
            **same,
        )


@dataclass
class SimNodeConfig:
    """All parameters of sim_node (`ros2 param describe /sim_node <name>` shows the descriptions)."""

    seed: int = param(0, "Scene randomisation seed (cube poses) of the first episode.", min=0, max=2**31 - 1)
    instruction: str = param("", "Language instruction published on topics.instruction (latched, and again to "
                                 "every new subscriber); empty: the "
                                 "task's instruction when task.family is set, else nothing is published.")
    real_time_factor: float = param(1.0, "Simulated seconds per wall-clock second (1.0 = real time).",
                                    min=0.01, max=100.0)
    publish_clock: bool = param(True, "Publish the simulated time on /clock (for nodes with use_sim_time).")
    clock_rate_hz: float = param(100.0, "Rate of /clock messages, in simulated time.", min=1.0, max=1000.0)
    camera_rate_hz: float = param(30.0, "Image rate per camera, in simulated time.", min=0.1, max=120.0)
    joint_state_rate_hz: float = param(100.0, "Joint state rate, in simulated time.", min=1.0, max=500.0)
    physics_timestep_s: float = param(0.002, "MuJoCo integration step [s]; stamps fall on multiples of it.",
                                      min=1e-4, max=0.01)
    task: TaskParams = field(default_factory=TaskParams)
    cameras: CameraParams = field(default_factory=CameraParams)
    topics: SimTopicParams = field(default_factory=SimTopicParams)
    qos: SimQosParams = field(default_factory=SimQosParams)
    controller: ControllerParams = field(default_factory=ControllerParams)

    def __post_init__(self) -> None:
        _check_ranges(self)
        if len(self.topics.camera_topics) != len(self.cameras.names):
            raise SimNodeConfigError(
                f"topics.camera_topics has {len(self.topics.camera_topics)} topics for "
                f"{len(self.cameras.names)} cameras {list(self.cameras.names)}"
            )
        self.resolve_task()  # a task that cannot be built is a configuration error

    def sim_config(self) -> SimConfig:
        """The ArmSim configuration these parameters describe."""
        return SimConfig(
            seed=self.seed,
            image_height=self.cameras.image_height,
            image_width=self.cameras.image_width,
            camera_names=tuple(self.cameras.names),
            # unused by the node (commands come as trajectories); ~10 Hz, a whole number of steps
            control_rate_hz=1.0 / (self.physics_timestep_s * round(0.1 / self.physics_timestep_s)),
            physics_timestep_s=self.physics_timestep_s,
        )

    def resolve_task(self) -> Task | None:
        """The task of task.* (with `instruction` as its text when given), else the one matching
        `instruction`, else None."""
        if not self.task.family:
            return task_from_instruction(self.instruction) if self.instruction else None
        try:
            return Task(self.task.family, self.task.color, self.task.direction or None, self.instruction)
        except TaskError as e:
            raise SimNodeConfigError(f"task.* do not describe a task: {e}") from None
