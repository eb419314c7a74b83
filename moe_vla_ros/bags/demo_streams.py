"""First pass of bag -> dataset conversion: the time series a demonstration is made of.

`load_demo_streams()` reads a bag once and returns, in the contract's joint order and on one
clock, the joint states, instruction changes, trajectory commands, reasoning traces and the
stamps (only) of every camera image. Images themselves are decoded later, and only those the
episodes use. Joints are matched by name (extra joints are ignored); a missing joint, an
out-of-order stamp or an unusable message is a BagError naming topic and message index.

Time of a message ("header" reference): its header.stamp, or the receive time when the stamp
is zero or the type has no header (std_msgs/String instructions). With the "receive"
reference every message is placed at its receive time.

Pure: rosbags + numpy, no rclpy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.reader import BagMessage, BagReader
from moe_vla_ros.bags.resample import TrajectoryCommand
from moe_vla_ros.cli import parse_pairs
from moe_vla_ros.contract import SensorContract
from moe_vla_ros.control.joint_state import JointStateError, JointStateMapper

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
JOINT_STATE_TYPE = "sensor_msgs/msg/JointState"
INSTRUCTION_TYPE = "std_msgs/msg/String"
TRAJECTORY_TYPE = "trajectory_msgs/msg/JointTrajectory"
REASONING_TYPE = "moe_vla_msgs/msg/ReasoningTrace"
TIME_REFERENCES = ("header", "receive")


@dataclass(frozen=True)
class StreamTopics:
    """Which topic carries what (resolved against the bag: optional topics absent -> "")."""

    cameras: dict[str, str]
    joint_states: str
    instruction: str
    command: str = ""
    reasoning: str = ""


@dataclass
class CameraStream:
    """Stamps of one camera's images; index i is the topic's i-th message in the bag."""

    topic: str
    msgtype: str
    stamps_ns: np.ndarray  # int64 [M]


@dataclass
class DemoStreams:
    """Everything but the pixels, sorted by time (ns)."""

    joint_times_ns: np.ndarray  # int64 [N]
    joint_positions: np.ndarray  # float64 [N, J], contract order
    instructions: list[tuple[int, str]]  # (receive time, text)
    commands: list[TrajectoryCommand]
    reasoning_times_ns: np.ndarray  # int64 [R]
    reasoning_texts: list[str]
    reasoning_instructions: list[str]
    cameras: dict[str, CameraStream] = field(default_factory=dict)


def median_rate_hz(times_ns: np.ndarray) -> float:
    """Rate from the median spacing of distinct stamps (robust to jitter and drops); 0 if unknown."""
    steps = np.diff(np.asarray(times_ns, dtype=np.int64))
    steps = steps[steps > 0]
    return float(1e9 / np.median(steps)) if steps.size else 0.0


class _Ordered:
    """Checks that a topic's times never go backwards; BagError naming topic and index."""

    def __init__(self, bag: BagReader, topic: str) -> None:
        self.bag, self.topic, self.last = bag, topic, None

    def check(self, msg: BagMessage, t_ns: int) -> None:
        if self.last is not None and t_ns < self.last[1]:
            raise BagError(
                f"out-of-order header stamps on {self.topic} in {self.bag.path}: message {msg.index} has "
                f"{t_ns * 1e-9:.9f} s, earlier than message {self.last[0]} ({self.last[1] * 1e-9:.9f} s)"
            )
        self.last = (msg.index, t_ns)


def _joint_error(topic: str, msg: BagMessage, err: JointStateError) -> BagError:
    return BagError(f"wrong joint names on {topic} (message {msg.index}): {err}")


def load_demo_streams(
    bag: BagReader,
    contract: SensorContract,
    topics: StreamTopics,
    *,
    time_reference: str = "header",
    progress: bool = True,
) -> DemoStreams:
    """Read the non-image topics fully and the camera topics' stamps (see module docstring)."""
    if time_reference not in TIME_REFERENCES:
        raise BagError(f"time_reference must be one of {TIME_REFERENCES}, got {time_reference!r}")
    mapper = JointStateMapper(contract.joint_names)
    camera_of = {topic: cam for cam, topic in topics.cameras.items()}
    order = {t: _Ordered(bag, t) for t in [*camera_of, topics.joint_states]}
    joint_t: list[int] = []
    joint_q: list[np.ndarray] = []
    instructions: list[tuple[int, str]] = []
    commands: list[TrajectoryCommand] = []
    reasoning: list[tuple[int, str, str]] = []
    camera_stamps: dict[str, list[int]] = {cam: [] for cam in topics.cameras}

    def when(msg: BagMessage) -> int:
        if time_reference == "receive":
            return msg.log_time_ns
        stamp = bag.header_stamp_ns(msg)
        return stamp if stamp else msg.log_time_ns

    wanted = [*camera_of, topics.joint_states, topics.instruction, topics.command, topics.reasoning]
    wanted = list(dict.fromkeys(t for t in wanted if t))
    total = sum(bag.topics[t].count for t in wanted)
    for msg in tqdm(bag.messages(wanted), total=total, desc="scan bag", unit="msg", disable=not progress):
        t_ns = when(msg)
        if msg.topic in camera_of:
            order[msg.topic].check(msg, t_ns)
            camera_stamps[camera_of[msg.topic]].append(t_ns)
        elif msg.topic == topics.joint_states:
            order[msg.topic].check(msg, t_ns)
            state = bag.deserialize(msg)
            try:
                joint_q.append(mapper.map(list(state.name), state.position).positions)
            except JointStateError as e:
                raise _joint_error(msg.topic, msg, e) from None
            joint_t.append(t_ns)
        elif msg.topic == topics.instruction:
            instructions.append((msg.log_time_ns, str(bag.deserialize(msg).data).strip()))
        elif msg.topic == topics.command:
            commands.append(_trajectory_command(bag, msg, mapper, t_ns))
        elif msg.topic == topics.reasoning:
            trace = bag.deserialize(msg)
            reasoning.append((t_ns, str(trace.text), str(trace.instruction).strip()))

    reasoning.sort(key=lambda r: r[0])
    return DemoStreams(
        joint_times_ns=np.asarray(joint_t, dtype=np.int64),
        joint_positions=np.asarray(joint_q, dtype=np.float64).reshape(len(joint_t), contract.num_joints),
        instructions=instructions,
        commands=commands,
        reasoning_times_ns=np.asarray([r[0] for r in reasoning], dtype=np.int64),
        reasoning_texts=[r[1] for r in reasoning],
        reasoning_instructions=[r[2] for r in reasoning],
        cameras={
            cam: CameraStream(topic, bag.topics[topic].msgtype, np.asarray(camera_stamps[cam], dtype=np.int64))
            for cam, topic in topics.cameras.items()
        },
    )


def _trajectory_command(bag: BagReader, msg: BagMessage, mapper: JointStateMapper, t_ns: int) -> TrajectoryCommand:
    """A JointTrajectory in contract joint order; BagError for missing joints or bad points."""
    traj = bag.deserialize(msg)
    names = list(traj.joint_names)
    try:
        index = mapper.indices(names)  # [J]
    except JointStateError as e:
        raise _joint_error(msg.topic, msg, e) from None
    offsets, rows = [], []
    for p, point in enumerate(traj.points):
        positions = np.asarray(point.positions, dtype=np.float64)
        if positions.shape != (len(names),) or not np.all(np.isfinite(positions[index])):
            raise BagError(
                f"trajectory {msg.index} on {msg.topic}: point {p} has positions {positions.tolist()} "
                f"for joints {names}"
            )
        offsets.append(int(point.time_from_start.sec) * 1_000_000_000 + int(point.time_from_start.nanosec))
        rows.append(positions[index])
    if any(b < a for a, b in zip(offsets, offsets[1:])):
        raise BagError(f"trajectory {msg.index} on {msg.topic}: time_from_start values are not ascending: {offsets}")
    return TrajectoryCommand(
        start_ns=t_ns,
        offsets_ns=np.asarray(offsets, dtype=np.int64),
        positions=np.asarray(rows, dtype=np.float64).reshape(len(rows), mapper.num_joints),
    )


def parse_camera_topics(items: Iterable[str]) -> dict[str, str]:
    """Command-line `--camera NAME=TOPIC` items -> {camera name: image topic}, in order."""
    return parse_pairs(items, "=", "--camera NAME=TOPIC", BagError)
