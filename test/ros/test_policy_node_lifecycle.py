"""The policy node's parameters, lifecycle, e-stop and stops, as a robot owner meets them
(real rclpy + DDS, the exported tiny model; the process tests run the real `policy_node` main)."""

import json
import shutil
import subprocess
import sys

import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from fake_robot import FakeRobot
from lifecycle_msgs.msg import State, Transition
from policy_node_harness import CAMERA_TOPICS, params_file
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool, String

from moe_vla_ros.ros import qos
from moe_vla_ros.ros.testing import isolated_ros_env

pytestmark = pytest.mark.ros

JOINTS = ["joint_1", "joint_2", "gripper"]
NO_POSITION_LIMITS = {"robot.position_lower": None, "robot.position_upper": None}


def _diagnostics(h) -> list[DiagnosticStatus]:
    return [d.status[0] for d in h.diagnostics]


def test_status_and_diagnostics_report_from_construction_and_a_failed_configure_is_an_error(harness_factory, tmp_path):
    h = harness_factory(autostart=False, **{"model.path": str(tmp_path / "no_such_model")})
    h.wait_for(lambda: h.status and h.diagnostics, what="status before any transition")
    assert h.status[0].lifecycle_state.id == State.PRIMARY_STATE_UNCONFIGURED
    assert not h.transition(Transition.TRANSITION_CONFIGURE)
    h.wait_for(lambda: any("configure failed" in d.message for d in _diagnostics(h)), what="configure failure")
    failed = next(d for d in _diagnostics(h) if "configure failed" in d.message)
    assert failed.level == DiagnosticStatus.ERROR and "no_such_model" in failed.message
    h.wait_for(lambda: "configure failed" in h.status[-1].last_error, what="the failure in PolicyStatus")
    assert "configure failed" in h.status[-1].hold_reason and not h.status[-1].commanding


def _values(d: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in d.values}


def test_configure_verifies_on_target_and_reports_placement(harness_factory, ros_context):
    h = harness_factory(**{"model.precision": "int8", "model.formulation": "sparse"})
    robot = FakeRobot(CAMERA_TOPICS, JOINTS, instruction="reach the red cube", context=ros_context)
    h.add_node(robot)
    h.wait_for(lambda: any(s.commanding for s in h.status), what="status: commanding")
    meta = h.node.policy.metadata
    assert meta.verification["status"] == "passed" and meta.verification["variant"] == "sparse/int8"
    h.wait_for(lambda: any(d.level == DiagnosticStatus.OK for d in _diagnostics(h)), what="an OK diagnostic")
    values = _values(next(d for d in _diagnostics(h) if d.level == DiagnosticStatus.OK))
    assert values["verification_status"] == "passed" and values["verified_variant"] == "sparse/int8"
    assert values["verification"].startswith("passed: sparse/int8 on CPUExecutionProvider")
    for stage in ("vision", "trunk", "reasoning_context", "reasoning_step", "action_head"):
        assert f"{stage}: CPUExecutionProvider=" in values["provider_placement"]
    assert h.status[-1].execution_providers == ["CPUExecutionProvider"]  # providers that ran nodes


def test_variant_missing_its_gate_falls_back_with_a_warn_diagnostic(harness_factory, ros_context, tiny_model_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    manifest = json.loads((model / "manifest.json").read_text())
    for v in manifest["variants"]:
        if (v["formulation"], v["precision"]) == ("sparse", "int8"):
            v["thresholds"]["max_action_error"] = 1e-9  # as if this CPU's int8 kernels were off
    (model / "manifest.json").write_text(json.dumps(manifest))
    h = harness_factory(model_dir=model, **{"model.precision": "int8", "model.formulation": "sparse"})
    robot = FakeRobot(CAMERA_TOPICS, JOINTS, instruction="reach the red cube", context=ros_context)
    h.add_node(robot)
    h.wait_for(lambda: any(s.commanding for s in h.status), what="commanding on the fp32 fallback")
    assert h.node.policy.metadata.verification["variant"] == "sparse/fp32"
    h.wait_for(lambda: any(s.commanding for s in h.status[-2:]) and any(
        "variant fallback" in d.message for d in _diagnostics(h)[-2:]), what="a fallback diagnostic while commanding")
    d = next(d for d in reversed(_diagnostics(h)) if "variant fallback" in d.message)
    assert d.level == DiagnosticStatus.WARN
    assert "sparse/int8" in d.message and "max action error" in d.message
    assert _values(d)["verification_status"] == "fallback"


def test_corrupted_golden_file_fails_configure_with_the_reason(harness_factory, tiny_model_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    golden = bytearray((model / "golden.npz").read_bytes())
    golden[100] ^= 0xFF
    (model / "golden.npz").write_bytes(bytes(golden))
    h = harness_factory(model_dir=model, autostart=False)
    assert not h.transition(Transition.TRANSITION_CONFIGURE)
    h.wait_for(lambda: any("configure failed" in d.message for d in _diagnostics(h)), what="configure failure")
    failed = next(d for d in _diagnostics(h) if "configure failed" in d.message)
    assert failed.level == DiagnosticStatus.ERROR and "golden.npz" in failed.message


def test_parameter_set_refuses_bad_choices_and_read_only_topics_with_the_reason(harness_factory):
    h = harness_factory(autostart=False)
    result = h.node.set_parameters([Parameter("model.backend", value="tensorflow")])[0]
    assert not result.successful and "model.backend must be one of" in result.reason
    assert h.node.get_parameter("model.backend").value == "onnxruntime"
    result = h.node.set_parameters([Parameter("topics.joint_states", value="/other")])[0]
    assert not result.successful and "read-only" in result.reason
    assert h.node.set_parameters([Parameter("execution.blend_steps", value=3)])[0].successful


def test_model_path_set_at_runtime_takes_effect_at_the_next_configure(harness_factory, tiny_model_dir, tmp_path):
    other = tmp_path / "other_model"
    shutil.copytree(tiny_model_dir, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["model_id"] = "other-model"
    (other / "manifest.json").write_text(json.dumps(manifest))

    h = harness_factory(autostart=False)
    assert h.transition(Transition.TRANSITION_CONFIGURE)
    first = h.node.policy.metadata.model_id
    assert h.node.set_parameters([Parameter("model.path", value=str(other))])[0].successful
    assert h.node.policy.metadata.model_id == first  # takes effect at configure, not before
    assert h.transition(Transition.TRANSITION_CLEANUP)
    assert h.transition(Transition.TRANSITION_CONFIGURE)
    assert h.node.policy.metadata.model_id == "other-model" != first
    h.wait_for(lambda: h.status[-1].model_id == "other-model", what="status naming the new model")


def test_instruction_is_kept_across_cleanup_and_configure(harness_factory, ros_context):
    h = harness_factory()
    robot = FakeRobot(CAMERA_TOPICS, JOINTS, context=ros_context)  # the instruction comes once, from the test
    h.add_node(robot)
    pub = h.probe.create_publisher(String, "/instruction", qos.command_qos())
    h.wait_for(lambda: pub.get_subscription_count() > 0, what="instruction subscription matched")
    pub.publish(String(data="reach the red cube"))
    h.wait_for(lambda: h.commands(), what="commands")
    for transition in (Transition.TRANSITION_DEACTIVATE, Transition.TRANSITION_CLEANUP,
                       Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
        assert h.transition(transition)
    n = len(h.commands())
    h.wait_for(lambda: len(h.commands()) > n, what="commands after reconfiguration, no new instruction")
    assert h.node.runner.instruction == "reach the red cube"
    h.destroy_node(robot)


@pytest.mark.parametrize("reliability", [ReliabilityPolicy.BEST_EFFORT, ReliabilityPolicy.RELIABLE])
def test_estop_stops_the_arm_from_best_effort_and_reliable_publishers(harness_factory, ros_context, reliability):
    h = harness_factory()
    robot = FakeRobot(CAMERA_TOPICS, JOINTS, instruction="reach the red cube", context=ros_context)
    h.add_node(robot)
    h.wait_for(lambda: len(h.commands()) >= 2, what="commands before the e-stop")
    enable = h.probe.create_publisher(Bool, "/policy/enable", QoSProfile(depth=10, reliability=reliability))
    h.wait_for(lambda: enable.get_subscription_count() > 0, what="e-stop subscription matched")
    holds = len(h.holds())
    enable.publish(Bool(data=False))
    h.wait_for(lambda: len(h.holds()) > holds, what="a hold after the e-stop")
    h.wait_for(lambda: h.status[-1].hold_reason == "disabled", what="status: disabled")
    stopped_at, statuses = len(h.commands()), len(h.status)
    h.wait_for(lambda: len(h.status) >= statuses + 5, what="five more status messages while stopped")
    assert len(h.commands()) == stopped_at and not h.node.runner.commanding
    enable.publish(Bool(data=True))
    h.wait_for(lambda: len(h.commands()) > stopped_at, what="commands after release")
    h.destroy_node(robot)


def test_activation_is_refused_without_position_limits(harness_factory):
    h = harness_factory(autostart=False, **NO_POSITION_LIMITS)
    assert h.transition(Transition.TRANSITION_CONFIGURE)
    assert not h.transition(Transition.TRANSITION_ACTIVATE)
    h.wait_for(lambda: "no joint position limits" in h.status[-1].hold_reason, what="the refusal in status")


def test_without_position_limits_when_allowed_velocity_limits_still_apply(harness_factory, ros_context):
    allowed = harness_factory(autostart=False, **NO_POSITION_LIMITS, **{"safety.allow_missing_position_limits": True})
    assert allowed.transition(Transition.TRANSITION_CONFIGURE)
    assert allowed.transition(Transition.TRANSITION_ACTIVATE)
    robot = FakeRobot(CAMERA_TOPICS, JOINTS, instruction="reach the red cube", context=ros_context)
    allowed.add_node(robot)
    allowed.wait_for(lambda: len(allowed.commands()) >= 2, what="commands without position limits")
    for msg in allowed.commands():  # velocity limits still apply (robot.max_velocity = 2.0)
        assert all(abs(v) <= 2.0 + 1e-6 for p in msg.points for v in p.velocities)
    allowed.destroy_node(robot)


# -- the policy_node process -------------------------------------------------------------------------


def _run_node(*ros_args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "moe_vla_ros.ros.policy_node", "--ros-args", *ros_args],
                          env=isolated_ros_env(), capture_output=True, text=True, timeout=timeout_s)


def test_invalid_parameters_are_one_line_on_stderr_with_exit_2(tmp_path, tiny_model_dir):
    bad = _run_node("--params-file", params_file(tmp_path, tiny_model_dir, **{"robot.max_velocity": [-1.0, 1.0, 1.0]}))
    assert bad.returncode == 2, bad.stderr
    assert "Traceback" not in bad.stderr and "AttributeError" not in bad.stderr
    assert "robot.max_velocity must be positive" in bad.stderr

    missing = _run_node("--params-file", str(tmp_path / "missing.yaml"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr, missing.stderr
    assert "missing.yaml" in missing.stderr


def test_typo_parameter_is_warned_and_a_failed_autostart_exits_1(tmp_path, tiny_model_dir):
    params = params_file(tmp_path, tiny_model_dir, **{"model.path": str(tmp_path / "gone")})
    result = _run_node("--params-file", params, "-p", "safety.input_timout_s:=1.0")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "safety.input_timout_s (did you mean safety.input_timeout_s?)" in out
    assert "configure failed" in out and "Traceback" not in out
