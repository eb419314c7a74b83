"""Every JointTrajectory a ROS test receives must pass joint_trajectory_controller's acceptance
checker (moe_vla_ros/control/jtc_rules.py), judged on the receiving node's clock.

    conformance = JtcConformance(clock=lambda: probe.get_clock().now().nanoseconds * 1e-9,
                                 joints=JOINT_NAMES)
    probe.create_subscription(JointTrajectory, topic, lambda m: (conformance.check(m), got.append(m)), qos)
    ...
    conformance.assert_no_violations()

`is_hold` tells the policy node's holds (a stop to rest) from its commands without relying on
empty trajectories, which the controller ignores.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml
from trajectory_msgs.msg import JointTrajectory

from moe_vla_ros.control.jtc_rules import JtcParams
from moe_vla_ros.ros.conversions import (
    duration_to_seconds,
    is_hold_trajectory,
    joint_trajectory_verdict,
    stamp_to_seconds,
)

CONTROLLER_YAML = Path(__file__).resolve().parents[2] / "config" / "controllers" / "joint_trajectory_controller.yaml"


def shipped_controller_params() -> JtcParams:
    """The joint_trajectory_controller of config/controllers/joint_trajectory_controller.yaml."""
    tree = yaml.safe_load(CONTROLLER_YAML.read_text())
    return JtcParams.from_ros_parameters(tree["joint_trajectory_controller"]["ros__parameters"])


def jtc_violation(msg: JointTrajectory, now_s: float, params: JtcParams) -> str:
    """Why joint_trajectory_controller would refuse `msg` received at `now_s` (or accept it but
    execute it badly); "" when it conforms."""
    verdict = joint_trajectory_verdict(msg, params, now_s)
    if verdict.conforming:
        return ""
    return "; ".join(filter(None, [verdict.reason, *verdict.warnings]))


def describe(msg: JointTrajectory) -> str:
    times = [round(duration_to_seconds(p.time_from_start), 4) for p in msg.points]
    return (f"JointTrajectory(stamp={stamp_to_seconds(msg.header.stamp):.4f}, joints={list(msg.joint_names)}, "
            f"{len(msg.points)} points at {times})")


def assert_jtc_accepts(msg: JointTrajectory, now_s: float, params: JtcParams | None = None) -> None:
    """AssertionError naming the rule when joint_trajectory_controller would not execute `msg`
    as meant (`params` None: upstream defaults for the message's joints)."""
    params = params or JtcParams(joints=tuple(msg.joint_names) or ("none",))
    problem = jtc_violation(msg, now_s, params)
    assert not problem, f"joint_trajectory_controller would refuse {describe(msg)} at {now_s:.4f} s: {problem}"


is_hold = is_hold_trajectory  # the policy node's holds (a stop to rest) vs its commands


class JtcConformance:
    """Checks each trajectory as it is received; collects what the controller would not execute.

    Args:
        clock: the receiving node's clock, seconds (the controller judges stamps against its own).
        joints: the controller's joints, or a callable giving them at the first message (e.g. the
            node's configured joints); None: each message's own names.
        params: full controller parameters instead of upstream defaults for `joints`.
    """

    def __init__(self, clock: Callable[[], float],
                 joints: Sequence[str] | Callable[[], Sequence[str]] | None = None,
                 params: JtcParams | None = None) -> None:
        self._clock = clock
        self._joints = joints
        self._params = params
        self._lock = threading.Lock()
        self.checked = 0
        self.violations: list[str] = []

    def _params_for(self, msg: JointTrajectory) -> JtcParams:
        if self._params is None:
            joints = self._joints() if callable(self._joints) else self._joints
            joints = tuple(joints or ()) or tuple(msg.joint_names)
            if not joints:
                joints = ("unknown",)
            self._params = JtcParams(joints=joints)
        return self._params

    def check(self, msg: JointTrajectory) -> str:
        """Judge `msg` now (call from the subscription callback); returns the violation or ""."""
        now = self._clock()
        with self._lock:
            problem = jtc_violation(msg, now, self._params_for(msg))
            self.checked += 1
            if problem:
                self.violations.append(f"{describe(msg)} received at {now:.4f} s: {problem}")
        return problem

    def assert_no_violations(self) -> None:
        with self._lock:
            violations = list(self.violations)
        assert not violations, (f"{len(violations)} of {self.checked} trajectories would not be executed by "
                                "joint_trajectory_controller:\n  " + "\n  ".join(violations[:10]))
