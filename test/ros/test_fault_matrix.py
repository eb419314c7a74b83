"""Fault-injection matrix: the policy node against a fake robot (mock hardware behind a
joint_trajectory_controller stand-in), one fault per case, injected while the node commands.

For every case it measures, and asserts:
  hold latency        fault onset -> the hold trajectory arrives (<= input timeout + margin)
  bad commands        trajectories published from an observation that holds bad data (== 0)
  recovery time       fault end -> the first command again (hysteresis: >= safety.recovery_s)
  first-point limits  the first command after recovery, from the arm's position at receipt:
                      the speed and acceleration needed to reach its first point (<= the limits)
and writes them all to build/fault_matrix.json (printed as a table at the end of the module).
The signal cases run the node as its own process (its main handles SIGINT/SIGTERM): the hold
latency is signal -> final hold, and nothing may follow the hold.
"""

from __future__ import annotations

import json
import math
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pytest
from fake_robot import FakeRobot
from jtc_conformance import is_hold
from policy_node_harness import CAMERA_TOPICS, LIMITS, PolicyNodeHarness, params_file
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.subscription import MessageInfo
from std_msgs.msg import Bool
from trajectory_msgs.msg import JointTrajectory

from moe_vla_ros.ros import qos
from moe_vla_ros.ros.conversions import joint_trajectory_to_arrays, stamp_to_seconds
from moe_vla_ros.ros.testing import RosPeerProcess, spin_until

pytestmark = pytest.mark.ros

JOINTS = ["joint_1", "joint_2", "gripper"]
INPUT_TIMEOUT_S = 0.5
RECOVERY_S = 1.0
FAULT_S = 2.0
REPORT = Path(__file__).resolve().parents[2] / "build" / "fault_matrix.json"
MAX_VELOCITY = np.array(LIMITS["robot.max_velocity"])
MAX_ACCELERATION = np.array(LIMITS["robot.max_acceleration"])


@dataclass
class CaseResult:
    case: str
    hold_latency_s: float | None  # None: no hold was needed (or none came)
    commands_from_bad_data: int
    commands_during_fault: int
    recovery_s: float | None
    hold_resume_cycles: int
    first_point_velocity_ratio: float  # needed / allowed (<= 1)
    first_point_acceleration_ratio: float
    first_point_time_s: float  # time the controller has from receipt to the first point


RESULTS: list[CaseResult] = []


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    if not RESULTS:
        return
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps([asdict(r) for r in RESULTS], indent=2))
    header = (f"{'case':<26}{'hold ms':>8}{'bad cmds':>9}{'recovery s':>11}{'cycles':>7}{'v ratio':>8}"
              f"{'a ratio':>8}{'t1 ms':>7}")
    lines = [header, "-" * len(header)]
    for r in RESULTS:
        hold = "-" if r.hold_latency_s is None else f"{1e3 * r.hold_latency_s:.0f}"
        rec = "-" if r.recovery_s is None else f"{r.recovery_s:.2f}"
        lines.append(f"{r.case:<26}{hold:>8}{r.commands_from_bad_data:>9}{rec:>11}{r.hold_resume_cycles:>7}"
                     f"{r.first_point_velocity_ratio:>8.2f}{r.first_point_acceleration_ratio:>8.2f}"
                     f"{1e3 * r.first_point_time_s:>7.0f}")
    print("\n" + "\n".join(lines) + f"\n(written to {REPORT})")


class Recorder:
    """Trajectories with their receipt time, and which observations the policy saw."""

    def __init__(self, h: PolicyNodeHarness, robot: FakeRobot) -> None:
        self.h, self.robot = h, robot
        self.received: list[tuple[float, JointTrajectory, np.ndarray]] = []  # (time, msg, arm position)
        self.bad_published = 0
        h.probe.create_subscription(JointTrajectory, "/joint_trajectory_controller/joint_trajectory",
                                    self._on_trajectory, qos.command_qos(depth=100))
        self._wrap_runner()

    def now(self) -> float:
        return self.robot.get_clock().now().nanoseconds * 1e-9

    def _on_trajectory(self, msg: JointTrajectory, info: MessageInfo) -> None:
        # receipt: when the middleware got it (what a controller's real-time buffer sees), not when
        # this test's executor got round to the callback
        received = info["received_timestamp"] * 1e-9 or self.now()
        self.received.append((received, msg, self.robot.positions().copy()))

    def _wrap_runner(self) -> None:
        """Flag every inference whose observation holds bad data; count the flagged ones published."""
        runner = self.h.node.runner
        infer, step = runner.policy.infer, runner.step
        flagged: set[int] = set()

        def checked_infer(obs, **kwargs):
            out = infer(obs, **kwargs)
            stamp_ns = round(obs.stamp * 1e9)
            bad = stamp_ns in self.robot.faulty_stamps or any(
                np.allclose(obs.joint_positions, q, atol=1e-9, equal_nan=True) for q in self.robot.faulty_positions)
            if bad:
                flagged.add(id(out))
            return out

        def checked_step(clock):
            command = step(clock)
            if command is not None and not command.is_hold and id(command.output) in flagged:
                self.bad_published += 1
            return command

        runner.policy.infer, runner.step = checked_infer, checked_step

    def commands_between(self, t0: float, t1: float) -> list[float]:
        return [t for t, msg, _ in self.received if t0 <= t < t1 and not is_hold(msg)]

    def first_hold_after(self, t0: float) -> float | None:
        return next((t for t, msg, _ in self.received if t >= t0 and is_hold(msg)), None)

    def cycles(self, t0: float, t1: float) -> int:
        """Hold -> command transitions between t0 and t1."""
        kinds = [is_hold(msg) for t, msg, _ in self.received if t0 <= t < t1]
        return sum(1 for a, b in zip(kinds, kinds[1:]) if a and not b)

    def first_point_ratios(self, t0: float) -> tuple[float, float, float]:
        """Speed and acceleration the first command after `t0` needs to reach its first point from
        the arm's position at receipt (joint_trajectory_controller's cubic from rest), divided by
        the limits (max over joints), and the time it has for it."""
        for t, msg, q in self.received:
            if t < t0 or is_hold(msg):
                continue
            _, times, positions, velocities = joint_trajectory_to_arrays(msg)
            stamp = stamp_to_seconds(msg.header.stamp)
            available = (stamp if stamp > 0 else t) + times[0] - t
            if available <= 0:
                return math.inf, math.inf, available
            gap = positions[0] - q  # [J]
            v_end = np.nan_to_num(velocities[0])
            speed = np.abs(gap) / available
            accel = np.maximum(np.abs(6 * gap / available**2 - 2 * v_end / available),
                               np.abs(-6 * gap / available**2 + 4 * v_end / available))
            return float((speed / MAX_VELOCITY).max()), float((accel / MAX_ACCELERATION).max()), float(available)
        return 0.0, 0.0, math.nan


@pytest.fixture
def rig(ros_context, tiny_model_dir):
    h = PolicyNodeHarness(ros_context, tiny_model_dir, **{
        "safety.input_timeout_s": INPUT_TIMEOUT_S, "safety.recovery_s": RECOVERY_S,
        "safety.startup_grace_s": 5.0})
    robot = FakeRobot(CAMERA_TOPICS, JOINTS, instruction="reach the red cube", context=ros_context,
                      initial_positions=[0.2, -0.1, 0.3], limit_upper=LIMITS["robot.position_upper"][0])
    h.add_node(robot)
    h.wait_for(lambda: h.node.runner is not None and h.node._active, what="node active")
    rec = Recorder(h, robot)
    h.wait_for(lambda: len(rec.commands_between(0, math.inf)) >= 3, timeout_s=30, what="commands before the fault")
    yield h, robot, rec
    h.destroy_node(robot)
    h.close()


def _inject(rec: Recorder, start, stop, duration_s: float = FAULT_S) -> tuple[float, float]:
    """Run `start()`, keep the fault for `duration_s` (waiting on the robot's clock), `stop()`."""
    onset = rec.now()
    start()
    rec.h.wait_for(lambda: rec.now() >= onset + duration_s, timeout_s=duration_s + 5, what="the fault period")
    end = rec.now()
    stop()
    return onset, end


def _finish(name: str, rec: Recorder, onset: float, end: float, expect_hold: bool = True) -> CaseResult:
    rec.h.wait_for(lambda: rec.commands_between(end, math.inf), timeout_s=20, what=f"{name}: commands again")
    hold = rec.first_hold_after(onset)
    resumed = rec.commands_between(end, math.inf)[0]
    v_ratio, a_ratio, first_time = rec.first_point_ratios(end)
    result = CaseResult(
        case=name,
        hold_latency_s=None if hold is None or hold > end else hold - onset,
        commands_from_bad_data=rec.bad_published,
        commands_during_fault=len(rec.commands_between(onset + INPUT_TIMEOUT_S, end)),
        recovery_s=resumed - end,
        hold_resume_cycles=rec.cycles(onset, end),
        first_point_velocity_ratio=v_ratio,
        first_point_acceleration_ratio=a_ratio,
        first_point_time_s=first_time,
    )
    RESULTS.append(result)
    assert result.commands_from_bad_data == 0, result
    if expect_hold:
        assert result.hold_latency_s is not None and result.hold_latency_s <= INPUT_TIMEOUT_S + 0.3, result
        assert result.commands_during_fault == 0, result
    assert result.hold_resume_cycles == 0, result
    # Velocity and acceleration: the plan keeps the controller's cubic within both limits (a plan
    # from rest starts execution.start_lead_s, 0.1 s, after it is sent (PolicyRunner.at_send moves
    # a plan whose sending was delayed) and its first step uses a quarter of the acceleration
    # budget, so the first segment stays within the limit even when the message reaches the
    # controller ~80 ms later than execution_lead_s plans for).
    assert v_ratio <= 1.05 and a_ratio <= 1.05, result
    assert not rec.robot.refused, rec.robot.controller.refusals[:3]
    return result


JOINT_FAULTS = ["nan", "out_of_limit", "degrees"]
STAMP_FAULTS = ["old", "future", "zero", "frozen"]


@pytest.mark.parametrize("fault", JOINT_FAULTS)
def test_bad_joint_states_hold_and_never_command(rig, fault):
    _h, robot, rec = rig
    onset, end = _inject(rec, lambda: setattr(robot, "fault", fault), lambda: setattr(robot, "fault", ""))
    _finish(f"joint_states {fault}", rec, onset, end)


@pytest.mark.parametrize("stamp_fault", STAMP_FAULTS)
def test_bad_stamps_hold_and_never_command(rig, stamp_fault):
    _h, robot, rec = rig
    onset, end = _inject(rec, lambda: setattr(robot, "stamp_fault", stamp_fault),
                         lambda: setattr(robot, "stamp_fault", ""))
    _finish(f"stamps {stamp_fault}", rec, onset, end)


def test_stale_inputs_hold_and_recover_with_hysteresis(rig):
    _h, robot, rec = rig
    onset, end = _inject(rec, lambda: setattr(robot, "pause", True), lambda: setattr(robot, "pause", False))
    result = _finish("stale inputs", rec, onset, end)
    assert result.recovery_s >= RECOVERY_S - 0.05, result


def test_slow_camera_holds_once_instead_of_flapping(rig):
    _h, robot, rec = rig
    onset, end = _inject(rec, lambda: setattr(robot, "camera_rate_hz", 1.9),
                         lambda: setattr(robot, "camera_rate_hz", robot.rate_hz), duration_s=8.0)
    _finish("camera at 1.9 Hz", rec, onset, end)


@pytest.mark.parametrize("reliability", [ReliabilityPolicy.BEST_EFFORT, ReliabilityPolicy.RELIABLE])
def test_estop_holds_from_either_qos(rig, reliability):
    h, _robot, rec = rig
    enable = h.probe.create_publisher(Bool, "/policy/enable", QoSProfile(depth=10, reliability=reliability))
    h.wait_for(lambda: enable.get_subscription_count() > 0, what="e-stop matched")
    onset, end = _inject(rec, lambda: enable.publish(Bool(data=False)), lambda: enable.publish(Bool(data=True)))
    name = "e-stop " + ("best effort" if reliability == ReliabilityPolicy.BEST_EFFORT else "reliable")
    result = _finish(name, rec, onset, end)
    assert result.hold_latency_s <= 0.2, result


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_sends_the_final_hold_first_and_nothing_after(ros_context, tmp_path, tiny_model_dir, signum):
    """The node as its own process (its main handles the signals), driving a fake robot here."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    robot = FakeRobot(CAMERA_TOPICS, JOINTS, instruction="reach the red cube", context=ros_context)
    probe = Node("stop_probe", context=ros_context)
    received: list[tuple[float, JointTrajectory]] = []
    probe.create_subscription(JointTrajectory, "/joint_trajectory_controller/joint_trajectory",
                              lambda m: received.append((time.monotonic(), m)), qos.command_qos(depth=100))
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(robot)
    executor.add_node(probe)
    node = RosPeerProcess(["-m", "moe_vla_ros.ros.policy_node", "--ros-args", "--params-file",
                           params_file(tmp_path, tiny_model_dir)])
    try:
        with node:
            spin_until(executor, lambda: len(received) >= 3, timeout_s=60, what="commands from the node process")
            sent = time.monotonic()
            node.proc.send_signal(signum)
            spin_until(executor, lambda: node.proc.poll() is not None, timeout_s=20, what="the node to exit")
            spin_until(executor, lambda: is_hold(received[-1][1]), timeout_s=5, what="the final hold")
            n = len(received)
            executor.spin_once(timeout_sec=0.2)  # drain what may still be in flight: nothing comes
            assert len(received) == n
        out = node.output()
        hold_at = next(t for t, msg in received if t >= sent and is_hold(msg))
        after_signal = [msg for t, msg in received if t >= sent]
        RESULTS.append(CaseResult(
            case=signal.Signals(signum).name, hold_latency_s=hold_at - sent,
            commands_from_bad_data=sum(not is_hold(msg) for t, msg in received if t > hold_at),
            commands_during_fault=sum(not is_hold(msg) for msg in after_signal), recovery_s=None,
            hold_resume_cycles=0, first_point_velocity_ratio=0.0, first_point_acceleration_ratio=0.0,
            first_point_time_s=math.nan))
        assert node.proc.returncode == 0, out
        assert is_hold(after_signal[-1]) and sum(is_hold(msg) for msg in after_signal) == 1, out
        assert "final hold" in out
        for bad in ("Failed to publish", "context is invalid", "Traceback", "cannot use Destroyable"):
            assert bad not in out, out
    finally:
        executor.shutdown()
        robot.destroy_node()
        probe.destroy_node()
