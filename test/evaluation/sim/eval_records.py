"""Hand-made episode records for the evaluation tests (no simulator, no ROS)."""

from __future__ import annotations

import numpy as np

from moe_vla_ros.evaluation.records import TraceRecord, UsageRecord
from moe_vla_ros.evaluation.sim.records import EpisodeRecord, LatencyRecord, TrajectoryRecord

JOINTS = ["joint_1", "gripper"]


def chunk(start_s: float, first: float, slope: float, points: int = 4, dt: float = 0.1) -> TrajectoryRecord:
    """A straight-line chunk on both joints: position first + slope * (t - t_first), velocity slope."""
    times = [(i + 1) * dt for i in range(points)]
    positions = [[first + slope * i * dt] * 2 for i in range(points)]
    return TrajectoryRecord(start_s, start_s, times, positions, [[slope] * 2 for _ in range(points)])


def make_record(index: int, family: str, success: bool, loads: dict[str, list[list[float]]],
                duration_s: float = 2.0) -> EpisodeRecord:
    """A record with a measured ramp, two chunks joined without a jump, one trace, usage per chunk."""
    r = EpisodeRecord(index, 10_000 + index, family, f"{family} the red cube", 6.0, joint_names=list(JOINTS))
    r.start_s, r.success, r.duration_s, r.control_steps = 100.0, success, duration_s, round(duration_s * 10)
    r.joint_times = list(100.0 + np.arange(0.0, duration_s, 0.01))
    r.joint_positions = [[0.1 * (t - 100.0), 0.0] for t in r.joint_times]
    r.trajectories = [chunk(100.0, 0.0, 0.5), chunk(100.2, 0.1, 0.5)]  # the second continues the first
    r.traces = [TraceRecord(100.0, f"the red cube is ahead ({family})", chunk_id=1)]
    n_chunks = len(next(iter(loads.values())))
    r.usage = [UsageRecord(100.0 + 0.2 * i, {name: v[i] for name, v in loads.items()}, i + 1, 100.05 + 0.2 * i)
               for i in range(n_chunks)]
    r.latency = [LatencyRecord(100.0 + duration_s, 4 + index, 5.0, 4.0 + index, 9.0 + index, 12.0)]
    return r


def sample_records() -> list[EpisodeRecord]:
    """Two reach episodes (one success) and one push episode, with different expert loads."""
    reach = {"trunk.1": [[0.5, 0.5, 0.0, 0.0], [0.7, 0.3, 0.0, 0.0]], "head.0": [[1.0, 0.0], [1.0, 0.0]]}
    push = {"trunk.1": [[0.0, 0.0, 0.6, 0.4]], "head.0": [[0.0, 1.0]]}
    return [make_record(0, "reach", True, reach, 1.5), make_record(1, "push", False, push, 6.0),
            make_record(2, "reach", False, reach, 6.0)]
