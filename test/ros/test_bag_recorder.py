"""Tests of moe_vla_ros/ros/bag_recorder.py on a real ROS graph (this machine only)."""

import re

import numpy as np
import pytest

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.reader import BagReader
from moe_vla_ros.bags.typestore import get_typestore

pytestmark = pytest.mark.ros

IMAGE, JOINTS, INSTRUCTION, TRACE = "/camera/front/image_raw", "/joint_states", "/instruction", "/reasoning_trace"


def _executor(context, *nodes):
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=context)
    for node in nodes:
        executor.add_node(node)
    return executor


def _image(i: int, height: int = 6, width: int = 8):
    from sensor_msgs.msg import Image

    msg = Image(height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3)
    msg.data = np.full(height * width * 3, i % 256, dtype=np.uint8).tobytes()
    msg.header.frame_id = str(i)
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1000 + i, 7
    return msg


def test_graph_type_hashes_match_the_definitions_stored_in_bags(ros_context):
    from rclpy.node import Node
    from sensor_msgs.msg import Image, JointState

    from moe_vla_msgs.msg import ExpertUsage, PolicyStatus, ReasoningTrace

    node = Node("hash_check", context=ros_context)
    store = get_typestore()
    for cls, name in [(ReasoningTrace, "moe_vla_msgs/msg/ReasoningTrace"), (ExpertUsage, "moe_vla_msgs/msg/ExpertUsage"),
                      (PolicyStatus, "moe_vla_msgs/msg/PolicyStatus"), (Image, "sensor_msgs/msg/Image"),
                      (JointState, "sensor_msgs/msg/JointState")]:
        topic = "/hash_" + name.rsplit("/", 1)[1].lower()
        node.create_publisher(cls, topic, 1)
        (info,) = node.get_publishers_info_by_topic(topic)
        assert info.topic_type == name
        assert str(info.topic_type_hash) == store.hash_rihs01(name), name
    node.destroy_node()


def test_config_validation_and_qos_choice():
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from moe_vla_ros.ros.bag_recorder import DEFAULT_TOPICS, RecorderConfig, subscription_qos

    assert "/expert_usage" in DEFAULT_TOPICS and "/diagnostics" in DEFAULT_TOPICS
    with pytest.raises(BagError, match="fully qualified"):
        RecorderConfig("x", topics=("joint_states",))
    with pytest.raises(BagError, match="unknown bag storage"):
        RecorderConfig("x", storage="bag1")
    reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)
    assert subscription_qos([reliable], 5).durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert subscription_qos([reliable], 5).reliability == ReliabilityPolicy.RELIABLE
    mixed = subscription_qos([reliable, best_effort], 5)
    assert (mixed.reliability, mixed.durability) == (ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_records_publishers_of_this_process(ros_context, tmp_path, storage):
    from rclpy.node import Node
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import String

    from moe_vla_msgs.msg import LayerExpertUsage, ReasoningTrace
    from moe_vla_ros.ros.bag_recorder import BagRecorder, RecorderConfig
    from moe_vla_ros.ros.qos import latched_qos, sensor_qos, telemetry_qos
    from moe_vla_ros.ros.testing import spin_until

    source = Node("bag_source", context=ros_context)
    pubs = {
        IMAGE: source.create_publisher(Image, IMAGE, sensor_qos("best_effort", depth=10)),
        JOINTS: source.create_publisher(JointState, JOINTS, sensor_qos("reliable", depth=10)),
        INSTRUCTION: source.create_publisher(String, INSTRUCTION, latched_qos()),
        TRACE: source.create_publisher(ReasoningTrace, TRACE, telemetry_qos()),
    }
    sent: dict[str, list] = {t: [] for t in pubs}
    sent[INSTRUCTION].append(String(data="pick up the red cube"))
    pubs[INSTRUCTION].publish(sent[INSTRUCTION][0])  # latched: published before recording starts

    recorder = BagRecorder(RecorderConfig(tmp_path / "bag", storage, topics=tuple(pubs)), context=ros_context)
    executor = _executor(ros_context, source, recorder)
    spin_until(executor, lambda: recorder.subscribed(pubs), what="the recorder subscribed to all four topics")
    for i in range(5):
        state = JointState(name=["j1", "j2"], position=[0.1 * i, -0.2 * i])
        state.header.stamp.sec = 2000 + i
        trace = ReasoningTrace(text=f"step {i}", chunk_id=i, instruction="pick up the red cube")
        trace.expert_usage = [LayerExpertUsage(layer_name="trunk.0.ffn", expert_load=[0.5, 0.5], num_tokens=i)]
        for topic, msg in ((IMAGE, _image(i)), (JOINTS, state), (TRACE, trace)):
            sent[topic].append(msg)
            pubs[topic].publish(msg)
        spin_until(executor, lambda: all(recorder.counts[t] == len(sent[t]) for t in pubs), what=f"message set {i} recorded")
    counts = recorder.close()
    assert counts == {IMAGE: 5, JOINTS: 5, INSTRUCTION: 1, TRACE: 5}

    classes = {IMAGE: Image, JOINTS: JointState, INSTRUCTION: String, TRACE: ReasoningTrace}
    with BagReader(tmp_path / "bag") as bag:
        assert bag.storage == storage
        assert {t: i.msgtype for t, i in bag.topics.items()} == recorder.recorded_topics
        assert bag.topics[IMAGE].qos[0].reliability.name == "BEST_EFFORT"
        assert bag.topics[INSTRUCTION].qos[0].durability.name == "TRANSIENT_LOCAL"
        for topic in pubs:
            got = [deserialize_message(bytes(m.data), classes[topic]) for m in bag.messages([topic])]
            assert got == sent[topic], topic
        log_times = [m.log_time_ns for m in bag.messages()]
        assert log_times == sorted(log_times) and log_times[0] > 1_600_000_000 * 10**9  # receive times (ns)
        trace = bag.deserialize(next(bag.messages([TRACE])))
        assert trace.expert_usage[0].layer_name == "trunk.0.ffn"  # our type, readable through rosbags
    recorder.destroy_node()
    source.destroy_node()
    executor.shutdown()


def test_destroying_the_recorder_finishes_its_bag(ros_context, tmp_path):
    """Whoever stops the node (bringup, spin_until_shutdown) only destroys it: the bag is complete."""
    from rclpy.node import Node
    from std_msgs.msg import String

    from moe_vla_ros.ros.bag_recorder import BagRecorder, RecorderConfig
    from moe_vla_ros.ros.qos import latched_qos
    from moe_vla_ros.ros.testing import spin_until

    source = Node("bag_destroy_source", context=ros_context)
    source.create_publisher(String, INSTRUCTION, latched_qos()).publish(String(data="reach the red cube"))
    recorder = BagRecorder(RecorderConfig(tmp_path / "bag", "mcap", topics=(INSTRUCTION,)), context=ros_context)
    executor = _executor(ros_context, source, recorder)
    spin_until(executor, lambda: recorder.counts[INSTRUCTION] == 1, what="the latched instruction recorded")
    executor.remove_node(recorder)
    recorder.destroy_node()  # no close() first
    with BagReader(tmp_path / "bag") as bag:
        assert [bag.deserialize(m).data for m in bag.messages([INSTRUCTION])] == ["reach the red cube"]
    source.destroy_node()
    executor.shutdown()


def test_recorder_cli_in_a_separate_process_closes_the_bag_on_sigint(ros_context, tmp_path):
    from rclpy.node import Node
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    from moe_vla_ros.ros.qos import sensor_qos
    from moe_vla_ros.ros.testing import RosPeerProcess, spin_until, wait_for_match

    bag_path = tmp_path / "bag"
    source = Node("bag_cli_source", context=ros_context)
    pub = source.create_publisher(Image, IMAGE, sensor_qos("reliable", depth=10))
    executor = _executor(ros_context, source)
    frame_bytes = 480 * 640 * 3
    sent = [_image(i, 480, 640) for i in range(4)]
    args = ["-m", "moe_vla_ros.ros.bag_recorder", "--out", str(bag_path), "--storage", "mcap", "--topics", IMAGE]
    with RosPeerProcess(args) as recorder:
        try:
            wait_for_match(executor, pub)
            for msg in sent:
                pub.publish(msg)
            data_file = bag_path / "bag.mcap"
            # rosbags writes a 1 MiB chunk to disk once it is full: then >= 2 frames are recorded.
            spin_until(executor, lambda: data_file.exists() and data_file.stat().st_size > 2 * frame_bytes,
                       what="the recorder process to write frames to its mcap file")
        finally:
            rc = recorder.stop()
        output = recorder.output()
    assert rc == 0, output
    closed = re.search(r"closed .*bag: (\d+) messages", output)
    assert closed, output
    with BagReader(bag_path) as bag:
        got = [deserialize_message(bytes(m.data), Image) for m in bag.messages([IMAGE])]
    assert 2 <= len(got) == int(closed.group(1)) <= 4, output
    assert got == sent[: len(got)]  # in order, identical, nothing received was lost
    source.destroy_node()
    executor.shutdown()


def test_recorder_killed_with_sigkill_leaves_a_bag_that_reindex_recovers(ros_context, tmp_path):
    import os
    import signal

    from rclpy.node import Node
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    from moe_vla_ros.bags.reindex import reindex_bag
    from moe_vla_ros.ros.qos import sensor_qos
    from moe_vla_ros.ros.testing import RosPeerProcess, spin_until, wait_for_match

    bag_path = tmp_path / "bag"
    source = Node("bag_kill_source", context=ros_context)
    pub = source.create_publisher(Image, IMAGE, sensor_qos("reliable", depth=10))
    executor = _executor(ros_context, source)
    frame_bytes = 480 * 640 * 3
    sent = [_image(i, 480, 640) for i in range(4)]
    args = ["-m", "moe_vla_ros.ros.bag_recorder", "--out", str(bag_path), "--storage", "mcap", "--topics", IMAGE]
    with RosPeerProcess(args) as recorder:
        try:
            wait_for_match(executor, pub)
            for msg in sent:
                pub.publish(msg)
            data_file = bag_path / "bag.mcap"
            spin_until(executor, lambda: data_file.exists() and data_file.stat().st_size > 2 * frame_bytes,
                       what="the recorder process to write frames to its mcap file")
        finally:
            os.killpg(recorder.proc.pid, signal.SIGKILL)  # no chance to close the bag
            recorder.stop()
    assert not (bag_path / "metadata.yaml").exists()
    with pytest.raises(BagError, match="moe_vla_bag_reindex"):
        BagReader(bag_path)
    report = reindex_bag(bag_path, tmp_path / "recovered")
    with BagReader(tmp_path / "recovered") as bag:
        got = [deserialize_message(bytes(m.data), Image) for m in bag.messages([IMAGE])]
    assert 2 <= len(got) == report.messages[IMAGE] <= 4
    assert got == sent[: len(got)]  # what reached the disk, in order, identical
    source.destroy_node()
    executor.shutdown()
