"""Closed-loop episodes: a controller commands the sim at the control rate through a
joint_trajectory_controller-like `TrajectoryFollower`, and the steps are recorded as a dataset
`Episode`.

At control step k (time t_k = k / control_rate_hz) the runner
  1. observes: renders the configured cameras and reads the joint positions,
  2. asks the controller for a `ControlStep` (joint targets for t_k + period, a reasoning trace,
     optionally a whole `JointTrajectory`, e.g. an action chunk),
  3. sends the trajectory to the follower (stamp 0 = start now; a single target becomes one
     point at time_from_start = one period; open loop: the setpoint continues from the previous
     setpoint), and steps the physics to t_{k+1}, the follower feeding the actuators at every
     physics step (`advance`: a recorder can stop on the way, e.g. for sensors at their own rates),
  4. checks the task's success.
The recorded episode also holds the target cube's position at every observation
(`Episode.target_position`, privileged simulator state for the auxiliary training loss).
The episode ends once the task has succeeded for `success_hold_steps` consecutive steps and the
controller, if it says so (`ControlStep.done`), considers itself finished; or at the task's
time limit.

`noisy_execution` wraps a controller for noise-injected demonstrations (DART, Laskey et al.
2017): the executed arm targets carry a smooth random offset while the recorded action stays the
controller's, so the dataset shows how to get back on track from states off the nominal path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from moe_vla_ros.data.dataset import Episode
from moe_vla_ros.sim.arm_sim import ArmSim
from moe_vla_ros.sim.config import ARM_JOINT_NAMES, JOINT_NAMES
from moe_vla_ros.sim.expert import PHASES
from moe_vla_ros.sim.tasks import Task
from moe_vla_ros.sim.trajectory_follower import JointTrajectory, TrajectoryFollower, TrajectoryPoint


@dataclass(frozen=True)
class Observation:
    """What a policy sees at one control step."""

    time: float  # s since the episode start
    images: dict[str, np.ndarray]  # camera -> uint8 [H, W, 3]
    joint_position: np.ndarray  # [7], JOINT_NAMES order
    joint_velocity: np.ndarray  # [7]
    instruction: str


@dataclass(frozen=True)
class ControlStep:
    """A controller's output for one control step.

    Attributes:
        joint_targets: [7] position targets for one control period ahead (recorded as the action).
        reasoning: the reasoning trace valid at this step ("" when none).
        trajectory: sent to the follower instead of the single target when given.
        done: whether the controller considers the task finished; None = it does not say
            (the episode then ends on success alone).
    """

    joint_targets: np.ndarray
    reasoning: str = ""
    trajectory: JointTrajectory | None = None
    done: bool | None = None


Controller = Callable[[Observation], ControlStep]
Setpoint = Callable[[float], np.ndarray]  # sim time -> joint targets [7] (the follower's)
Advance = Callable[[float, Setpoint], None]  # step the physics to an absolute sim time


@dataclass(frozen=True)
class EpisodeResult:
    episode: Episode
    success: bool
    sim_duration_s: float
    steps: int


def run_episode(
    sim: ArmSim,
    task: Task,
    controller: Controller,
    success_hold_steps: int = 3,
    record_images: bool = True,
    advance: Advance | None = None,
) -> EpisodeResult:
    """Run `controller` on `task` from the sim's current state (reset it before).

    `advance(t, setpoint)` steps the physics to sim time t feeding `setpoint` (default
    `sim.step_to`); it must end at t.
    """
    if success_hold_steps < 1:
        raise ValueError(f"success_hold_steps must be >= 1, got {success_hold_steps!r}")
    period = sim.config.control_period_s
    monitor = task.start(sim)
    follower = TrajectoryFollower(JOINT_NAMES, sim.joint_targets())
    t0 = sim.time
    max_steps = int(round(task.max_duration_s / period))
    images: dict[str, list[np.ndarray]] = {cam: [] for cam in sim.config.camera_names}
    positions, actions, stamps, traces, targets_xyz = [], [], [], [], []
    success_steps = 0
    step_to = advance or (lambda t, setpoint: sim.step_to(t, setpoint=setpoint))
    for k in range(max_steps):
        now = sim.time
        frames = sim.render_all() if record_images else {}
        obs = Observation(now - t0, frames, sim.joint_positions(), sim.joint_velocities(), task.instruction)
        step = controller(obs)
        targets = np.asarray(step.joint_targets, dtype=np.float64)
        if targets.shape != (len(JOINT_NAMES),) or not np.all(np.isfinite(targets)):
            raise ValueError(f"controller returned joint targets {targets!r}, expected {len(JOINT_NAMES)} finite values")
        for cam, frame in frames.items():
            images[cam].append(frame)
        positions.append(obs.joint_position)
        targets_xyz.append(sim.cube_pose(task.color)[0])
        actions.append(targets)
        stamps.append(obs.time)
        traces.append(step.reasoning)
        trajectory = step.trajectory or JointTrajectory(JOINT_NAMES, (TrajectoryPoint(tuple(targets), period),))
        follower.set_trajectory(trajectory, now)
        step_to(t0 + (k + 1) * period, follower.positions_at)
        success_steps = success_steps + 1 if monitor.is_success(sim) else 0
        if success_steps >= success_hold_steps and step.done is not False:
            break
    success = success_steps > 0
    episode = Episode(
        images={cam: np.stack(frames) for cam, frames in images.items()} if record_images else {},
        joint_position=np.asarray(positions, dtype=np.float32),
        action=np.asarray(actions, dtype=np.float32),
        timestamp=np.asarray(stamps, dtype=np.float64),
        instruction=task.instruction,
        reasoning=traces,
        task=task.family,
        success=success,
        target_position=np.asarray(targets_xyz, dtype=np.float32).reshape(-1, 3),
    )
    return EpisodeResult(episode, success, sim.time - t0, len(positions))


def expert_controller(expert) -> Controller:
    """Wrap a `ScriptedExpert` (already reset to the task) as a Controller."""

    def control(_: Observation) -> ControlStep:
        action = expert.act()
        return ControlStep(action.joint_targets, action.reasoning, done=action.done)

    return control


@dataclass(frozen=True)
class ExecutionNoise:
    """Perturbation of the executed arm joint targets (the gripper is never perturbed).

    The offset follows a first-order autoregressive process per joint,
    o_k = correlation * o_{k-1} + sqrt(1 - correlation^2) * std_rad * N(0, 1),
    so it has standard deviation std_rad and drifts smoothly over about 1 / (1 - correlation)
    control steps, like a tracking error, instead of jittering every step.

    Attributes:
        std_rad: standard deviation of the offset per arm joint, rad (0: no noise).
        correlation: step-to-step correlation of the offset, in [0, 1).
        phases: the expert phases (expert.PHASES) that get new noise; in the others the offset
            decays (o_k = correlation * o_{k-1}) and the arm returns smoothly to the expert's
            path, e.g. noise while approaching a cube but a clean push. Empty: every phase.
    """

    std_rad: float = 0.0
    correlation: float = 0.8
    phases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (math.isfinite(self.std_rad) and 0.0 <= self.std_rad <= 0.5):
            raise ValueError(f"ExecutionNoise.std_rad must be in [0, 0.5] rad, got {self.std_rad!r}")
        if not (math.isfinite(self.correlation) and 0.0 <= self.correlation < 1.0):
            raise ValueError(f"ExecutionNoise.correlation must be in [0, 1), got {self.correlation!r}")
        unknown = [p for p in self.phases if p not in PHASES]
        if isinstance(self.phases, str) or unknown:
            raise ValueError(f"ExecutionNoise.phases must be expert phases from {PHASES}, got {self.phases!r}")


def noisy_execution(controller: Controller, noise: ExecutionNoise, rng: np.random.Generator,
                    period_s: float, phase: Callable[[], str] | None = None) -> Controller:
    """Wrap `controller` so that the trajectory sent to the arm is its joint targets plus an
    `ExecutionNoise` offset on the arm joints; the recorded action (`joint_targets`) stays the
    controller's. No offset is applied once the controller reports `done` (it holds its final
    pose), and a controller that sends its own trajectory is passed through unchanged.
    `phase` returns the expert's current phase (needed when `noise.phases` is set)."""
    if noise.phases and phase is None:
        raise ValueError(f"noise limited to phases {noise.phases} needs the expert's `phase`")
    arm = len(ARM_JOINT_NAMES)  # the gripper (last) is never perturbed
    offset = np.zeros(arm)  # [arm joints] rad
    innovation = math.sqrt(1.0 - noise.correlation**2) * noise.std_rad

    def control(obs: Observation) -> ControlStep:
        nonlocal offset
        step = controller(obs)
        if noise.std_rad == 0.0 or step.trajectory is not None or step.done:
            return step
        draw = rng.standard_normal(arm)  # drawn in every phase: the phases do not shift the stream
        noisy_phase = not noise.phases or phase() in noise.phases
        offset = noise.correlation * offset + (innovation * draw if noisy_phase else 0.0)
        executed = np.asarray(step.joint_targets, dtype=np.float64).copy()
        executed[:arm] += offset
        point = TrajectoryPoint(tuple(float(v) for v in executed), period_s)
        return ControlStep(step.joint_targets, step.reasoning, JointTrajectory(JOINT_NAMES, (point,)), step.done)

    return control
