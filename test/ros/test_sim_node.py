"""sim_node in this process, over real DDS: sensor streams, /clock, determinism, latched instruction,
episodes and trajectory validation (test_sim_node_cross_process.py runs it as its own process)."""

import time

import numpy as np
import pytest

from moe_vla_ros.sim.arm_sim import ArmSim
from moe_vla_ros.sim.config import JOINT_NAMES
from moe_vla_ros.sim.tasks import PUSH_SUCCESS_DISTANCE_M, Task

pytestmark = pytest.mark.ros

SMALL = {"cameras.image_height": 48, "cameras.image_width": 64}  # 64x48: height and width differ


def _sim_node(ros_context, name="sim_node", **overrides):
    from rclpy.parameter import Parameter

    from moe_vla_ros.ros.sim_node import SimNode

    params = [Parameter(k, value=v) for k, v in {**SMALL, **overrides}.items()]
    return SimNode(name, context=ros_context, parameter_overrides=params)


def _graph(ros_context, *nodes):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    probe = Node("sim_node_probe", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    for node in (*nodes, probe):
        executor.add_node(node)
    return probe, executor


def _collect(probe, msg_type, topic, qos=None):
    from moe_vla_ros.ros.qos import sensor_qos

    received = []
    probe.create_subscription(msg_type, topic, received.append, qos or sensor_qos("reliable", 200))
    return received


def _stamp(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def _close(executor, *nodes):
    for node in nodes:
        node.destroy_node()
    executor.shutdown()


def test_images_joint_states_and_clock_at_the_configured_rates(ros_context):
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image, JointState

    from moe_vla_ros.ros.testing import spin_until

    sim = _sim_node(ros_context, seed=4)
    probe, executor = _graph(ros_context, sim)
    front = _collect(probe, Image, "/camera/front/image_raw")
    wrist = _collect(probe, Image, "/camera/wrist/image_raw")
    states = _collect(probe, JointState, "/joint_states")
    clock = _collect(probe, Clock, "/clock")
    spin_until(executor, lambda: front and wrist and states and clock, what="first messages of every stream")
    wall0, counts0 = time.monotonic(), (len(front), len(states))
    spin_until(executor, lambda: len(front) >= counts0[0] + 45, timeout_s=20.0, what="1.5 s of images")
    wall_s = time.monotonic() - wall0
    camera_hz, joint_hz = (len(front) - counts0[0]) / wall_s, (len(states) - counts0[1]) / wall_s
    print(f"wall rates: camera {camera_hz:.1f} Hz, joint_states {joint_hz:.1f} Hz, "
          f"real-time factor {sim.achieved_real_time_factor:.2f}")
    assert 0.4 * 30 < camera_hz < 1.6 * 30 and 0.4 * 100 < joint_hz < 1.6 * 100

    for msgs, frame in ((front, "front_camera_optical_frame"), (wrist, "wrist_camera_optical_frame")):
        img = msgs[-1]
        assert (img.height, img.width, img.encoding, img.step) == (48, 64, "rgb8", 64 * 3)
        assert len(img.data) == 48 * 64 * 3 and img.header.frame_id == frame
        stamps = np.array([_stamp(m) for m in msgs])
        assert np.all(np.diff(stamps) > 0)
        assert np.diff(stamps) == pytest.approx(1 / 30, abs=0.0021)  # on the 2 ms physics grid
    n = min(len(front), len(wrist))  # the last pair may be half delivered
    assert [_stamp(m) for m in front[:n]] == [_stamp(m) for m in wrist[:n]]
    js = states[-1]
    assert list(js.name) == list(JOINT_NAMES) and len(js.position) == len(js.velocity) == 7
    assert np.diff([_stamp(m) for m in states]) == pytest.approx(0.01, abs=1e-6)

    ticks = np.array([m.clock.sec + m.clock.nanosec * 1e-9 for m in clock])
    assert np.all(np.diff(ticks) > 0) and np.diff(ticks) == pytest.approx(0.01, abs=1e-6)
    assert ticks[-1] == pytest.approx(sim.sim_time, abs=0.15)
    assert ticks[-1] >= _stamp(front[-1]) - 0.05
    _close(executor, sim, probe)


def test_same_seed_gives_identical_images_and_joint_states(ros_context):
    from sensor_msgs.msg import Image, JointState

    from moe_vla_ros.ros.testing import spin_until

    def namespaced(prefix, seed):
        return _sim_node(ros_context, f"sim_{prefix}", seed=seed, publish_clock=False,
                         **{"cameras.names": ["front"], "cameras.frame_ids": ["front_optical"],
                            "cameras.encoding": "bgr8", "topics.camera_topics": [f"/{prefix}/image"],
                            "topics.joint_states": f"/{prefix}/joint_states", "topics.trajectory": f"/{prefix}/cmd",
                            "topics.instruction": f"/{prefix}/instruction"})

    sims = {"a": namespaced("a", 7), "b": namespaced("b", 7), "c": namespaced("c", 8)}
    probe, executor = _graph(ros_context, *sims.values())
    images = {p: _collect(probe, Image, f"/{p}/image") for p in sims}
    states = {p: _collect(probe, JointState, f"/{p}/joint_states") for p in sims}
    spin_until(executor, lambda: all(len(m) >= 10 for m in images.values()), what="10 images from each node")

    def by_stamp(msgs):
        return {round(_stamp(m), 6): m for m in msgs}

    frames = {p: by_stamp(m) for p, m in images.items()}
    common = sorted(set(frames["a"]) & set(frames["b"]) & set(frames["c"]))
    assert len(common) >= 3
    for t in common:
        assert bytes(frames["a"][t].data) == bytes(frames["b"][t].data), t
        assert bytes(frames["a"][t].data) != bytes(frames["c"][t].data), t  # other seed, other cube layout
    joints = {p: by_stamp(m) for p, m in states.items()}
    shared = sorted(set(joints["a"]) & set(joints["b"]))
    assert len(shared) >= 10
    for t in shared:
        assert list(joints["a"][t].position) == list(joints["b"][t].position), t
        assert list(joints["a"][t].velocity) == list(joints["b"][t].velocity), t

    # The images show the simulation state at their stamp (bgr8: channels reversed).
    reference = ArmSim(sims["a"].config.sim_config())
    reference.step_to(common[-1])
    bgr = np.frombuffer(bytes(frames["a"][common[-1]].data), np.uint8).reshape(48, 64, 3)
    np.testing.assert_array_equal(bgr[:, :, ::-1], reference.render("front"))
    reference.close()
    _close(executor, *sims.values(), probe)


def test_latched_instruction_reaches_a_late_subscriber_and_episodes_reset(ros_context):
    from std_msgs.msg import String

    from moe_vla_ros.ros.qos import instruction_subscription_qos
    from moe_vla_ros.ros.testing import spin_until

    sim = _sim_node(ros_context, instruction="push the blue cube to the left", seed=2)
    probe, executor = _graph(ros_context, sim)
    assert (sim.task.family, sim.task.color, sim.task.direction) == ("push", "blue", "left")
    spin_until(executor, lambda: sim.sim_time > 0.3, what="the simulation to run")
    late = _collect(probe, String, "/instruction", instruction_subscription_qos("transient_local"))
    spin_until(executor, lambda: late, what="the latched instruction")
    assert [m.data for m in late] == ["push the blue cube to the left"]
    assert sim.task_success() is False and sim.episode == 0
    assert sim.task_shortfall_m() == pytest.approx(PUSH_SUCCESS_DISTANCE_M, abs=0.005)  # nothing pushed yet
    assert sim.arm.push_goal() is not None  # the goal line is on the table

    cubes_before, time_before = sim.arm.cube_positions(), sim.sim_time
    sim.reset_episode(seed=5, task=Task("reach", "green"))
    spin_until(executor, lambda: len(late) == 2, what="the new episode's instruction")
    assert late[-1].data == "reach the green cube" and sim.instruction == "reach the green cube"
    assert sim.episode == 1 and sim.arm.seed == 5 and sim.task.family == "reach"
    assert sim.sim_time >= time_before and sim.episode_time < 0.2  # /clock never goes back
    assert not np.allclose(sim.arm.cube_positions()["red"], cubes_before["red"])
    assert sim.task_success() is False and sim.task_shortfall_m() > 0.0
    assert sim.arm.push_goal() is None  # a reach task shows no goal line
    _close(executor, sim, probe)


def _trajectory(names, rows, times, velocities=None, stamp=0.0):
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from moe_vla_ros.ros.conversions import make_header, seconds_to_duration

    msg = JointTrajectory(header=make_header(stamp), joint_names=list(names))
    for i, (row, t) in enumerate(zip(rows, times)):
        point = JointTrajectoryPoint(positions=[float(v) for v in row], time_from_start=seconds_to_duration(t))
        if velocities is not None:
            point.velocities = [float(v) for v in velocities[i]]
        msg.points.append(point)
    return msg


def test_trajectories_joint_trajectory_controller_refuses_are_rejected_and_do_not_move_the_arm(ros_context):
    from sensor_msgs.msg import JointState
    from trajectory_msgs.msg import JointTrajectory

    from moe_vla_ros.ros.qos import command_qos
    from moe_vla_ros.ros.testing import spin_until, wait_for_match

    sim = _sim_node(ros_context, camera_rate_hz=5.0)
    probe, executor = _graph(ros_context, sim)
    states = _collect(probe, JointState, "/joint_states")
    publisher = probe.create_publisher(JointTrajectory, "/joint_trajectory_controller/joint_trajectory", command_qos())
    wait_for_match(executor, publisher)
    spin_until(executor, lambda: sim.sim_time > 1.0, what="1 s of simulated time")
    home = sim.arm.joint_targets()
    target = home + [0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.02]  # gripper: 0..0.04 m
    moving = np.full(7, 0.2)
    invalid = [
        _trajectory([*JOINT_NAMES[:6], "elbow_x"], [target], [0.5]),  # unknown joint
        _trajectory(JOINT_NAMES[:6], [target[:6]], [0.5]),  # partial goal, not allowed by default
        _trajectory(JOINT_NAMES, [target, home], [0.6, 0.3]),  # times not increasing
        _trajectory(JOINT_NAMES, [target[:5]], [0.5]),  # too few positions
        _trajectory(JOINT_NAMES, [target, home], [0.3, 0.6], velocities=[np.zeros(7), np.zeros(6)]),
        _trajectory(JOINT_NAMES, [], []),  # empty: joint_trajectory_controller ignores it, no hold
        _trajectory(JOINT_NAMES, [home, target], [0.3, 0.6], velocities=[moving, moving]),  # still moving at the end
        _trajectory(JOINT_NAMES, [target], [0.1], stamp=0.5),  # stamped, ended at 0.6 s: in the past
        _trajectory(JOINT_NAMES, [[*target[:6], float("nan")]], [0.5]),  # accepted upstream, not executable
    ]
    for i, msg in enumerate(invalid, start=1):
        publisher.publish(msg)
        spin_until(executor, lambda: sim.commands_rejected == i, what=f"rejection of invalid trajectory {i}")
    assert sim.commands_received == len(invalid)
    t_end = sim.sim_time + 0.8
    spin_until(executor, lambda: states and _stamp(states[-1]) > t_end, what="0.8 s of joint states")
    np.testing.assert_allclose(sim.arm.joint_targets(), home)
    np.testing.assert_allclose(states[-1].position, home, atol=1e-4)

    # Valid: a stamp in the future, ending at rest. Followed at once (no waiting for the stamp), and
    # an empty trajectory on the way does not stop it.
    publisher.publish(_trajectory(JOINT_NAMES, [target], [0.3], velocities=[np.zeros(7)], stamp=sim.sim_time + 0.3))
    spin_until(executor, lambda: sim.commands_received == len(invalid) + 1, what="the valid trajectory")
    publisher.publish(_trajectory(JOINT_NAMES, [], []))
    t_end = sim.sim_time + 1.0
    spin_until(executor, lambda: _stamp(states[-1]) > t_end, what="the valid trajectory to finish")
    assert (sim.commands_received, sim.commands_rejected) == (len(invalid) + 2, len(invalid) + 1)
    np.testing.assert_allclose(states[-1].position, target, atol=0.01)
    assert sim.controller_holds == 0
    _close(executor, sim, probe)


def test_a_path_tolerance_violation_makes_the_controller_hold(ros_context):
    from sensor_msgs.msg import JointState
    from trajectory_msgs.msg import JointTrajectory

    from moe_vla_ros.ros.qos import command_qos
    from moe_vla_ros.ros.testing import spin_until, wait_for_match

    tight = [0.005] * 6 + [0.0]  # far below the position actuators' lag while moving
    sim = _sim_node(ros_context, camera_rate_hz=5.0, **{"controller.trajectory_tolerances": tight})
    assert sim.jtc_params.trajectory_tolerances == tuple(tight)
    probe, executor = _graph(ros_context, sim)
    states = _collect(probe, JointState, "/joint_states")
    publisher = probe.create_publisher(JointTrajectory, "/joint_trajectory_controller/joint_trajectory", command_qos())
    wait_for_match(executor, publisher)
    home = sim.arm.joint_targets()
    target = home + [0.8, 0, 0, 0, 0, 0, 0]
    publisher.publish(_trajectory(JOINT_NAMES, [target], [1.0], velocities=[np.zeros(7)]))
    spin_until(executor, lambda: sim.controller_holds >= 1, what="the controller's hold")
    t_end = sim.sim_time + 1.5
    spin_until(executor, lambda: states and _stamp(states[-1]) > t_end, what="1.5 s of joint states")
    assert sim.commands_rejected == 0
    assert states[-1].position[0] < home[0] + 0.4, "the arm went on to the target"
    _close(executor, sim, probe)


def test_pacer_follows_the_real_time_factor_and_gives_up_lost_time():
    from moe_vla_ros.ros.sim_node import RealTimePacer

    pacer = RealTimePacer(real_time_factor=2.0, max_lag_s=0.2)
    assert pacer.target(wall_now=10.0, sim_now=0.0) == 0.0
    assert pacer.target(10.1, 0.0) == pytest.approx(0.2)  # 0.1 s behind: catch up
    assert pacer.achieved(10.1, 0.2) == pytest.approx(2.0)
    assert pacer.target(11.0, 0.5) == pytest.approx(0.9)  # 0.75 s behind: run 0.2 s ahead of now only
    assert pacer.lagged_s == pytest.approx(0.55)
    assert pacer.target(11.5, 1.7) == pytest.approx(1.9)  # on pace again from the new anchor
    assert pacer.lagged_s == pytest.approx(0.55)
    assert pacer.achieved(11.5, 1.9) == pytest.approx(1.9 / 1.5)
