"""Shared fixtures of the bag tests: generated messages of every kind and generated bags."""

from pathlib import Path

import numpy as np
import pytest

from moe_vla_ros.bags.synthetic import SyntheticDemo, write_demo_bag
from moe_vla_ros.bags.typestore import get_typestore

STORAGES = ("mcap", "sqlite3")


def make_sample_messages(count: int = 6) -> list[tuple[str, str, int, object]]:
    """(topic, type, receive ns, rosbags message) of Image, JointState, String, JointTrajectory,
    ReasoningTrace and ExpertUsage, `count` of each, interleaved in time order."""
    t = get_typestore().types
    rng = np.random.default_rng(7)
    out = []
    for i in range(count):
        base = 1_700_000_000_000_000_000 + i * 100_000_000
        stamp = t["builtin_interfaces/msg/Time"](sec=base // 10**9, nanosec=base % 10**9)
        header = t["std_msgs/msg/Header"](stamp=stamp, frame_id=f"frame{i}")
        image = t["sensor_msgs/msg/Image"](
            header=header, height=4, width=5, encoding="rgb8", is_bigendian=0, step=15,
            data=rng.integers(0, 256, 60, dtype=np.uint8),
        )
        state = t["sensor_msgs/msg/JointState"](
            header=header, name=["j1", "j2"], position=np.array([0.1 * i, -0.1 * i]),
            velocity=np.array([1.0, 2.0]), effort=np.zeros(0),
        )
        point = t["trajectory_msgs/msg/JointTrajectoryPoint"](
            positions=np.array([0.5, i * 1.0]), velocities=np.zeros(0), accelerations=np.zeros(0),
            effort=np.zeros(0), time_from_start=t["builtin_interfaces/msg/Duration"](sec=0, nanosec=100_000_000),
        )
        traj = t["trajectory_msgs/msg/JointTrajectory"](header=header, joint_names=["j1", "j2"], points=[point, point])
        layer = t["moe_vla_msgs/msg/LayerExpertUsage"](
            layer_name="trunk.0.ffn", expert_load=np.array([0.5, 0.5], dtype=np.float32),
            router_entropy=0.69, num_tokens=10 + i, dropped_tokens=0,
        )
        trace = t["moe_vla_msgs/msg/ReasoningTrace"](
            header=header, text=f"step {i}: move left", chunk_id=i, instruction="pick up the cube",
            generation_latency=t["builtin_interfaces/msg/Duration"](sec=0, nanosec=5_000_000 + i),
            num_tokens=4, stopped_at_eos=bool(i % 2), expert_usage=[layer],
        )
        usage = t["moe_vla_msgs/msg/ExpertUsage"](header=header, chunk_id=i, layers=[layer, layer])
        out += [
            ("/camera/front/image_raw", "sensor_msgs/msg/Image", base, image),
            ("/joint_states", "sensor_msgs/msg/JointState", base + 1, state),
            ("/instruction", "std_msgs/msg/String", base + 2, t["std_msgs/msg/String"](data=f"instruction {i}")),
            ("/joint_trajectory_controller/joint_trajectory", "trajectory_msgs/msg/JointTrajectory", base + 3, traj),
            ("/reasoning_trace", "moe_vla_msgs/msg/ReasoningTrace", base + 4, trace),
            ("/expert_usage", "moe_vla_msgs/msg/ExpertUsage", base + 5, usage),
        ]
    return out


@pytest.fixture
def sample_messages():
    return make_sample_messages()


@pytest.fixture(scope="module", params=STORAGES)
def demo_bag(request, tmp_path_factory) -> tuple[Path, SyntheticDemo]:
    """The default synthetic demonstration written once per storage (treat as read-only)."""
    path = tmp_path_factory.mktemp(f"demo_{request.param}") / "bag"
    return path, write_demo_bag(path, SyntheticDemo(), request.param)
