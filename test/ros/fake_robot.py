"""A fake robot for policy-node tests: cameras and joint states like a ros2_control robot with mock
hardware (the joints follow the commanded trajectory exactly, as mock_components/GenericSystem
does), behind a joint_trajectory_controller stand-in that refuses what the real one refuses.

Used in-process (FakeRobot node) and as a separate process (`python test/ros/fake_robot.py ...`).
Faults can be injected, also while running (set `fault`, `camera_rate_hz`, `stamp_fault`):
  fault        "nan" (a NaN joint position), "missing_joint", "bad_image" (truncated data),
               "degrees" (every joint reported in degrees), "out_of_limit" (joint 0 `+0.5 rad`
               past its upper limit `limit_upper`), "" (none)
  stamp_fault  "old" (stamps 2 s in the past), "future" (2 s ahead), "zero", "frozen" (the same
               stamp every time), "" (none)
  pause        publish nothing (stale inputs)
What a fault makes wrong is remembered (`faulty_stamps` in ns under a stamp fault,
`faulty_positions` in the node's joint order under a joint fault), so tests can tell commands computed from it.
Every received trajectory is checked against joint_trajectory_controller's acceptance rules;
refused ones are logged, counted (`refused`) and not followed, as the controller would.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header, String
from trajectory_msgs.msg import JointTrajectory

from moe_vla_ros.ros import qos
from moe_vla_ros.ros.mock_controller import MockJointTrajectoryController
from moe_vla_ros.ros.spin import init_process, spin_until_shutdown

TRAJECTORY_TOPIC = "/joint_trajectory_controller/joint_trajectory"


class FakeRobot(Node):
    def __init__(self, camera_topics, joint_names, *, size=(48, 64), encoding="bgr8", rate_hz=30.0,
                 instruction="", fault="", context=None, initial_positions=None, limit_upper=1.0,
                 namespace=""):
        super().__init__("fake_robot", context=context, namespace=namespace)
        self.joint_names = list(joint_names)
        self.size, self.encoding, self.fault = size, encoding, fault
        self.stamp_fault, self.pause, self.limit_upper = "", False, float(limit_upper)
        self.camera_rate_hz = rate_hz  # cameras publish at most this often (joint states at rate_hz)
        self.cam_pubs = [self.create_publisher(Image, t, qos.sensor_qos("reliable")) for t in camera_topics]
        self.joint_pub = self.create_publisher(JointState, "joint_states", qos.sensor_qos("reliable"))
        # Volatile, republished every second: matches the node's default (volatile) subscription.
        self.instruction_pub = self.create_publisher(String, "instruction", qos.command_qos())
        start = np.zeros(len(self.joint_names)) if initial_positions is None else np.asarray(initial_positions, float)
        self.controller = MockJointTrajectoryController(self.joint_names, start, lambda: self._now())
        self.create_subscription(JointTrajectory, TRAJECTORY_TOPIC.lstrip("/"), self._on_trajectory,
                                 qos.command_qos(depth=10))
        self.instruction = instruction
        self.count = 0
        self.rate_hz = rate_hz
        self._last_camera_time = -math.inf
        self._frozen_stamp = None
        self.faulty_stamps: set[int] = set()
        self.faulty_positions: list[np.ndarray] = []
        self.rng = np.random.default_rng(0)
        self.timer = self.create_timer(1.0 / rate_hz, self.tick)

    @property
    def refused(self) -> int:
        """Trajectories the controller stand-in refused."""
        return self.controller.refused

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        reason = self.controller.receive(msg)
        if reason:
            self.get_logger().error(f"joint_trajectory_controller would refuse this trajectory: {reason}")

    def _stamp(self):
        now = self.get_clock().now()
        if self.stamp_fault == "old":
            return (now - rclpy.duration.Duration(seconds=2.0)).to_msg()
        if self.stamp_fault == "future":
            return (now + rclpy.duration.Duration(seconds=2.0)).to_msg()
        if self.stamp_fault == "zero":
            return Header().stamp
        if self.stamp_fault == "frozen":
            self._frozen_stamp = self._frozen_stamp or now.to_msg()
            return self._frozen_stamp
        self._frozen_stamp = None
        return now.to_msg()

    def positions(self) -> np.ndarray:
        """Joint positions [J] now (the commanded setpoint: mock hardware)."""
        return self.controller.positions()

    def tick(self) -> None:
        if self.pause:
            return
        stamp, now = self._stamp(), self._now()
        if self.stamp_fault:
            self.faulty_stamps.add(stamp.sec * 1_000_000_000 + stamp.nanosec)
        if now - self._last_camera_time >= 1.0 / self.camera_rate_hz - 1e-3:
            self._last_camera_time = now
            self._publish_images(stamp)
        q = self.positions()
        if self.fault == "degrees":
            q = np.degrees(q)
        if self.fault == "out_of_limit":
            q = q.copy()
            q[0] = self.limit_upper + 0.5
        if self.fault == "nan":
            q = q.copy()
            q[-1] = np.nan  # published first below (reversed order)
        if self.fault in ("nan", "degrees", "out_of_limit"):
            self.faulty_positions.append(q.copy())
        names = list(reversed(self.joint_names)) + ["extra_joint"]  # any order, extras ignored
        values = list(reversed(q.tolist())) + [0.0]
        if self.fault == "missing_joint":
            names, values = names[1:], values[1:]
        self.joint_pub.publish(JointState(header=Header(stamp=stamp), name=names, position=values,
                                          velocity=[0.0] * len(names)))
        if self.instruction and self.count % int(self.rate_hz) == 0:
            self.instruction_pub.publish(String(data=self.instruction))
        self.count += 1

    def _publish_images(self, stamp) -> None:
        h, w = self.size
        channels = 3 if self.encoding in ("rgb8", "bgr8") else 1
        pixels = self.rng.integers(0, 256, size=(h, w, channels), dtype=np.uint8)
        data = pixels.tobytes()
        for pub in self.cam_pubs:
            img = Image(height=h, width=w, encoding=self.encoding, step=w * channels)
            img.header.stamp = stamp
            img.data = data[:-7] if self.fault == "bad_image" else data
            pub.publish(img)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--camera-topics", nargs="+", required=True)
    p.add_argument("--joint-names", nargs="+", required=True)
    p.add_argument("--instruction", default="")
    p.add_argument("--fault", default="")
    p.add_argument("--namespace", default="")
    args = p.parse_args()
    init_process()
    node = FakeRobot(args.camera_topics, args.joint_names, instruction=args.instruction, fault=args.fault,
                     namespace=args.namespace)
    print("fake robot publishing", flush=True)
    spin_until_shutdown(node)
    print(f"fake robot: {node.controller.accepted} trajectories followed, {node.refused} refused", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
