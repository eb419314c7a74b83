"""A fake robot for policy-node tests: publishes camera images and joint states at a rate.

Used in-process (FakeRobot node) and as a separate process (`python test/ros/fake_robot.py ...`).
Faults can be injected: NaN joint positions, missing joints, malformed images.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from moe_vla_ros.ros import qos
from moe_vla_ros.ros.spin import spin_until_shutdown


class FakeRobot(Node):
    def __init__(self, camera_topics, joint_names, *, size=(48, 64), encoding="bgr8", rate_hz=30.0,
                 instruction="", fault="", context=None):
        super().__init__("fake_robot", context=context)
        self.joint_names = list(joint_names)
        self.size, self.encoding, self.fault = size, encoding, fault
        self.cam_pubs = [self.create_publisher(Image, t, qos.sensor_qos("reliable")) for t in camera_topics]
        self.joint_pub = self.create_publisher(JointState, "/joint_states", qos.sensor_qos("reliable"))
        # Volatile, republished every second: matches the node's default (volatile) subscription.
        self.instruction_pub = self.create_publisher(String, "/instruction", qos.command_qos())
        self.instruction = instruction
        self.count = 0
        self.rate_hz = rate_hz
        self.rng = np.random.default_rng(0)
        self.timer = self.create_timer(1.0 / rate_hz, self.tick)

    def tick(self) -> None:
        stamp = self.get_clock().now().to_msg()
        h, w = self.size
        channels = 3 if self.encoding in ("rgb8", "bgr8") else 1
        pixels = self.rng.integers(0, 256, size=(h, w, channels), dtype=np.uint8)
        for pub in self.cam_pubs:
            img = Image(height=h, width=w, encoding=self.encoding, step=w * channels)
            img.header.stamp = stamp
            data = pixels.tobytes()
            img.data = data[:-7] if self.fault == "bad_image" else data
            pub.publish(img)
        names = list(reversed(self.joint_names)) + ["extra_joint"]  # any order, extras ignored
        q = 0.1 * np.sin(0.05 * self.count + np.arange(len(names)))
        if self.fault == "nan":
            q[0] = np.nan
        if self.fault == "missing_joint":
            names, q = names[1:], q[1:]
        self.joint_pub.publish(JointState(header=self._header(stamp), name=names, position=q.tolist(),
                                          velocity=[0.0] * len(names)))
        if self.instruction and self.count % int(self.rate_hz) == 0:
            self.instruction_pub.publish(String(data=self.instruction))
        self.count += 1

    @staticmethod
    def _header(stamp):
        from std_msgs.msg import Header

        return Header(stamp=stamp)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--camera-topics", nargs="+", required=True)
    p.add_argument("--joint-names", nargs="+", required=True)
    p.add_argument("--instruction", default="")
    p.add_argument("--fault", default="")
    args = p.parse_args()
    rclpy.init()
    node = FakeRobot(args.camera_topics, args.joint_names, instruction=args.instruction, fault=args.fault)
    print("fake robot publishing", flush=True)
    spin_until_shutdown(node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
