"""Generated demonstration bags with a known ground truth, for tests, benchmarks and examples.

`SyntheticDemo` describes a recording of a 3-joint arm following straight-line joint ramps
while two instructions are given one after the other; `write_demo_bag()` writes it (either
storage) with every topic the policy node reads or writes:

    /camera/front/image_raw             sensor_msgs/Image, bgr8, padded rows
    /camera/wrist/image_raw/compressed  sensor_msgs/CompressedImage, png (lossless)
    /joint_states                       sensor_msgs/JointState, joints reversed + a gripper
    /instruction                        std_msgs/String, at each instruction change
    /joint_trajectory_controller/joint_trajectory   JointTrajectory chunks
    /reasoning_trace, /expert_usage     our messages

Every value can be recomputed from the spec (`position`, `command_target`, `frame_rgb`, the
stamp functions), so a test can assert exactly where each sample must land. Header stamps are
sensor times; receive (log) times are `latency_s` later.

Pure: rosbags + numpy + OpenCV, no rclpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moe_vla_ros.bags.typestore import get_typestore
from moe_vla_ros.bags.writer import BagWriter
from moe_vla_ros.contract import SensorContract
from moe_vla_ros.control.images import rgb_to_compressed

FRONT_TOPIC = "/camera/front/image_raw"
WRIST_TOPIC = "/camera/wrist/image_raw/compressed"
JOINT_STATE_TOPIC = "/joint_states"
INSTRUCTION_TOPIC = "/instruction"
COMMAND_TOPIC = "/joint_trajectory_controller/joint_trajectory"
REASONING_TOPIC = "/reasoning_trace"
EXPERT_USAGE_TOPIC = "/expert_usage"
NS = 1_000_000_000


@dataclass(frozen=True)
class SyntheticDemo:
    """A generated demonstration; all times relative to `start_ns` unless named *_ns.

    Attributes:
        joint_names: the arm's joints (the JointState also carries "gripper", listed first).
        duration_s: length of the recording.
        start_ns: absolute time of t = 0.
        joint_rate_hz, camera_rate_hz, command_rate_hz, reasoning_rate_hz: publication rates.
        image_height, image_width: recorded image size.
        instructions: (time s, text) instruction changes.
        command_lead: offset (rad) of commanded targets over the followed ramp.
        command_points: points per trajectory chunk, spaced 1/command_rate_hz from offset 0.
        latency_s: receive time minus header stamp.
        joint_gap_s: (from, to) interval without joint states, or None.
    """

    joint_names: tuple[str, ...] = ("j1", "j2", "j3")
    duration_s: float = 6.0
    start_ns: int = 1_700_000_000 * NS
    joint_rate_hz: float = 50.0
    camera_rate_hz: float = 20.0
    command_rate_hz: float = 10.0
    reasoning_rate_hz: float = 2.0
    image_height: int = 48
    image_width: int = 64
    instructions: tuple[tuple[float, str], ...] = ((0.0, "reach the red cube"), (3.0, "push the blue cube to the left"))
    command_lead: float = 0.05
    command_points: int = 4
    latency_s: float = 0.002
    joint_gap_s: tuple[float, float] | None = None

    def contract(self, image_size: tuple[int, int] = (32, 32), control_rate_hz: float = 10.0) -> SensorContract:
        """A contract matching this demo (cameras "front" and "wrist")."""
        return SensorContract(("front", "wrist"), image_size[0], image_size[1], self.joint_names, control_rate_hz)

    @staticmethod
    def camera_topics() -> dict[str, str]:
        return {"front": FRONT_TOPIC, "wrist": WRIST_TOPIC}

    # -- ground truth -----------------------------------------------------------------------

    def position(self, t_s: np.ndarray | float) -> np.ndarray:
        """Joint positions [..., J] at time t: straight ramps 0.1*(j+1)*t + 0.2*j."""
        t = np.asarray(t_s, dtype=np.float64)[..., None]
        j = np.arange(len(self.joint_names), dtype=np.float64)
        return 0.1 * (j + 1.0) * t + 0.2 * j

    def command_target(self, t_s: np.ndarray | float) -> np.ndarray:
        """Commanded joint targets [..., J] at time t (the ramp plus `command_lead`)."""
        return self.position(t_s) + self.command_lead

    def stamps_s(self, rate_hz: float) -> np.ndarray:
        """Times (s) of a stream at `rate_hz` over the recording: i / rate."""
        return np.arange(int(np.floor(self.duration_s * rate_hz + 1e-9))) / rate_hz

    def joint_stamps_s(self) -> np.ndarray:
        t = self.stamps_s(self.joint_rate_hz)
        if self.joint_gap_s is not None:
            t = t[(t < self.joint_gap_s[0]) | (t >= self.joint_gap_s[1])]
        return t

    def frame_rgb(self, camera: str, index: int) -> np.ndarray:
        """The RGB uint8 [H, W, 3] frame `index` of `camera`: constant colour encoding the index."""
        base = (index * 3 + (0 if camera == "front" else 128)) % 256
        colour = np.array([base, (base + 50) % 256, (base + 100) % 256], dtype=np.uint8)
        return np.broadcast_to(colour, (self.image_height, self.image_width, 3)).copy()

    def to_ns(self, t_s: float) -> int:
        return self.start_ns + int(round(t_s * NS))

    def instruction_at(self, t_s: float) -> str:
        active = [text for t, text in self.instructions if t <= t_s]
        return active[-1] if active else ""


def _stamp(types, t_ns: int):
    return types["builtin_interfaces/msg/Time"](sec=t_ns // NS, nanosec=t_ns % NS)


def _header(types, t_ns: int, frame_id: str = ""):
    return types["std_msgs/msg/Header"](stamp=_stamp(types, t_ns), frame_id=frame_id)


def write_demo_bag(path: str | Path, demo: SyntheticDemo = SyntheticDemo(), storage: str = "mcap") -> SyntheticDemo:
    """Write `demo` as a new bag at `path`; returns `demo` (the ground truth)."""
    types = get_typestore().types
    latency = int(round(demo.latency_s * NS))
    events: list[tuple[int, str, object]] = []  # (receive ns, topic, message)

    for i, t in enumerate(demo.stamps_s(demo.camera_rate_hz)):
        t_ns = demo.to_ns(t)
        rgb = demo.frame_rgb("front", i)
        bgr = rgb[:, :, ::-1]
        step = demo.image_width * 3 + 8  # padded rows
        rows = np.zeros((demo.image_height, step), dtype=np.uint8)
        rows[:, : demo.image_width * 3] = bgr.reshape(demo.image_height, -1)
        front = types["sensor_msgs/msg/Image"](
            header=_header(types, t_ns, "front"), height=demo.image_height, width=demo.image_width,
            encoding="bgr8", is_bigendian=0, step=step, data=rows.reshape(-1),
        )
        wrist = types["sensor_msgs/msg/CompressedImage"](
            header=_header(types, t_ns, "wrist"), format="png",
            data=np.frombuffer(rgb_to_compressed(demo.frame_rgb("wrist", i), "png"), dtype=np.uint8),
        )
        events += [(t_ns + latency, FRONT_TOPIC, front), (t_ns + latency, WRIST_TOPIC, wrist)]

    names = ["gripper", *reversed(demo.joint_names)]
    for t in demo.joint_stamps_s():
        q = demo.position(t)[::-1]
        state = types["sensor_msgs/msg/JointState"](
            header=_header(types, demo.to_ns(t)), name=names,
            position=np.concatenate([[0.04], q]), velocity=np.zeros(len(names)), effort=np.zeros(0),
        )
        events.append((demo.to_ns(t) + latency, JOINT_STATE_TOPIC, state))

    for t, text in demo.instructions:
        events.append((demo.to_ns(t) + latency, INSTRUCTION_TOPIC, types["std_msgs/msg/String"](data=text)))

    point_type = types["trajectory_msgs/msg/JointTrajectoryPoint"]
    duration = types["builtin_interfaces/msg/Duration"]
    for t in demo.stamps_s(demo.command_rate_hz):
        points = []
        for i in range(demo.command_points):
            offset_ns = int(round(i * NS / demo.command_rate_hz))
            points.append(point_type(
                positions=demo.command_target(t + offset_ns / NS), velocities=np.zeros(0),
                accelerations=np.zeros(0), effort=np.zeros(0),
                time_from_start=duration(sec=offset_ns // NS, nanosec=offset_ns % NS),
            ))
        traj = types["trajectory_msgs/msg/JointTrajectory"](
            header=_header(types, demo.to_ns(t)), joint_names=list(demo.joint_names), points=points,
        )
        events.append((demo.to_ns(t) + latency, COMMAND_TOPIC, traj))

    layer = types["moe_vla_msgs/msg/LayerExpertUsage"]
    for n, t in enumerate(demo.stamps_s(demo.reasoning_rate_hz)):
        usage = [layer(layer_name="trunk.1.ffn", expert_load=np.array([0.25, 0.75], dtype=np.float32),
                       router_entropy=0.5, num_tokens=n, dropped_tokens=0)]
        trace = types["moe_vla_msgs/msg/ReasoningTrace"](
            header=_header(types, demo.to_ns(t)), text=f"thinking {n}", chunk_id=n,
            instruction=demo.instruction_at(t), generation_latency=duration(sec=0, nanosec=1234),
            num_tokens=2, stopped_at_eos=True, expert_usage=usage,
        )
        expert = types["moe_vla_msgs/msg/ExpertUsage"](header=_header(types, demo.to_ns(t)), chunk_id=n, layers=usage)
        events += [(demo.to_ns(t) + latency, REASONING_TOPIC, trace), (demo.to_ns(t) + latency, EXPERT_USAGE_TOPIC, expert)]

    events.sort(key=lambda e: e[0])
    with BagWriter(path, storage) as bag:
        for topic, msg in {topic: msg for _, topic, msg in events}.items():
            bag.add_topic(topic, msg.__msgtype__)
        for t_ns, topic, msg in events:
            bag.write(topic, t_ns, msg)
    return demo


def write_image_bag(
    path: str | Path, count: int, height: int, width: int, rate_hz: float = 30.0,
    storage: str = "mcap", topic: str = FRONT_TOPIC,
) -> None:
    """A bag of `count` rgb8 Images of height x width at `rate_hz` (benchmarks, player tests)."""
    types = get_typestore().types
    pixels = np.random.default_rng(0).integers(0, 256, size=height * width * 3, dtype=np.uint8)
    start = SyntheticDemo().start_ns
    with BagWriter(path, storage) as bag:
        bag.add_topic(topic, "sensor_msgs/msg/Image")
        for i in range(count):
            t_ns = start + int(round(i * NS / rate_hz))
            image = types["sensor_msgs/msg/Image"](
                header=_header(types, t_ns, str(i)), height=height, width=width,
                encoding="rgb8", is_bigendian=0, step=width * 3, data=pixels,
            )
            bag.write(topic, t_ns, image)
