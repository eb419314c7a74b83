"""A joint_trajectory_controller + mock hardware stand-in for fake robots (tests, benchmarks, dry
runs without a robot): it refuses exactly what the real controller refuses
(moe_vla_ros.control.jtc_rules) and follows what it accepts with the simulator's follower
(moe_vla_ros.sim.trajectory_follower), open loop, so the joints sit on the setpoint as with
ros2_control's mock hardware (mock_components/GenericSystem). No graph: messages in, positions out.

`receive_trajectory` is the controller's topic callback over a follower, shared with sim_node."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from trajectory_msgs.msg import JointTrajectory

from moe_vla_ros.control.jtc_rules import JtcParams
from moe_vla_ros.ros.conversions import joint_trajectory_to_follower, joint_trajectory_verdict
from moe_vla_ros.sim.trajectory_follower import JointTrajectory as FollowerTrajectory
from moe_vla_ros.sim.trajectory_follower import TrajectoryError, TrajectoryFollower


def receive_trajectory(
    follower: TrajectoryFollower,
    msg: JointTrajectory,
    params: JtcParams,
    now: float,
    current_positions: Sequence[float] | None = None,
    current_velocities: Sequence[float] | None = None,
) -> FollowerTrajectory:
    """joint_trajectory_controller's topic callback + next update: refuse `msg` (TrajectoryError,
    with the controller's reason) when the controller would refuse it, or accept it but not
    execute it as meant; otherwise hand it to `follower` at time `now` (from the given measured
    state, else the follower's own). Returns the accepted trajectory."""
    verdict = joint_trajectory_verdict(msg, params, now)
    if not verdict.accepted:
        raise TrajectoryError(verdict.reason, verdict.rule)
    if verdict.warnings:  # accepted by the controller, but not executable as meant
        raise TrajectoryError(f"joint_trajectory_controller would accept this but not execute it as meant: "
                              f"{'; '.join(verdict.warnings)}", "warning")
    trajectory = joint_trajectory_to_follower(msg)
    follower.set_trajectory(trajectory, now, current_positions, current_velocities)
    return trajectory


class MockJointTrajectoryController:
    """Receives JointTrajectory messages at `clock()` (seconds), refuses or follows them."""

    def __init__(self, joint_names: Sequence[str], initial_positions: np.ndarray, clock: Callable[[], float],
                 params: JtcParams | None = None) -> None:
        self.joint_names = tuple(joint_names)
        self.params = params or JtcParams(joints=self.joint_names)
        self.clock = clock
        self.follower = TrajectoryFollower(self.joint_names, np.asarray(initial_positions, dtype=np.float64),
                                           self.params)
        self.accepted = 0
        self.refused = 0
        self.refusals: list[str] = []

    def receive(self, msg: JointTrajectory) -> str:
        """Follow `msg` the way the controller would; returns why it was refused ("" if accepted)."""
        try:
            receive_trajectory(self.follower, msg, self.params, self.clock())
        except TrajectoryError as e:
            return self._refuse(str(e))
        self.accepted += 1
        return ""

    def _refuse(self, reason: str) -> str:
        self.refused += 1
        self.refusals.append(reason)
        return reason

    def positions(self) -> np.ndarray:
        """Setpoint [J] at the clock's time (mock hardware: the joint state)."""
        return self.follower.positions_at(self.clock())
