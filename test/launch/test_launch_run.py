"""Every launch file runs under the real launch stack (scripts/ros2_launch.py = `ros2 launch`):
the sim closed loop, two namespaced robots on one graph (robot.launch.py + fake robots), and a
bag replay in a namespace. Each test waits on graph conditions with timeouts, then SIGINTs the
launch (its nodes must stop cleanly)."""

from __future__ import annotations

import numpy as np
import pytest
from launch_helpers import REPO_ROOT, get_parameters, launch, robot_config

from moe_vla_ros.control.chunking import is_hold_profile
from moe_vla_ros.ros.testing import RosPeerProcess, spin_until, wait_for_match


def _is_command(msg) -> bool:
    """A policy command, not a hold (a stop to rest)."""
    return not is_hold_profile(msg.points, len(msg.joint_names))

pytestmark = [pytest.mark.ros, pytest.mark.slow]

TRAJECTORY = "joint_trajectory_controller/joint_trajectory"
CAMERAS = ["camera/front/image_raw", "camera/wrist/image_raw"]


def _stop(proc: RosPeerProcess) -> str:
    rc = proc.stop(timeout_s=20)
    out = proc.output()
    assert rc == 0, f"launch exited with {rc}:\n{out[-4000:]}"
    assert "process has died" not in out, out[-4000:]
    return out


def test_sim_launch_closed_loop_with_the_bundled_model(probe):
    """sim.launch.py as a user runs it (bundled model, config files): the policy activates on
    simulated time, gets the simulator's instruction on its volatile subscription, its trajectories
    move the simulated arm, and an instruction published like `ros2 topic pub` (volatile) is
    followed (the simulator does not overwrite it)."""
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String
    from trajectory_msgs.msg import JointTrajectory

    from moe_vla_msgs.msg import PolicyStatus, ReasoningTrace
    from moe_vla_ros.ros import qos

    node, executor = probe
    commands, states, status, traces = [], [], [], []
    node.create_subscription(ReasoningTrace, "/reasoning_trace", traces.append, qos.telemetry_qos(50))
    instruction = node.create_publisher(String, "/instruction", 10)  # what `ros2 topic pub` offers
    traj_sub = node.create_subscription(JointTrajectory, "/" + TRAJECTORY, commands.append, qos.command_qos(depth=50))
    node.create_subscription(JointState, "/joint_states", states.append, qos.sensor_qos("reliable", 10))
    node.create_subscription(PolicyStatus, "/policy_status", status.append, qos.telemetry_qos(10))
    with launch("sim.launch.py", instruction="reach the red cube") as proc:
        try:
            wait_for_match(executor, traj_sub, timeout_s=60)
            spin_until(executor, lambda: len([c for c in commands if _is_command(c)]) >= 3, timeout_s=90,
                       what="3 trajectories from the policy node")
            spin_until(executor, lambda: any(s.lifecycle_state.label == "active" for s in status), timeout_s=20,
                       what="policy status 'active'")
            spin_until(executor, lambda: states and traces, timeout_s=20, what="joint states and a reasoning trace")
            start = np.asarray(states[0].position)
            spin_until(executor, lambda: np.abs(np.asarray(states[-1].position) - start).max() > 0.02, timeout_s=30,
                       what="the simulated arm moving")
            assert traces and traces[-1].instruction == "reach the red cube"
            wait_for_match(executor, instruction, timeout_s=20)
            instruction.publish(String(data="reach the blue cube"))
            spin_until(executor, lambda: traces[-1].instruction == "reach the blue cube", timeout_s=20,
                       what="a reasoning trace for the published instruction")
            seen = len(traces)
            spin_until(executor, lambda: len(traces) >= seen + 2, timeout_s=20, what="2 more reasoning traces")
            assert {t.instruction for t in traces[seen - 1:]} == {"reach the blue cube"}
        finally:
            out = _stop(proc)
    assert commands[0].joint_names[-1] == "gripper" and len(commands[0].joint_names) == 7
    assert "sim_node" in out and "policy_node" in out


def test_two_namespaced_robots_each_get_their_own_parameters_and_topics(probe, tmp_path, sim_model_dir):
    """robot.launch.py twice on one graph (robot1, robot2), each with its own robot file and a fake
    robot in its namespace: each node holds its own limits and commands only its own controller."""
    from trajectory_msgs.msg import JointTrajectory

    from moe_vla_ros.ros import qos
    from moe_vla_ros.sim.config import JOINT_NAMES

    node, executor = probe
    limits = {"robot1": 0.5, "robot2": 2.5}
    instructions = {"robot1": "reach the red cube", "robot2": "touch the blue cube"}  # words the model knows
    commands = {ns: [] for ns in limits}
    subs = {}
    for ns in limits:
        subs[ns] = node.create_subscription(JointTrajectory, f"/{ns}/{TRAJECTORY}", commands[ns].append,
                                            qos.command_qos(depth=50))
    configs = {
        ns: robot_config(tmp_path, ns, sim_model_dir, **{
            "robot.position_lower": [-lim] * 6 + [0.0], "robot.position_upper": [lim] * 6 + [0.04],
            "execution.default_instruction": instructions[ns]})
        for ns, lim in limits.items()
    }
    peers = [RosPeerProcess([str(REPO_ROOT / "test" / "ros" / "fake_robot.py"), "--namespace", ns,
                             "--camera-topics", *CAMERAS, "--joint-names", *JOINT_NAMES]) for ns in limits]
    launches = [launch("robot.launch.py", robot_config=configs[ns], namespace=ns) for ns in limits]
    for p in [*peers, *launches]:
        p.__enter__()
    try:
        for ns in limits:
            wait_for_match(executor, subs[ns], timeout_s=60)
        for ns in limits:
            spin_until(executor, lambda ns=ns: len([c for c in commands[ns] if _is_command(c)]) >= 2, timeout_s=90,
                       what=f"2 trajectories on /{ns}/{TRAJECTORY}")
        for ns, lim in limits.items():
            values = get_parameters(node, executor, f"/{ns}/policy_node",
                                    ["robot.position_upper", "execution.default_instruction", "topics.trajectory"])
            assert list(values["robot.position_upper"]) == [lim] * 6 + [0.04]
            assert values["execution.default_instruction"] == instructions[ns]
            assert values["topics.trajectory"] == TRAJECTORY  # relative: resolved in the namespace
            publishers = node.get_publishers_info_by_topic(f"/{ns}/{TRAJECTORY}")
            assert [(p.node_name, p.node_namespace) for p in publishers] == [("policy_node", f"/{ns}")]
            readers = node.get_subscriptions_info_by_topic(f"/{ns}/joint_states")
            assert ("policy_node", f"/{ns}") in [(r.node_name, r.node_namespace) for r in readers]
            assert all(r.node_namespace == f"/{ns}" for r in readers if r.node_name == "policy_node")
            for c in commands[ns]:
                for point in c.points:
                    assert np.all(np.abs(point.positions[:6]) <= lim + 1e-6), (ns, point.positions)
        assert not node.get_publishers_info_by_topic("/" + TRAJECTORY)  # nothing left in the root namespace
    finally:
        outs = [_stop(p) for p in launches]
        for p in peers:
            p.stop()
    for ns, out in zip(limits, outs):
        assert f"[{ns}.policy_node]" in out, out[-3000:]


def test_bag_replay_launch_in_a_namespace(probe, tmp_path, sim_model_dir):
    """bag_replay.launch.py with namespace:=robot1 on a short simulated recording: the bag's inputs
    are played under /robot1 (its recorded commands are not), the node commands on simulated time
    and the recorder, which the player waits for, writes all of the node's /robot1 commands into
    the output bag; the launch ends when the bag is played."""
    from trajectory_msgs.msg import JointTrajectory

    from moe_vla_ros.bags.from_sim import SimRecordingConfig, record_sim_bag
    from moe_vla_ros.bags.reader import BagReader
    from moe_vla_ros.ros import qos

    bag = record_sim_bag(tmp_path / "bag", SimRecordingConfig(
        episodes=1, tasks=("reach",), max_episode_s=3.5, success_hold_steps=1000, image_size=32,
        camera_rate_hz=15.0, progress=False))  # runs the full 3.5 s: 2+ chunks of the model
    node, executor = probe
    commands = []
    node.create_subscription(JointTrajectory, f"/robot1/{TRAJECTORY}", commands.append, qos.command_qos(depth=50))
    config = robot_config(tmp_path, "replay", sim_model_dir)
    output = tmp_path / "out"
    with launch("bag_replay.launch.py", bag=bag.path, output=output, robot_config=config, namespace="robot1") as proc:
        try:  # the launch ends by itself once the bag is played
            spin_until(executor, lambda: not proc.alive(), timeout_s=150, what="the launch to end after the bag")
        except TimeoutError as e:
            pytest.fail(f"{e}; {len(commands)} messages; launch output:\n{_stop(proc)[-6000:]}")
        out = _stop(proc)
    assert "subscribers ready: playing" in out and "bag_play-3] played " in out, out[-4000:]
    assert "bag_record-2] closed " in out, out[-4000:]  # the bag was finished on the shutdown
    assert any(_is_command(c) for c in commands), out[-4000:]
    with BagReader(output) as recorded:
        assert f"/robot1/{TRAJECTORY}" in recorded.topics, list(recorded.topics)
        assert "/" + TRAJECTORY not in recorded.topics
        commands_in_bag = [m for _, m in recorded.decoded([f"/robot1/{TRAJECTORY}"])
                           if _is_command(m)]
    assert len(commands_in_bag) >= 2, out[-4000:]
