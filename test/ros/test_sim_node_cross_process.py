"""sim_node as its own process (config/sim.yaml + overrides), commanded over DDS like
joint_trajectory_controller: a trajectory is followed at its due times, an empty trajectory is
ignored, a one-point trajectory at rest holds, a trajectory naming an unknown joint is rejected,
/clock follows the stamps, SIGINT exits cleanly."""

from pathlib import Path

import numpy as np
import pytest

from moe_vla_ros.sim.arm_sim import HOME_JOINT_POSITIONS
from moe_vla_ros.sim.config import JOINT_NAMES
from moe_vla_ros.sim.trajectory_follower import JointTrajectory as FollowerTrajectory
from moe_vla_ros.sim.trajectory_follower import TrajectoryFollower

pytestmark = pytest.mark.ros

SIM_YAML = Path(__file__).resolve().parents[2] / "config" / "sim.yaml"
HOME = np.array(HOME_JOINT_POSITIONS)
TRACKING_TOLERANCE = 0.05  # rad (gripper: m); the position actuators lag the setpoint by ~0.025
LEAD_S = 1.0  # the test trajectory starts this far ahead: a slow delivery (loaded machine) still comes first


def _stamp(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def _trajectory_msg(names, positions, times, velocities=None, start_s=0.0):
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from moe_vla_ros.ros.conversions import make_header, seconds_to_duration

    msg = JointTrajectory(header=make_header(start_s), joint_names=list(names))
    for i, t in enumerate(times):
        point = JointTrajectoryPoint(positions=[float(v) for v in positions[i]], time_from_start=seconds_to_duration(t))
        if velocities is not None:
            point.velocities = [float(v) for v in velocities[i]]
        msg.points.append(point)
    return msg


def test_sim_node_process_follows_holds_and_rejects_trajectories(ros_context):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image, JointState
    from trajectory_msgs.msg import JointTrajectory

    from moe_vla_ros.ros.qos import command_qos, sensor_qos
    from moe_vla_ros.ros.testing import RosPeerProcess, spin_until, wait_for_match

    node = Node("sim_node_commander", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    states, images, clock = [], [], []
    node.create_subscription(JointState, "/joint_states", states.append, sensor_qos("reliable", 200))
    node.create_subscription(Image, "/camera/wrist/image_raw", images.append, sensor_qos("reliable", 10))
    node.create_subscription(Clock, "/clock", clock.append, sensor_qos("best_effort", 200))
    command = node.create_publisher(JointTrajectory, "/joint_trajectory_controller/joint_trajectory", command_qos())

    def run_until(t):  # spin until joint states reach simulated time t
        spin_until(executor, lambda: states and _stamp(states[-1]) >= t, what=f"joint states up to {t:.2f} s")

    def positions_between(t0, t1):
        return np.array([m.position for m in states if t0 <= _stamp(m) <= t1])

    args = ["-m", "moe_vla_ros.ros.sim_node", "--ros-args", "--params-file", str(SIM_YAML),
            "-p", "seed:=3", "-p", "cameras.image_height:=32", "-p", "cameras.image_width:=32",
            "-p", "camera_rate_hz:=10.0", "-p", "instruction:=lift the red cube"]
    with RosPeerProcess(args) as peer:
        try:
            wait_for_match(executor, command)
            spin_until(executor, lambda: states and images and clock, what="joint states, images and /clock")
            assert (images[-1].width, images[-1].height, images[-1].encoding) == (32, 32, "rgb8")

            # 1. A cubic Hermite trajectory, starting LEAD_S ahead (absolute stamp, simulated time).
            start = _stamp(states[-1]) + LEAD_S  # the arm rests until then, however late the message arrives
            waypoints = np.array([HOME + [0.2, 0.1, -0.1, 0.2, 0.1, 0.3, 0.01],
                                  HOME + [0.4, 0.2, -0.2, 0.3, 0.2, 0.5, 0.02],
                                  HOME + [0.4, 0.2, -0.2, 0.3, 0.2, 0.5, 0.02]])
            velocities = np.array([[0.3, 0.15, -0.15, 0.2, 0.15, 0.3, 0.02], [0.2, 0.1, -0.1, 0.1, 0.1, 0.2, 0.0],
                                   np.zeros(7)])
            times = [0.5, 1.0, 1.5]
            command.publish(_trajectory_msg(JOINT_NAMES, waypoints, times, velocities, start))
            run_until(start + 2.0)
            by_stamp = {round(_stamp(m), 3): np.array(m.position) for m in states}
            for t, expected in zip(times, waypoints):
                np.testing.assert_allclose(by_stamp[round(start + t, 2)], expected, atol=TRACKING_TOLERANCE)
            replica = TrajectoryFollower(JOINT_NAMES, HOME)
            replica.set_trajectory(FollowerTrajectory.from_arrays(JOINT_NAMES, waypoints, times, velocities, start),
                                   now=start - LEAD_S)
            path = [(m.position, replica.positions_at(_stamp(m))) for m in states if _stamp(m) >= start - LEAD_S]
            assert max(np.abs(np.subtract(p, s)).max() for p, s in path) < TRACKING_TOLERANCE
            np.testing.assert_allclose(states[-1].position, waypoints[-1], atol=1e-3)

            # 2. A slow trajectory: an empty one does not stop it (joint_trajectory_controller ignores
            # it); a one-point trajectory at the measured position, at rest, does.
            far = waypoints[-1] + [1.0, 0, 0, 0, 0, 0, 0]
            command.publish(_trajectory_msg(JOINT_NAMES, [far], [4.0]))
            moving_from = waypoints[-1][0] + 0.1
            spin_until(executor, lambda: states[-1].position[0] > moving_from, what="joint_1 moving")
            command.publish(_trajectory_msg(JOINT_NAMES, [], []))
            moving_on = states[-1].position[0] + 0.1
            spin_until(executor, lambda: states[-1].position[0] > moving_on, what="joint_1 moving on")
            here = np.array(states[-1].position)
            command.publish(_trajectory_msg(JOINT_NAMES, [here], [0.1], [np.zeros(7)]))
            sent = _stamp(states[-1])
            run_until(sent + 1.5)
            held = positions_between(sent + 0.5, sent + 1.5)
            assert np.ptp(held, axis=0).max() < 2e-3, "the arm did not hold after the one-point trajectory"
            assert held[-1][0] < here[0] + 0.15, "the interrupted trajectory went on"

            # 3. A trajectory naming an unknown joint is rejected: the arm stays put.
            names = [*JOINT_NAMES[:6], "elbow_x"]
            command.publish(_trajectory_msg(names, [held[-1] - 0.3], [0.5]))
            sent = _stamp(states[-1])
            run_until(sent + 1.0)
            assert np.abs(positions_between(sent, sent + 1.0) - held[-1]).max() < 2e-3

            ticks = [c.clock.sec + c.clock.nanosec * 1e-9 for c in clock]
            assert np.all(np.diff(ticks) > 0) and ticks[-1] >= _stamp(states[-1]) - 0.1
        finally:
            rc = peer.stop()
    assert rc == 0, peer.output()
    assert "rejected trajectory (1 so far): Empty trajectory received." in peer.output(), peer.output()
    assert "rejected trajectory (2 so far): Incoming joint elbow_x doesn't match" in peer.output(), peer.output()
    assert "lift 'lift the red cube'" in peer.output()
    node.destroy_node()
    executor.shutdown()
