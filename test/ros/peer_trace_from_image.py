"""A peer process for the cross-process test: answers each Image with a ReasoningTrace.

The trace echoes the image's stamp, carries a text computed from the pixels (so the test can
check the image arrived intact) and one LayerExpertUsage entry.
"""

import sys

import numpy as np
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import Image

from moe_vla_msgs.msg import LayerExpertUsage, ReasoningTrace
from moe_vla_ros.ros.spin import spin_until_shutdown


class TraceFromImage(Node):
    def __init__(self) -> None:
        super().__init__("trace_from_image")
        self.pub = self.create_publisher(ReasoningTrace, "reasoning_trace", 10)
        self.create_subscription(Image, "image", self.on_image, 10)
        self.count = 0

    def on_image(self, msg: Image) -> None:
        pixels = np.frombuffer(bytes(msg.data), dtype=np.uint8)
        self.count += 1
        trace = ReasoningTrace()
        trace.header = msg.header
        trace.text = f"{msg.encoding} {msg.width}x{msg.height} sum={int(pixels.sum(dtype=np.uint64))}"
        trace.chunk_id = self.count
        trace.instruction = msg.header.frame_id
        trace.generation_latency.nanosec = 1234
        trace.num_tokens = 3
        trace.stopped_at_eos = True
        layer = LayerExpertUsage(layer_name="trunk.1.ffn", router_entropy=0.5, num_tokens=int(pixels.size))
        layer.expert_load = [0.25, 0.75]
        trace.expert_usage = [layer]
        self.pub.publish(trace)


def main() -> int:
    rclpy.init()
    node = TraceFromImage()
    print("peer ready", flush=True)
    spin_until_shutdown(node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
