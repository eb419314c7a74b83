"""Tests of moe_vla_ros/bags/typestore.py: distro store, our types, hashes, rclpy agreement."""

import subprocess
import sys

import numpy as np
import pytest
from rosbags.serde import SerdeError
from rosbags.typesys import Stores

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.typestore import (
    DISTRO_STORE,
    deserialize_cdr,
    ensure_type,
    find_msg_dir,
    get_typestore,
    new_typestore,
    rosidl_hash_mismatches,
)

OUR_TYPES = [
    "moe_vla_msgs/msg/ReasoningTrace",
    "moe_vla_msgs/msg/ExpertUsage",
    "moe_vla_msgs/msg/LayerExpertUsage",
    "moe_vla_msgs/msg/PolicyStatus",
    "moe_vla_msgs/msg/LatencyStats",
]


def test_store_is_kilted_with_our_types_and_standard_ones():
    assert DISTRO_STORE is Stores.ROS2_KILTED
    store = get_typestore()
    assert store is get_typestore()  # shared
    for name in OUR_TYPES + ["sensor_msgs/msg/Image", "rosgraph_msgs/msg/Clock", "diagnostic_msgs/msg/DiagnosticArray"]:
        assert name in store.fielddefs, name
    assert find_msg_dir().name == "msg"


def test_rosbags_hashes_equal_the_ones_rosidl_generated():
    store = new_typestore()
    assert rosidl_hash_mismatches(store) == {}
    assert rosidl_hash_mismatches(store, "sensor_msgs") == {}
    assert rosidl_hash_mismatches(store, "trajectory_msgs") == {}


def test_unknown_type_is_a_bag_error_naming_it():
    store = new_typestore()
    with pytest.raises(BagError, match="unknown message type nosuch_msgs/msg/Thing"):
        ensure_type(store, "nosuch_msgs/msg/Thing")
    ensure_type(store, "sensor_msgs/msg/Image")  # known: no-op


def _ours(store):
    t = store.types
    usage = t["moe_vla_msgs/msg/LayerExpertUsage"](
        layer_name="action_head.layers.0.ffn", expert_load=np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32),
        router_entropy=1.25, num_tokens=17, dropped_tokens=2,
    )
    header = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=12, nanosec=345), frame_id="f")
    latency = t["moe_vla_msgs/msg/LatencyStats"](count=3, mean_ms=1.5, p50_ms=1.0, p95_ms=2.0, p99_ms=2.5, max_ms=3.0)
    return {
        "moe_vla_msgs/msg/ReasoningTrace": t["moe_vla_msgs/msg/ReasoningTrace"](
            header=header, text="reach the cube", chunk_id=7, instruction="pick",
            generation_latency=t["builtin_interfaces/msg/Duration"](sec=0, nanosec=999), num_tokens=3,
            stopped_at_eos=True, expert_usage=[usage],
        ),
        "moe_vla_msgs/msg/ExpertUsage": t["moe_vla_msgs/msg/ExpertUsage"](header=header, chunk_id=8, layers=[usage, usage]),
        "moe_vla_msgs/msg/PolicyStatus": t["moe_vla_msgs/msg/PolicyStatus"](
            header=header, lifecycle_state=t["lifecycle_msgs/msg/State"](id=3, label="active"),
            backend="onnxruntime", execution_providers=["CPUExecutionProvider"], cpu_fallback=False,
            model_id="m-1234", inference_latency=latency, chunks_published=5, dropped_inputs=1, stale_inputs=0,
            rejected_commands=0, rejected_inputs=2, inference_errors=0, commanding=True, hold_reason="",
            hold_causes=["stale_input"], hold_counts=np.array([1], np.uint64), rejected_input_causes=["joint_states/jump"],
            rejected_input_counts=np.array([2], np.uint64), last_error="joint_states rejected: jump",
        ),
    }


@pytest.mark.parametrize("msgtype", list(_ours(get_typestore())))
def test_cdr_round_trip_between_rosbags_and_rclpy(msgtype):
    from rclpy.serialization import deserialize_message, serialize_message

    from moe_vla_ros.ros.bag_recorder import message_class

    store = get_typestore()
    original = _ours(store)[msgtype]
    cls = message_class(msgtype)
    # rosbags -> rclpy
    from_rosbags = deserialize_message(bytes(store.serialize_cdr(original, msgtype)), cls)
    # rclpy -> rosbags -> rclpy gives the same message (bytes may differ in CDR padding only)
    data = serialize_message(from_rosbags)
    assert len(data) == len(store.serialize_cdr(original, msgtype))
    back = deserialize_cdr(store, data, msgtype)
    assert deserialize_message(bytes(store.serialize_cdr(back, msgtype)), cls) == from_rosbags
    assert back.header.stamp.sec == 12 and back.header.stamp.nanosec == 345
    if msgtype.endswith("ReasoningTrace"):
        assert from_rosbags.text == "reach the cube" and from_rosbags.chunk_id == 7
        assert list(from_rosbags.expert_usage[0].expert_load) == pytest.approx([0.1, 0.2, 0.3, 0.4])
        assert back.expert_usage[0].layer_name == "action_head.layers.0.ffn"
    if msgtype.endswith("PolicyStatus"):
        assert from_rosbags.lifecycle_state.label == "active"
        assert list(back.execution_providers) == ["CPUExecutionProvider"]
        assert back.inference_latency.p99_ms == pytest.approx(2.5)
        assert list(from_rosbags.hold_causes) == ["stale_input"] and list(from_rosbags.rejected_input_counts) == [2]


def test_rclpy_standard_messages_round_trip():
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    image = Image(height=2, width=3, encoding="rgb8", step=9, data=bytes(range(18)))
    image.header.stamp.sec = 5
    traj = JointTrajectory(joint_names=["a", "b"])
    traj.points = [JointTrajectoryPoint(positions=[0.5, -0.5])]
    traj.points[0].time_from_start.nanosec = 100_000_000
    store = get_typestore()
    got = deserialize_cdr(store, serialize_message(image), "sensor_msgs/msg/Image")
    assert got.data.tolist() == list(range(18)) and got.header.stamp.sec == 5
    data = serialize_message(traj)  # carries trailing bytes beyond the message (Fast CDR size estimate)
    with pytest.raises(SerdeError, match="size mismatch"):
        store.deserialize_cdr(data, "trajectory_msgs/msg/JointTrajectory")
    got = deserialize_cdr(store, data, "trajectory_msgs/msg/JointTrajectory")
    assert got.points[0].positions.tolist() == [0.5, -0.5]
    assert deserialize_message(bytes(store.serialize_cdr(got, "trajectory_msgs/msg/JointTrajectory")), JointTrajectory) == traj


def test_bag_modules_do_not_import_rclpy():
    modules = ["typestore", "writer", "reader", "validate", "resample", "demo_streams", "episode_plan", "to_dataset", "synthetic"]
    code = (
        "import sys\n"
        + "".join(f"import moe_vla_ros.bags.{m}\n" for m in modules)
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'rosgraph_msgs', 'sensor_msgs'))\n"
        + "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
