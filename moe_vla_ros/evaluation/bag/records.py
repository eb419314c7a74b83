"""What the bag evaluators score: the policy's commands and telemetry, and the recorded reference.

Both evaluators reduce a run to `RunRecords`, so one metrics module scores them alike:

- offline (evaluation/bag/offline.py) builds them from the PolicyRunner's commands;
- through the node (ros/bag_replay_eval.py), `records_from_node_bag()` reads them from the bag
  the node's outputs were recorded into (JointTrajectory, ExpertUsage, ReasoningTrace,
  PolicyStatus), pairing every trajectory with the ExpertUsage published with it (the stamp of
  the observation it came from).

`Reference` holds what the bag recorded: the commanded targets (JointTrajectory commands, with
joint_trajectory_controller semantics, see resample.sample_trajectories) or, without a command
topic, the joint states, both in the model's joint order.

All times are float seconds on the bag's clock. Pure: rosbags + numpy, no rclpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from moe_vla_ros.bags import demo_streams as ds
from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.reader import BagReader
from moe_vla_ros.bags.resample import (
    TrajectoryCommand,
    interpolate_joint_positions,
    latest_at_or_before,
    sample_trajectories,
)
from moe_vla_ros.contract import SensorContract
from moe_vla_ros.control.chunking import is_hold_profile
from moe_vla_ros.control.joint_state import JointStateError, JointStateMapper
from moe_vla_ros.evaluation.records import CommandRecord, TraceRecord, UsageRecord

NS = 1_000_000_000
USAGE_TYPE = "moe_vla_msgs/msg/ExpertUsage"
STATUS_TYPE = "moe_vla_msgs/msg/PolicyStatus"


def to_ns(times_s: np.ndarray | float) -> np.ndarray:
    return np.round(np.asarray(times_s, dtype=np.float64) * NS).astype(np.int64)


@dataclass(frozen=True)
class ChunkRecord:
    """A raw predicted chunk (offline only): step k is due at obs_stamp_s + (k+1) * period."""

    obs_stamp_s: float
    available_s: float
    actions: np.ndarray  # [H, J]


@dataclass
class RunRecords:
    """Everything a run produced, in publication order.

    Attributes:
        joint_names: model joint order of every position vector.
        control_period_s: the contract's control period.
        start_s, end_s: the evaluated span of the bag.
        commands, traces, usage, chunks: see the record types.
        latencies_s: inference latencies (offline: one per inference).
        counters: run counters (observations, inferences, accepted / rejected chunks, ...).
        latency_summary_ms: the node's own latency statistics (mean_ms, p50_ms, ...) if reported.
    """

    joint_names: tuple[str, ...]
    control_period_s: float
    start_s: float
    end_s: float
    commands: list[CommandRecord] = field(default_factory=list)
    traces: list[TraceRecord] = field(default_factory=list)
    usage: list[UsageRecord] = field(default_factory=list)
    chunks: list[ChunkRecord] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    latency_summary_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Reference:
    """The bag's recorded actions and joint states, model joint order.

    Attributes:
        source: "command <topic>" or "joint states <topic>".
        joint_times_s: float64 [N]; joint_positions: float64 [N, J].
        commands: recorded JointTrajectory commands (empty: joint states are the reference).
        max_gap_s: samples further than this from recorded data are invalid.
    """

    source: str
    joint_times_s: np.ndarray
    joint_positions: np.ndarray
    commands: tuple[TrajectoryCommand, ...]
    max_gap_s: float

    def joint_states(self, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Interpolated measured positions (float64 [K, J], bool [K] valid)."""
        return interpolate_joint_positions(
            to_ns(self.joint_times_s), self.joint_positions, to_ns(times_s), int(self.max_gap_s * NS)
        )

    def targets(self, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Reference actions at `times_s`: the commanded target (float64 [K, J], bool [K] valid).

        Valid where joint states bracket the time within max_gap_s and, with commands, a command
        is active and has not ended more than max_gap_s earlier (no command for a while means
        the recording paused, not that the robot was told to hold).
        """
        states, valid = self.joint_states(times_s)
        if not self.commands:
            return states, valid
        query = to_ns(times_s)
        joint_ns, gap_ns = to_ns(self.joint_times_s), int(self.max_gap_s * NS)

        def state_at(t_ns: int) -> np.ndarray | None:
            q, ok = interpolate_joint_positions(joint_ns, self.joint_positions, np.array([t_ns]), gap_ns)
            return q[0] if ok[0] else None

        targets, active = sample_trajectories(list(self.commands), query, state_at)
        ordered = sorted(self.commands, key=lambda c: c.start_ns)
        ends = np.array([c.start_ns + (int(c.offsets_ns[-1]) if c.offsets_ns.size else 0) for c in ordered])
        which = latest_at_or_before(np.array([c.start_ns for c in ordered], dtype=np.int64), query)
        fresh = (which >= 0) & (query <= ends[np.maximum(which, 0)] + gap_ns)
        return targets, valid & active & fresh


def load_reference(bag: BagReader, contract: SensorContract, joint_state_topic: str, instruction_topic: str,
                   command_topic: str, max_gap_s: float) -> Reference:
    """The reference of `bag`; the command topic is used when given and present in the bag."""
    command = command_topic if command_topic and command_topic in bag.topics else ""
    if command:
        bag.require_type(command, ds.TRAJECTORY_TYPE)
    topics = ds.StreamTopics({}, joint_state_topic, instruction_topic, command)
    streams = ds.load_demo_streams(bag, contract, topics, progress=False)
    if streams.joint_times_ns.size == 0:
        raise BagError(f"bag {bag.path} has no joint states on {joint_state_topic}")
    usable = [c for c in streams.commands if c.offsets_ns.size]  # empty trajectories are holds
    return Reference(
        source=f"command {command}" if command else f"joint states {joint_state_topic}",
        joint_times_s=streams.joint_times_ns.astype(np.float64) / NS,
        joint_positions=streams.joint_positions,
        commands=tuple(usable),
        max_gap_s=max_gap_s,
    )


def _stamp_s(stamp) -> float:
    return int(stamp.sec) + int(stamp.nanosec) * 1e-9


def _pair_usage(
    trajectories: list[tuple[float, bool]], usage_times: list[float], tolerance_s: float = 0.05
) -> list[int]:
    """Index of the ExpertUsage published with each trajectory (-1: none; holds have none).

    The node publishes one usage right after each non-empty trajectory, so with equal counts
    they pair in order; otherwise (a message lost) each trajectory takes the first unused usage
    recorded within `tolerance_s` of it.
    """
    commanded = [i for i, (_, has_points) in enumerate(trajectories) if has_points]
    pairs = [-1] * len(trajectories)
    if len(commanded) == len(usage_times):
        for u, i in enumerate(commanded):
            pairs[i] = u
        return pairs
    u = 0
    for i in commanded:
        t = trajectories[i][0]
        while u < len(usage_times) and usage_times[u] < t - tolerance_s:
            u += 1
        if u < len(usage_times) and usage_times[u] <= t + tolerance_s:
            pairs[i], u = u, u + 1
    return pairs


def records_from_node_bag(
    path, contract: SensorContract, *, trajectory_topic: str, usage_topic: str,
    trace_topic: str, status_topic: str,
) -> RunRecords:
    """RunRecords of what a policy node published, read from the bag its outputs were recorded in.

    Each non-empty trajectory is paired with the ExpertUsage the node published with it (same
    inference, see `_pair_usage`), whose stamp is the trajectory's observation stamp. The last
    PolicyStatus gives the node's counters and latency statistics.
    """
    mapper = JointStateMapper(contract.joint_names)
    with BagReader(path) as bag:
        bag.require_topics([trajectory_topic])
        wanted = [t for t in (trajectory_topic, usage_topic, trace_topic, status_topic) if t in bag.topics]
        trajectories, usages, traces, status = [], [], [], None
        for msg, obj in bag.decoded(wanted):
            t = msg.log_time_ns / NS
            if msg.topic == trajectory_topic:
                trajectories.append((t, obj, msg.index))
            elif msg.topic == usage_topic:
                loads = {str(layer.layer_name): np.asarray(layer.expert_load, dtype=np.float64) for layer in obj.layers}
                usages.append((t, UsageRecord(_stamp_s(obj.header.stamp), loads, int(obj.chunk_id))))
            elif msg.topic == trace_topic:
                traces.append(TraceRecord(_stamp_s(obj.header.stamp), str(obj.text), int(obj.chunk_id)))
            else:
                status = obj
        start, end = bag.start_ns / NS, bag.end_ns / NS
    holds = [is_hold_profile(traj.points, len(traj.joint_names)) for _, traj, _ in trajectories]
    pairs = _pair_usage([(t, not hold) for (t, _, _), hold in zip(trajectories, holds)], [t for t, _ in usages])
    commands = []
    for (t, traj, index), paired, hold in zip(trajectories, pairs, holds):
        stamp = _stamp_s(traj.header.stamp) or t
        if hold:
            commands.append(CommandRecord(t, stamp, np.zeros(0), np.zeros((0, len(contract.joint_names)))))
            continue
        try:
            order = mapper.indices(list(traj.joint_names))
        except JointStateError as e:
            raise BagError(f"trajectory {index} on {trajectory_topic} in {path}: {e}") from None
        offsets = np.array([_stamp_s(p.time_from_start) for p in traj.points])
        positions = np.array([np.asarray(p.positions, dtype=np.float64)[order] for p in traj.points])
        usage = usages[paired][1] if paired >= 0 else None
        obs, chunk_id = (usage.stamp_s, usage.chunk_id) if usage else (math.nan, -1)
        commands.append(CommandRecord(t, stamp, stamp + offsets, positions, obs, chunk_id))
    records = RunRecords(
        tuple(contract.joint_names), contract.control_period_s, start, end, commands,
        traces=sorted(traces, key=lambda r: r.stamp_s), usage=[r for _, r in usages],
    )
    if status is not None:
        records.counters = {
            "chunks_published": int(status.chunks_published), "rejected_chunks": int(status.rejected_commands),
            "dropped_inputs": int(status.dropped_inputs), "stale_inputs": int(status.stale_inputs),
        }
        lat = status.inference_latency
        records.counters["latency_count"] = int(lat.count)
        records.latency_summary_ms = {k: float(getattr(lat, k)) for k in ("mean_ms", "p50_ms", "p95_ms", "max_ms")}
    return records
