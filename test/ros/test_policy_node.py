"""The policy node over real rclpy + DDS with the exported tiny model (no mocked ROS)."""

from pathlib import Path

import numpy as np
import pytest
from fake_robot import FakeRobot
from lifecycle_msgs.msg import State, Transition
from policy_node_harness import CAMERA_TOPICS
from std_msgs.msg import String

from moe_vla_ros.ros.testing import RosPeerProcess

pytestmark = pytest.mark.ros

JOINTS = ["joint_1", "joint_2", "gripper"]
FAKE_ROBOT = Path(__file__).with_name("fake_robot.py")


def test_cross_process_robot_drives_node_then_stale_input_holds(harness_factory):
    h = harness_factory()
    peer = RosPeerProcess([str(FAKE_ROBOT), "--camera-topics", *CAMERA_TOPICS, "--joint-names", *JOINTS,
                           "--instruction", "reach the red cube"])
    with peer:
        h.wait_for(lambda: len(h.commands()) >= 6 and h.traces, what="6 trajectories and a reasoning trace")
        h.wait_for(lambda: any(s.commanding for s in h.status), what="status: commanding")
        peer.stop()
        h.wait_for(lambda: h.holds(), what="a hold after the robot stopped publishing")
    assert peer.proc.returncode == 0, peer.output()

    traj = h.commands()[0]
    assert traj.joint_names == JOINTS
    assert (traj.header.stamp.sec, traj.header.stamp.nanosec) != (0, 0)
    times = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in traj.points]
    assert np.allclose(np.diff(times), 0.1) and times[0] == pytest.approx(0.1)
    for p in traj.points:
        assert len(p.positions) == 3 and len(p.velocities) == 3
        assert np.all(np.isfinite(p.positions)) and np.all(np.isfinite(p.velocities))
        assert np.all(np.abs(p.velocities) <= 2.0 + 1e-6)  # robot.max_velocity

    trace = h.traces[0]
    assert trace.instruction == "reach the red cube"
    assert trace.chunk_id in {u.chunk_id for u in h.usage}
    assert trace.expert_usage and all(abs(sum(layer.expert_load) - 1.0) < 1e-3 for layer in trace.expert_usage)
    assert trace.generation_latency.sec > 0 or trace.generation_latency.nanosec > 0

    commands_at_hold = len(h.commands())
    h.wait_for(lambda: any("stale" in s.hold_reason for s in h.status[-3:]), what="status: stale hold reason")
    assert len(h.commands()) == commands_at_hold  # nothing commanded from stale inputs
    status = h.status[-1]
    assert status.execution_providers == ["CPUExecutionProvider"] and status.backend == "onnxruntime"
    assert status.model_id and status.inference_latency.count >= 1 and not status.commanding


def test_lifecycle_transitions(harness_factory, ros_context):
    h = harness_factory(autostart=False)
    robot = FakeRobot(CAMERA_TOPICS, JOINTS, instruction="reach the red cube", context=ros_context)
    h.add_node(robot)
    node = h.node
    assert h.transition(Transition.TRANSITION_CONFIGURE)
    h.wait_for(lambda: any(s.lifecycle_state.id == State.PRIMARY_STATE_INACTIVE for s in h.status),
               what="inactive status")
    assert not h.trajectories  # inactive: never commands
    assert h.transition(Transition.TRANSITION_ACTIVATE)
    h.wait_for(lambda: len(h.commands()) >= 2, what="commands after activate")
    assert h.transition(Transition.TRANSITION_DEACTIVATE)
    h.wait_for(lambda: h.holds(), what="hold on deactivate")
    n = len(h.commands())
    h.wait_for(lambda: sum(s.lifecycle_state.id == State.PRIMARY_STATE_INACTIVE for s in h.status) >= 3,
               what="more inactive status")
    assert len(h.commands()) == n
    assert h.transition(Transition.TRANSITION_CLEANUP)
    assert node.policy is None and node.runner is None
    h.destroy_node(robot)


@pytest.mark.parametrize("fault, error", [
    ("nan", "not finite for gripper"), ("missing_joint", "joint_1"), ("bad_image", "camera"),
])
def test_malformed_input_gives_clear_error_and_no_command(harness_factory, ros_context, fault, error):
    h = harness_factory()
    robot = FakeRobot(CAMERA_TOPICS, JOINTS, instruction="reach the red cube", fault=fault, context=ros_context)
    h.add_node(robot)
    h.wait_for(lambda: any(int(kv.value) >= 3 for d in h.diagnostics for kv in d.status[0].values
                           if kv.key == "rejected_inputs"), what="rejected inputs counted")
    errors = [kv.value for d in h.diagnostics for kv in d.status[0].values if kv.key == "last_error"]
    assert any(error in e for e in errors), errors[-3:]
    assert not h.commands()
    assert h.status[-1].dropped_inputs > 0 and not h.status[-1].commanding
    h.destroy_node(robot)


def test_mismatched_model_contract_fails_configure(harness_factory):
    h = harness_factory(autostart=False, **{"robot.joint_names": ["shoulder", "elbow", "gripper"]})
    assert not h.transition(Transition.TRANSITION_CONFIGURE)
    assert h.node.policy is None


def test_new_instruction_resets_and_reasons_again(harness_factory, ros_context):
    h = harness_factory()
    robot = FakeRobot(CAMERA_TOPICS, JOINTS, context=ros_context)  # instructions come from the test only
    h.add_node(robot)
    h.wait_for(lambda: h.instruction_pub.get_subscription_count() > 0, what="instruction subscription matched")
    h.instruction_pub.publish(String(data="reach the red cube"))
    h.wait_for(lambda: h.traces and h.commands(), what="first trace")
    h.instruction_pub.publish(String(data="push the blue cube to the left"))
    h.wait_for(lambda: any(t.instruction == "push the blue cube to the left" for t in h.traces),
               timeout_s=40, what="a trace for the new instruction")
    first_new = next(t for t in h.traces if t.instruction == "push the blue cube to the left")
    assert first_new.chunk_id > h.traces[0].chunk_id
    h.destroy_node(robot)


class _FailingPublisher:
    """Stands in for one of the node's publishers: every publish raises."""

    def publish(self, _msg) -> None:
        raise RuntimeError("expert usage publisher failed")


def test_inference_loop_error_holds_reports_and_recovers(harness_factory, ros_context):
    h = harness_factory()
    robot = FakeRobot(CAMERA_TOPICS, JOINTS, instruction="reach the red cube", context=ros_context)
    h.add_node(robot)
    h.wait_for(lambda: len(h.commands()) >= 2, what="commands before the fault")
    usage_pub = h.node._pubs["usage"]
    h.node._pubs["usage"] = _FailingPublisher()  # the tick fails after the trajectory is out

    def errors() -> list[str]:
        return [kv.value for d in h.diagnostics for kv in d.status[0].values if kv.key == "last_error"]

    holds_before = len(h.holds())
    h.wait_for(lambda: any("expert usage publisher failed" in e for e in errors()), what="the error in diagnostics")
    h.wait_for(lambda: len(h.holds()) > holds_before, what="a hold after the loop error")
    counts = [int(kv.value) for d in h.diagnostics for kv in d.status[0].values if kv.key == "inference_errors"]
    assert counts and counts[-1] >= 1
    assert h.node._inference.errors >= 1  # the loop thread survived and counted it

    h.node._pubs["usage"] = usage_pub
    commands = len(h.commands())
    h.wait_for(lambda: len(h.commands()) >= commands + 2, what="commands again once publishing works")
    h.destroy_node(robot)
