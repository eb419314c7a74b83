"""Two separate processes exchange a sensor_msgs/Image and our ReasoningTrace over real DDS."""

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.ros

PEER = Path(__file__).with_name("peer_trace_from_image.py")


def test_image_and_reasoning_trace_cross_process(ros_context):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from moe_vla_msgs.msg import ReasoningTrace
    from moe_vla_ros.ros.testing import RosPeerProcess, spin_until, wait_for_match

    node = Node("cross_process_test", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    received: list[ReasoningTrace] = []
    pub = node.create_publisher(Image, "image", 10)
    sub = node.create_subscription(ReasoningTrace, "reasoning_trace", received.append, 10)

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    img = Image(height=48, width=64, encoding="rgb8", is_bigendian=0, step=64 * 3)
    img.data = pixels.tobytes()
    img.header.frame_id = "pick up the red cube"
    img.header.stamp.sec, img.header.stamp.nanosec = 42, 500

    with RosPeerProcess([str(PEER)]) as peer:
        try:
            wait_for_match(executor, pub)
            wait_for_match(executor, sub)
            pub.publish(img)
            spin_until(executor, lambda: len(received) >= 1, what="a ReasoningTrace from the peer")
        finally:
            rc = peer.stop()
        assert rc == 0, peer.output()

    trace = received[0]
    assert trace.text == f"rgb8 64x48 sum={int(pixels.sum(dtype=np.uint64))}"
    assert (trace.header.stamp.sec, trace.header.stamp.nanosec) == (42, 500)
    assert trace.instruction == "pick up the red cube"
    assert trace.chunk_id == 1 and trace.num_tokens == 3 and trace.stopped_at_eos
    assert trace.generation_latency.nanosec == 1234
    assert [u.layer_name for u in trace.expert_usage] == ["trunk.1.ffn"]
    assert list(trace.expert_usage[0].expert_load) == pytest.approx([0.25, 0.75])
    assert trace.expert_usage[0].num_tokens == pixels.size
    node.destroy_node()
    executor.shutdown()
