"""Record scripted-expert episodes from the simulator into a rosbag2 bag, as a real robot would.

The bag holds the standard messages a ros2_control robot with cameras produces, on the topics of
config/robots/sim_arm.yaml, with simulated time as bag time:

    /camera/<camera>/image_raw                     sensor_msgs/Image, rgb8, `image_size` square
    /joint_states                                  sensor_msgs/JointState (~30-100 Hz)
    /instruction                                   std_msgs/String, at every episode start (latched)
    /joint_trajectory_controller/joint_trajectory  trajectory_msgs/JointTrajectory, the expert's
                                                   commands (one point one control period ahead)

Each episode runs the `ScriptedExpert` on a task drawn from the seed (as generate_demos does):
at every control step the sensors due at that instant are recorded first, then the expert
commands the next target (header.stamp = now, time_from_start = one period; the
`TrajectoryFollower` executes it like joint_trajectory_controller), and the physics runs to the
next step while joint states and images are recorded at their own rates. Episodes are separated
by `episode_gap_s` of silence; message header stamps and receive times are the sim time plus the
episode's offset on the bag's time axis (which starts at `start_time_s`, > 0: a zero stamp means
"unset" in ROS). metadata.yaml's custom_data holds the sensor contract and the planned episodes.

``moe_vla_bag_from_sim -o BAG [--episodes N] [--seed S] [--tasks reach,push] ...``

Pure: rosbags + numpy + MuJoCo, no rclpy.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from tqdm import tqdm

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.typestore import get_typestore
from moe_vla_ros.bags.writer import BagWriter, check_storage
from moe_vla_ros.cli import add_output_argument, add_progress_argument, run_tool, tool_parser
from moe_vla_ros.sim.arm_sim import ArmSim
from moe_vla_ros.sim.config import CAMERA_NAMES, JOINT_NAMES, SimConfig
from moe_vla_ros.sim.expert import ScriptedExpert
from moe_vla_ros.sim.rollout import ControlStep, Observation, Setpoint, expert_controller, run_episode
from moe_vla_ros.sim.tasks import TASK_FAMILIES, Task, sample_task

NS = 1_000_000_000
CONTRACT_KEY = "moe_vla.sensor_contract"
EPISODES_KEY = "moe_vla.episodes"
PROG = "moe_vla_bag_from_sim"


@dataclass(frozen=True)
class SimBagTopics:
    """Topic names of the recorded bag (defaults: config/robots/sim_arm.yaml).

    Attributes:
        camera_pattern: image topic of a camera, with "{camera}" standing for its name.
        joint_states: sensor_msgs/JointState topic.
        instruction: std_msgs/String topic.
        command: trajectory_msgs/JointTrajectory topic of the expert's commands.
    """

    camera_pattern: str = "/camera/{camera}/image_raw"
    joint_states: str = "/joint_states"
    instruction: str = "/instruction"
    command: str = "/joint_trajectory_controller/joint_trajectory"

    def __post_init__(self) -> None:
        if "{camera}" not in self.camera_pattern:
            raise BagError(f"camera_pattern must contain '{{camera}}', got {self.camera_pattern!r}")
        for name in ("joint_states", "instruction", "command"):
            if not getattr(self, name).startswith("/"):
                raise BagError(f"topic {name} must be fully qualified (start with '/'), got {getattr(self, name)!r}")

    def camera(self, name: str) -> str:
        return self.camera_pattern.format(camera=name)


@dataclass(frozen=True)
class SimRecordingConfig:
    """What to record.

    Episodes:
        episodes: number of episodes (>= 1).
        seed: master seed: cube layouts, tasks and instruction paraphrases derive from it.
        tasks: task families cycled through (see sim.tasks.TASK_FAMILIES).
        max_episode_s: cut episodes after this many seconds (None: the task's own limit).
        success_hold_steps: control steps the task must stay solved before the episode ends.
        episode_gap_s: silence between episodes (the robot is reset meanwhile), seconds (> 0).
        start_time_s: bag time of the first episode's start, seconds (> 0).
    Sensors:
        cameras: cameras recorded, from sim.config.CAMERA_NAMES.
        image_size: square image size in pixels (what the camera driver publishes).
        camera_rate_hz: image rate in simulated time.
        joint_state_rate_hz: JointState rate in simulated time (a ros2_control broadcaster
            runs at 30-100 Hz).
        control_rate_hz: rate of the expert's commands (the policy contract's control rate).
    Output:
        storage: "mcap" or "sqlite3".
        topics: topic names.
        progress: show a tqdm progress bar.
    """

    episodes: int = 2
    seed: int = 0
    tasks: tuple[str, ...] = ("reach", "push")
    max_episode_s: float | None = None
    success_hold_steps: int = 3
    episode_gap_s: float = 1.0
    start_time_s: float = 1.0
    topics: SimBagTopics = field(default_factory=SimBagTopics)
    cameras: tuple[str, ...] = ("front", "wrist")
    image_size: int = 96
    camera_rate_hz: float = 30.0
    joint_state_rate_hz: float = 50.0
    control_rate_hz: float = 10.0
    storage: str = "mcap"
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("episodes", "success_hold_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise BagError(f"{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.seed, bool) or int(self.seed) != self.seed or self.seed < 0:
            raise BagError(f"seed must be an integer >= 0, got {self.seed!r}")
        for name, values, allowed in (("tasks", self.tasks, TASK_FAMILIES), ("cameras", self.cameras, CAMERA_NAMES)):
            if isinstance(values, str) or not values or any(v not in allowed for v in values):
                raise BagError(f"{name} must be a non-empty list of names from {allowed}, got {values!r}")
            object.__setattr__(self, name, tuple(values))
        if len(set(self.cameras)) != len(self.cameras):
            raise BagError(f"cameras has duplicates: {list(self.cameras)}")
        checks = {
            "episode_gap_s": (self.episode_gap_s, 1e-3, 3600.0),
            "start_time_s": (self.start_time_s, 1e-3, 1e9),
            "camera_rate_hz": (self.camera_rate_hz, 0.5, 500.0),
            "joint_state_rate_hz": (self.joint_state_rate_hz, 1.0, 1000.0),
            "control_rate_hz": (self.control_rate_hz, 0.5, 100.0),
        }
        if self.max_episode_s is not None:
            checks["max_episode_s"] = (self.max_episode_s, 0.1, 3600.0)
        for name, (value, lo, hi) in checks.items():
            if isinstance(value, bool) or not (math.isfinite(value) and lo <= value <= hi):
                raise BagError(f"{name} must be in [{lo:g}, {hi:g}], got {value!r}")
        check_storage(self.storage)
        try:
            self.sim_config()
        except ValueError as e:  # SimConfigError: e.g. a control rate the physics step cannot divide
            raise BagError(f"invalid simulator settings: {e}") from None

    def sim_config(self) -> SimConfig:
        return SimConfig(
            seed=self.seed, image_height=self.image_size, image_width=self.image_size,
            camera_names=self.cameras, control_rate_hz=self.control_rate_hz,
        )


@dataclass(frozen=True)
class RecordedEpisode:
    """One recorded episode; times in seconds on the bag's time axis."""

    index: int
    seed: int
    task: Task
    start_s: float
    end_s: float
    success: bool
    steps: int


@dataclass(frozen=True)
class SimRecording:
    """What `record_sim_bag` wrote: the bag, its sensor contract's JSON and the episodes."""

    path: Path
    contract: dict
    episodes: tuple[RecordedEpisode, ...]
    counts: dict[str, int]

    @property
    def duration_s(self) -> float:
        return self.episodes[-1].end_s - self.episodes[0].start_s if self.episodes else 0.0


def offered_qos(reliable: bool = True, latched: bool = False, depth: int = 1) -> Qos:
    """A publisher QoS as stored in a bag (what the player offers when it replays the topic)."""
    infinite = QosTime(0, 0)  # rmw default: no deadline / lifespan / lease
    return Qos(
        history=QosHistory.KEEP_LAST, depth=depth,
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
        deadline=infinite, lifespan=infinite, liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=infinite, avoid_ros_namespace_conventions=False,
    )


def _plan(cfg: SimRecordingConfig) -> list[tuple[int, Task]]:
    """(sim seed, task) of every episode, drawn exactly as generate_demos draws them."""
    rng = np.random.default_rng(cfg.seed)
    plan = []
    for i in range(cfg.episodes):
        seed = int(rng.integers(2**31 - 1))
        plan.append((seed, sample_task(cfg.tasks[i % len(cfg.tasks)], rng)))
    return plan


def _sample_times(rate_hz: float, duration_s: float) -> np.ndarray:
    """Times i / rate in [0, duration)."""
    return np.arange(int(math.ceil(duration_s * rate_hz - 1e-9))) / rate_hz


class _MessageFactory:
    """rosbags message objects of the recorded types."""

    def __init__(self, cameras: Sequence[str], size: int) -> None:
        self.t = get_typestore().types
        self.size = size
        self.frames = {c: f"{c}_camera_optical_frame" for c in cameras}

    def header(self, t_ns: int, frame_id: str = ""):
        stamp = self.t["builtin_interfaces/msg/Time"](sec=t_ns // NS, nanosec=t_ns % NS)
        return self.t["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

    def image(self, camera: str, t_ns: int, rgb: np.ndarray):
        return self.t["sensor_msgs/msg/Image"](
            header=self.header(t_ns, self.frames[camera]), height=self.size, width=self.size, encoding="rgb8",
            is_bigendian=0, step=self.size * 3, data=np.ascontiguousarray(rgb, dtype=np.uint8).reshape(-1),
        )

    def joint_state(self, t_ns: int, positions: np.ndarray, velocities: np.ndarray):
        return self.t["sensor_msgs/msg/JointState"](
            header=self.header(t_ns), name=list(JOINT_NAMES), position=np.asarray(positions, dtype=np.float64),
            velocity=np.asarray(velocities, dtype=np.float64), effort=np.zeros(0),
        )

    def command(self, t_ns: int, targets: np.ndarray, period_ns: int):
        point = self.t["trajectory_msgs/msg/JointTrajectoryPoint"](
            positions=np.asarray(targets, dtype=np.float64), velocities=np.zeros(0), accelerations=np.zeros(0),
            effort=np.zeros(0), time_from_start=self.t["builtin_interfaces/msg/Duration"](sec=0, nanosec=period_ns),
        )
        return self.t["trajectory_msgs/msg/JointTrajectory"](
            header=self.header(t_ns), joint_names=list(JOINT_NAMES), points=[point]
        )

    def string(self, text: str):
        return self.t["std_msgs/msg/String"](data=text)


def _record_episode(
    sim: ArmSim, expert: ScriptedExpert, task: Task, cfg: SimRecordingConfig, bag: BagWriter,
    msgs: _MessageFactory, offset_ns: int,
) -> tuple[float, bool, int]:
    """Run one episode from the sim's current state (sim/rollout.run_episode, the expert's
    commands and the sensors at their own rates written to the bag); returns (duration s,
    success, steps)."""
    topics, period = cfg.topics, 1.0 / cfg.control_rate_hz
    period_ns = int(round(period * NS))
    limit = task.max_duration_s if cfg.max_episode_s is None else min(task.max_duration_s, cfg.max_episode_s)
    max_steps = max(1, int(round(limit / period)))
    joint_times = _sample_times(cfg.joint_state_rate_hz, max_steps * period)
    camera_times = _sample_times(cfg.camera_rate_hz, max_steps * period)
    sensors = sorted([(t, "joints") for t in joint_times] + [(t, "cameras") for t in camera_times])
    half_step = 0.5 * sim.config.physics_timestep_s
    next_sensor = 0
    t0 = sim.time

    def at(t_s: float) -> int:
        return offset_ns + int(round(t_s * NS))

    def record(kind: str) -> None:
        nonlocal next_sensor
        now = at(sim.time)
        if kind == "joints":
            bag.write(topics.joint_states, now, msgs.joint_state(now, sim.joint_positions(), sim.joint_velocities()))
        else:
            for camera, rgb in sim.render_all().items():
                bag.write(topics.camera(camera), now, msgs.image(camera, now, rgb))
        next_sensor += 1

    expert_control = expert_controller(expert)

    def control(obs: Observation) -> ControlStep:
        while next_sensor < len(sensors) and sensors[next_sensor][0] <= obs.time + half_step:
            record(sensors[next_sensor][1])  # sensors due now see the state the expert acts on
        step = expert_control(obs)
        bag.write(topics.command, at(sim.time), msgs.command(at(sim.time), step.joint_targets, period_ns))
        return step

    def advance(t_s: float, setpoint: Setpoint) -> None:
        while next_sensor < len(sensors) and t0 + sensors[next_sensor][0] < t_s - half_step:
            sim.step_to(t0 + sensors[next_sensor][0], setpoint=setpoint)
            record(sensors[next_sensor][1])
        sim.step_to(t_s, setpoint=setpoint)

    bag.write(topics.instruction, offset_ns, msgs.string(task.instruction))
    expert.reset(task)
    result = run_episode(sim, replace(task, max_duration_s=max_steps * period), control, cfg.success_hold_steps,
                         record_images=False, advance=advance)
    return result.steps * period, result.success, result.steps


def record_sim_bag(path: str | Path, cfg: SimRecordingConfig = SimRecordingConfig()) -> SimRecording:
    """Record `cfg.episodes` expert episodes into the new bag at `path` (see module docstring).

    Raises BagError when `path` exists (nothing is touched) or the bag cannot be written.
    """
    path = Path(path)
    if path.exists():
        raise BagError(f"{path} already exists; refusing to overwrite it (choose a new bag path)")
    plan = _plan(cfg)
    sim_cfg = cfg.sim_config()
    with ArmSim(sim_cfg) as sim:
        contract = sim.sensor_contract().to_dict()
        custom = {
            CONTRACT_KEY: json.dumps(contract),
            EPISODES_KEY: json.dumps([
                {"index": i, "seed": seed, "family": task.family, "color": task.color, "direction": task.direction,
                 "instruction": task.instruction} for i, (seed, task) in enumerate(plan)
            ]),
        }
        msgs = _MessageFactory(cfg.cameras, cfg.image_size)
        expert = ScriptedExpert(sim)
        episodes: list[RecordedEpisode] = []
        with BagWriter(path, cfg.storage, custom_data=custom) as bag:
            for camera in cfg.cameras:  # QoS as sim_node offers it (config/sim.yaml)
                bag.add_topic(cfg.topics.camera(camera), "sensor_msgs/msg/Image", qos=[offered_qos(depth=2)])
            bag.add_topic(cfg.topics.joint_states, "sensor_msgs/msg/JointState", qos=[offered_qos(depth=10)])
            bag.add_topic(cfg.topics.instruction, "std_msgs/msg/String", qos=[offered_qos(latched=True)])
            bag.add_topic(cfg.topics.command, "trajectory_msgs/msg/JointTrajectory", qos=[offered_qos()])
            start_s = cfg.start_time_s
            for i, (seed, task) in enumerate(tqdm(plan, desc="record", unit="episode", disable=not cfg.progress)):
                sim.reset(seed)
                offset_ns = int(round(start_s * NS))
                duration, success, steps = _record_episode(sim, expert, task, cfg, bag, msgs, offset_ns)
                episodes.append(RecordedEpisode(i, seed, task, start_s, start_s + duration, success, steps))
                start_s += duration + cfg.episode_gap_s
            counts = bag.counts
    return SimRecording(path, contract, tuple(episodes), counts)


_NUMBER_OPTIONS = (  # flag, SimRecordingConfig field, type, help
    ("--episodes", "episodes", int, "episodes to record"),
    ("--seed", "seed", int, "master seed"),
    ("--image-size", "image_size", int, "image size in pixels"),
    ("--camera-rate", "camera_rate_hz", float, "image rate, Hz"),
    ("--joint-state-rate", "joint_state_rate_hz", float, "JointState rate, Hz"),
    ("--control-rate", "control_rate_hz", float, "command rate, Hz"),
    ("--episode-gap", "episode_gap_s", float, "seconds between episodes"),
)


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """``moe_vla_bag_from_sim -o BAG [options]``: record expert episodes into a new bag; exit 0
    written, 2 bad arguments (or an existing bag), 1 failed; errors on stderr."""
    return run_tool(PROG, lambda: _run(argv))


def _run(argv: Sequence[str] | None) -> int:
    d = SimRecordingConfig()
    p = tool_parser(PROG, __doc__)
    add_output_argument(p, "new bag folder (must not exist)")
    for flag, name, kind, text in _NUMBER_OPTIONS:
        p.add_argument(flag, dest=name, type=kind, default=getattr(d, name), help=f"{text} (default %(default)s)")
    p.add_argument("--tasks", type=_names, default=d.tasks, help="comma-separated task families (default reach,push)")
    p.add_argument("--cameras", type=_names, default=d.cameras, help="comma-separated cameras (default front,wrist)")
    p.add_argument("--max-episode-seconds", type=float, default=None, help="cut episodes after this long")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default=d.storage)
    add_progress_argument(p)
    args = p.parse_args(argv)
    cfg = SimRecordingConfig(
        tasks=args.tasks, cameras=args.cameras, max_episode_s=args.max_episode_seconds, storage=args.storage,
        progress=args.progress, **{name: getattr(args, name) for _, name, _, _ in _NUMBER_OPTIONS},
    )
    recording = record_sim_bag(args.out, cfg)
    solved = sum(e.success for e in recording.episodes)
    print(f"wrote {len(recording.episodes)} episode(s) ({solved} solved), {recording.duration_s:.1f} s, "
          f"{sum(recording.counts.values())} messages to {recording.path}")
    for e in recording.episodes:
        print(f"  {e.index}: {e.task.instruction!r} {e.start_s:.2f}-{e.end_s:.2f} s, success={e.success}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
