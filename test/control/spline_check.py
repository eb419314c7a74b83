"""What joint_trajectory_controller executes from the executor's trajectories: the spline through
the published points, sampled finely with the simulator's JTC follower (sim/trajectory_follower.py,
a copy of JTC's trajectory.cpp sampling). Shared by the spline tests and the measuring script."""

from __future__ import annotations

import numpy as np

from moe_vla_ros.control.chunking import ActionChunkExecutor, PlannedTrajectory
from moe_vla_ros.control.jtc_rules import JtcParams
from moe_vla_ros.sim.trajectory_follower import JointTrajectory, TrajectoryFollower

SAMPLE_S = 0.001  # 1 kHz


class SplineProbe:
    """A JTC follower fed with PlannedTrajectory messages at their receipt times; `peaks` samples
    the commanded acceleration and velocity and returns their largest ratio to the limits."""

    def __init__(self, num_joints: int, initial: np.ndarray, open_loop: bool = True) -> None:
        names = tuple(f"j{i}" for i in range(num_joints))
        params = JtcParams(joints=names, interpolate_from_desired_state=open_loop)
        self.names = names
        self.follower = TrajectoryFollower(names, list(initial), params)
        self.first_receipt: float | None = None
        self.last_end = -np.inf

    def send(self, trajectory: PlannedTrajectory | None, receipt: float,
             measured: np.ndarray | None = None) -> None:
        if trajectory is None:
            return
        accelerations = getattr(trajectory, "accelerations", None)
        msg = JointTrajectory.from_arrays(self.names, trajectory.positions, trajectory.times - trajectory.start_time,
                                          trajectory.velocities, trajectory.start_time, accelerations)
        zeros = None if measured is None else np.zeros(len(self.names))
        self.follower.set_trajectory(msg, receipt, measured, zeros)
        if self.first_receipt is None:
            self.first_receipt = receipt
        self.last_end = max(self.last_end, float(trajectory.times[-1]))

    def samples(self, t0: float | None = None, t1: float | None = None):
        t0 = self.first_receipt if t0 is None else t0
        t1 = self.last_end + 0.05 if t1 is None else t1
        vel, acc = [], []
        for t in np.arange(t0, t1, SAMPLE_S):
            state, _ = self.follower._command_state(float(t))
            vel.append(state.velocities if state.velocities is not None else np.zeros(len(self.names)))
            acc.append(state.accelerations if state.accelerations is not None else np.zeros(len(self.names)))
        return np.array(vel), np.array(acc)  # [S, J] each

    def peaks(self, v_max: np.ndarray, a_max: np.ndarray, t0: float | None = None,
              t1: float | None = None) -> tuple[float, float]:
        """(max |v| / v_max, max |a| / a_max) over all joints and samples."""
        vel, acc = self.samples(t0, t1)
        return float((np.abs(vel) / v_max).max()), float((np.abs(acc) / a_max).max())


def run_random(executor: ActionChunkExecutor, rng: np.random.Generator, initial: np.ndarray, lower: np.ndarray,
               upper: np.ndarray, steps: int = 12, hold_probability: float = 0.15, lead: float = 0.0,
               jitter_s: float = 0.0, span: float = 1.0) -> SplineProbe:
    """Random chunks (far jumps and smooth paths) through `executor`, refilled at half a chunk with
    random latency, occasional holds; every published trajectory goes to a JTC follower received
    `lead` (+ random jitter up to `jitter_s`) after `now`."""
    cfg = executor.config
    dt, horizon, joints = cfg.control_period_s, cfg.chunk_length, cfg.num_joints
    probe = SplineProbe(joints, initial)
    now = 1.0
    position = initial.copy()
    for _ in range(steps):
        latency = rng.uniform(0.02, 0.2)
        obs = now - latency
        if rng.random() < 0.5:
            target = np.clip(position + rng.uniform(-span, span, joints), lower, upper)
            chunk = np.repeat(target[None, :], horizon, axis=0)
        else:
            slope = rng.uniform(-3.0, 3.0, joints)
            chunk = position[None, :] + slope[None, :] * dt * np.arange(1, horizon + 1)[:, None]
            chunk = np.clip(chunk + rng.normal(0.0, 0.05, chunk.shape), lower, upper)
        measured, measured_v = probe.follower.sample(obs)  # the arm follows the commands exactly
        receipt = now + lead + rng.uniform(0.0, jitter_s)
        if rng.random() < hold_probability:
            probe.send(executor.brake(now, measured), receipt)
        else:
            result = executor.accept(chunk, obs, now, current_position=measured, current_velocity=measured_v)
            if result.accepted:
                probe.send(executor.trajectory(now), receipt)
        now += rng.uniform(0.3, 0.9) if rng.random() < 0.8 else rng.uniform(1.5, 3.0)
        position = probe.follower.positions_at(now)
    return probe
