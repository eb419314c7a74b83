"""What a closed-loop evaluation plans and measures, as plain JSON-ready records.

`plan_sim_episodes()` fixes the episodes: episode i runs task family `families[i % n]` on scene
seed `seed_start + i`; the target cube, push direction and instruction paraphrase are drawn
from that seed, so the same arguments always give the same episodes (for the policy and the
scripted expert alike). Start the seeds away from the ones demonstrations were generated
with (DEFAULT_SEED_START) to evaluate on held-out scenes.

`EpisodeRecord` holds everything the evaluator saw during one policy episode, with times in
simulated seconds (the stamps of the ROS messages): measured joint states, every commanded
trajectory, reasoning traces, expert usage per chunk and the node's latency reports. Pure
(numpy + the simulator's task definitions): no rclpy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moe_vla_ros.evaluation.records import CommandRecord, EvaluationError, TraceRecord, UsageRecord
from moe_vla_ros.sim.tasks import TASK_FAMILIES, Task, sample_task

DEFAULT_SEED_START = 10_000  # demonstrations use seeds drawn from a master seed; evaluation counts from here


@dataclass(frozen=True)
class EpisodePlan:
    """One planned episode: its position in the run, the scene seed and the task."""

    index: int
    seed: int
    task: Task

    @property
    def family(self) -> str:
        return self.task.family


def plan_sim_episodes(
    episodes: int, families: Sequence[str], seed_start: int = DEFAULT_SEED_START, max_duration_s: float | None = None
) -> list[EpisodePlan]:
    """`episodes` plans cycling through `families`; `max_duration_s` replaces the tasks' time limits."""
    if isinstance(families, str) or not families or any(f not in TASK_FAMILIES for f in families):
        raise EvaluationError(f"task families must be a non-empty list from {list(TASK_FAMILIES)}, got {families!r}")
    if int(episodes) != episodes or episodes < 1:
        raise EvaluationError(f"episodes must be a positive integer, got {episodes!r}")
    if int(seed_start) != seed_start or not 0 <= seed_start <= 2**31 - 1 - episodes:
        raise EvaluationError(f"seed_start must be an integer in [0, 2^31 - 1 - episodes], got {seed_start!r}")
    plans = []
    for i in range(int(episodes)):
        seed = int(seed_start) + i
        task = sample_task(families[i % len(families)], np.random.default_rng(seed))
        if max_duration_s is not None:
            task = dataclasses.replace(task, max_duration_s=float(max_duration_s))
        plans.append(EpisodePlan(i, seed, task))
    return plans


@dataclass
class TrajectoryRecord:
    """One trajectory_msgs/JointTrajectory with points, as received.

    Attributes:
        received_s: simulated time when it arrived.
        start_s: header.stamp (the trajectory's start; 0 = start on receipt).
        time_from_start: [P] seconds of each point after start_s.
        positions: [P][J] targets; velocities: [P][J] (empty rows when the point has none).
    """

    received_s: float
    start_s: float
    time_from_start: list[float]
    positions: list[list[float]]
    velocities: list[list[float]]

    def point_times(self) -> np.ndarray:
        """Absolute time [P] of every point (a zero stamp counts from receipt)."""
        start = self.start_s if self.start_s > 0 else self.received_s
        return start + np.asarray(self.time_from_start, dtype=np.float64)

    def command(self) -> CommandRecord:
        """As the seam metric scores it (absolute point times, positions [P, J])."""
        start = self.start_s if self.start_s > 0 else self.received_s
        return CommandRecord(self.received_s, start, self.point_times(), np.asarray(self.positions, dtype=np.float64))


@dataclass
class LatencyRecord:
    """PolicyStatus.inference_latency at one status report (the node's rolling window)."""

    stamp_s: float
    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    max_ms: float


@dataclass
class EpisodeRecord:
    """Everything measured during one policy episode (times in simulated seconds).

    `success`, `duration_s` (activation to the end: success confirmed or time limit) and
    `control_steps` (duration in control periods of the model's contract, as the expert's
    rollout counts them) are filled in when the episode ends. `frames` (front camera, for
    the GIF) are kept in memory only. `holds` counts the node's holds; `commands_refused` the
    trajectories the simulated joint_trajectory_controller refused (should be 0) and
    `controller_holds` the times it stopped the arm itself (path/goal tolerance).
    `shortfall_m` is how far from success the scene was when the episode ended (metres,
    TaskMonitor.shortfall_m; 0.0 for a success; None when not measured or not finite, i.e. a
    pushed cube off the table).
    """

    index: int
    seed: int
    family: str
    instruction: str
    max_duration_s: float
    joint_names: list[str] = field(default_factory=list)
    start_s: float = 0.0
    success: bool = False
    duration_s: float = 0.0
    control_steps: int = 0
    wall_time_s: float = 0.0
    model_id: str = ""
    holds: int = 0
    commands_refused: int = 0
    controller_holds: int = 0
    shortfall_m: float | None = None
    joint_times: list[float] = field(default_factory=list)
    joint_positions: list[list[float]] = field(default_factory=list)
    trajectories: list[TrajectoryRecord] = field(default_factory=list)
    traces: list[TraceRecord] = field(default_factory=list)
    usage: list[UsageRecord] = field(default_factory=list)
    latency: list[LatencyRecord] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list, repr=False)

    @classmethod
    def for_plan(cls, plan: EpisodePlan) -> EpisodeRecord:
        t = plan.task
        return cls(plan.index, plan.seed, t.family, t.instruction, t.max_duration_s)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field except the camera frames."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "frames"}
        for key in ("trajectories", "traces", "usage", "latency"):
            d[key] = [dataclasses.asdict(item) for item in d[key]]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EpisodeRecord:
        d = dict(d)
        kinds = {"trajectories": TrajectoryRecord, "traces": TraceRecord, "usage": UsageRecord,
                 "latency": LatencyRecord}
        for key, kind in kinds.items():
            d[key] = [kind(**item) for item in d.get(key, [])]
        return cls(**d)


@dataclass
class EpisodeTermination:
    """When an episode ends (simulated seconds): once the task has held for `confirm_s`, or at
    `t0 + max_duration_s`. Feed it `update(now, task_success)` regularly."""

    t0: float
    max_duration_s: float
    confirm_s: float
    success: bool = False
    duration_s: float | None = None  # set when the episode ends
    _success_since: float | None = None

    @property
    def ended(self) -> bool:
        return self.duration_s is not None

    def update(self, now: float, task_success: bool) -> bool:
        """Whether the episode has ended (it stays ended)."""
        if self.ended:
            return True
        if task_success:
            self._success_since = now if self._success_since is None else self._success_since
            if now - self._success_since >= self.confirm_s - 1e-9:  # times are sums of physics steps
                self.success, self.duration_s = True, now - self.t0
        else:
            self._success_since = None
        if not self.ended and now - self.t0 >= self.max_duration_s - 1e-9:
            self.duration_s = self.max_duration_s
        return self.ended


def keep_showcase(current: EpisodeRecord | None, candidate: EpisodeRecord) -> EpisodeRecord:
    """The episode to show (GIF, trajectory plot): the first success, else the first episode.
    The camera frames of the episode not kept are dropped (memory stays bounded)."""
    if current is None or (candidate.success and not current.success):
        if current is not None:
            current.frames = []
        return candidate
    candidate.frames = []
    return current


@dataclass(frozen=True)
class ExpertResult:
    """The scripted expert on one planned episode (no ROS, same seed and task)."""

    index: int
    seed: int
    family: str
    success: bool
    duration_s: float
    control_steps: int
