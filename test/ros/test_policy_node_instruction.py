"""The policy node holds on an instruction its model cannot read, says why, and resumes on one it can."""

import pytest
from fake_robot import FakeRobot
from policy_node_harness import CAMERA_TOPICS
from std_msgs.msg import String

from moe_vla_ros.runtime.tokenization import RuntimeTokenizer

pytestmark = pytest.mark.ros

JOINTS = ["joint_1", "joint_2", "gripper"]
UNREADABLE = "please fetch the crimson block"


def test_unknown_words_hold_with_the_words_in_status_and_diagnostics(harness_factory, ros_context, tiny_model_dir):
    unknown = RuntimeTokenizer.load(tiny_model_dir).read(UNREADABLE).unknown_words
    assert len(unknown) >= 3  # the test's premise: most of these words are not in the model's vocabulary
    h = harness_factory()
    robot = FakeRobot(CAMERA_TOPICS, JOINTS, context=ros_context)  # instructions come from the test only
    h.add_node(robot)
    h.wait_for(lambda: h.instruction_pub.get_subscription_count() > 0, what="instruction subscription matched")
    h.instruction_pub.publish(String(data="reach the red cube"))
    h.wait_for(lambda: len(h.commands()) >= 2, what="commands for a readable instruction")

    h.instruction_pub.publish(String(data=UNREADABLE))
    h.wait_for(lambda: any("not understood" in s.hold_reason for s in h.status[-3:]), what="status: unread hold")
    reason = next(s.hold_reason for s in reversed(h.status) if "not understood" in s.hold_reason)
    assert all(repr(word) in reason for word in unknown), reason
    h.wait_for(lambda: h.holds(), what="a hold after the unreadable instruction")
    h.wait_for(lambda: any(kv.key == "hold_reason" and "not understood" in kv.value
                           for d in h.diagnostics[-3:] for kv in d.status[0].values), what="diagnostics: unread hold")
    # no chunk is computed while it holds: a few status periods later, still no new command
    commands, seen = len(h.commands()), len(h.status)
    h.wait_for(lambda: len(h.status) >= seen + 5, what="five more status messages")
    assert len(h.commands()) == commands
    assert not any(t.instruction == UNREADABLE for t in h.traces)

    h.instruction_pub.publish(String(data="push the blue cube to the left"))
    h.wait_for(lambda: len(h.commands()) > commands, what="commands again for a readable instruction")
    h.destroy_node(robot)
