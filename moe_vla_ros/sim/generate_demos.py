"""Generate demonstration datasets with the scripted expert in the MuJoCo sim.

Command line (also `python -m moe_vla_ros.sim.generate_demos`)::

    moe_vla_generate_demos --out data/demos --episodes 100 --seed 0 --tasks reach,push \\
        --image-size 96 --cameras front,wrist --control-rate 10 --workers 2

Episodes cycle through the task families (reach, push, reach, push, ...); cube layout, target
color, push direction and instruction paraphrase are drawn from the seed, so the same
arguments produce the same dataset. Images are rendered at the contract's size; each step
records the joint positions, the commanded target (action), the expert's reasoning trace.
With `--execution-noise RAD` the executed arm targets carry a smooth random offset (DART) while
the recorded action stays the expert's: the dataset then also shows corrections back to the
nominal path, which a policy needs once its own small errors take it off that path.
Each episode draws its noise from a stream of its own ((seed, 1, episode index)), so `--workers N`
(N simulator processes, episodes written in order) writes the same dataset as one process.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moe_vla_ros.cli import add_output_argument, add_progress_argument, bad_input, run_tool, tool_parser
from moe_vla_ros.data.dataset import DatasetWriter, Episode
from moe_vla_ros.sim.arm_sim import ArmSim, sensor_contract_for
from moe_vla_ros.sim.config import CAMERA_NAMES, SimConfig
from moe_vla_ros.sim.expert import APPROACH_PHASES, PHASES, ScriptedExpert
from moe_vla_ros.sim.reasoning_templates import reasoning_vocabulary
from moe_vla_ros.sim.rollout import ExecutionNoise, expert_controller, noisy_execution, run_episode
from moe_vla_ros.sim.tasks import TASK_FAMILIES, Task, instruction_words, sample_task


@dataclass(frozen=True)
class DemoConfig:
    """What to generate.

    Attributes:
        episodes: number of episodes to run (failed ones are written only with keep_failures).
        seed: master seed; episode i uses a layout and task derived from it.
        tasks: task families to cycle through (see tasks.TASK_FAMILIES).
        image_size: square image size in pixels (the sensor contract's height and width).
        cameras: cameras to record, in contract order.
        control_rate_hz: dataset step rate (the sensor contract's control rate).
        keep_failures: also write episodes in which the expert failed (success=False).
        execution_noise_rad: standard deviation (rad) of the smooth offset added to the executed
            arm targets (see rollout.ExecutionNoise); the recorded actions stay the expert's.
            0 = plain demonstrations.
        execution_noise_phases: the expert phases that get new noise (expert.PHASES; e.g.
            expert.APPROACH_PHASES: noisy approaches, clean pushes and lifts); empty: all.
        workers: simulator processes running episodes in parallel (1: in this process); the
            dataset does not depend on it.
        progress: show a tqdm progress bar on stderr.
    """

    episodes: int = 100
    seed: int = 0
    tasks: tuple[str, ...] = ("reach", "push")
    image_size: int = 96
    cameras: tuple[str, ...] = ("front", "wrist")
    control_rate_hz: float = 10.0
    keep_failures: bool = False
    execution_noise_rad: float = 0.0
    execution_noise_phases: tuple[str, ...] = ()
    workers: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        if int(self.episodes) != self.episodes or self.episodes < 1:
            raise ValueError(f"episodes must be a positive integer, got {self.episodes!r}")
        if int(self.seed) != self.seed or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if isinstance(self.workers, bool) or int(self.workers) != self.workers or self.workers < 1:
            raise ValueError(f"workers must be a positive integer, got {self.workers!r}")
        for name, values, allowed in (("tasks", self.tasks, TASK_FAMILIES), ("cameras", self.cameras, CAMERA_NAMES)):
            if isinstance(values, str) or not values or any(v not in allowed for v in values):
                raise ValueError(f"{name} must be a non-empty list of names from {allowed}, got {values!r}")
            object.__setattr__(self, name, tuple(values))
        if not (math.isfinite(self.control_rate_hz) and self.control_rate_hz > 0):
            raise ValueError(f"control_rate_hz must be positive, got {self.control_rate_hz!r}")
        object.__setattr__(self, "execution_noise_phases", tuple(self.execution_noise_phases))
        self.execution_noise()  # validates execution_noise_rad and _phases

    def execution_noise(self) -> ExecutionNoise:
        return ExecutionNoise(std_rad=self.execution_noise_rad, phases=self.execution_noise_phases)

    def sim_config(self) -> SimConfig:
        return SimConfig(
            seed=self.seed,
            image_height=self.image_size,
            image_width=self.image_size,
            camera_names=self.cameras,
            control_rate_hz=self.control_rate_hz,
        )


@dataclass(frozen=True)
class EpisodePlan:
    """What episode `index` runs: the scene (simulator reset seed) and the task, drawn up front."""

    index: int
    scene_seed: int
    task: Task


def episode_plans(cfg: DemoConfig) -> list[EpisodePlan]:
    """Every episode's scene and task, drawn in order from the master seed (families cycle)."""
    rng = np.random.default_rng(cfg.seed)
    plans = []
    for i in range(cfg.episodes):
        scene_seed = int(rng.integers(2**31 - 1))
        plans.append(EpisodePlan(i, scene_seed, sample_task(cfg.tasks[i % len(cfg.tasks)], rng)))
    return plans


@dataclass(frozen=True)
class EpisodeOutcome:
    family: str
    success: bool
    sim_duration_s: float
    steps: int
    episode: Episode | None  # None when the episode is not written (a failure without keep_failures)


class EpisodeRunner:
    """One simulator + scripted expert that runs planned episodes (one per process)."""

    def __init__(self, cfg: DemoConfig) -> None:
        self.cfg = cfg
        self.sim = ArmSim(cfg.sim_config())
        self.expert = ScriptedExpert(self.sim)

    def __call__(self, plan: EpisodePlan) -> EpisodeOutcome:
        cfg, sim, expert = self.cfg, self.sim, self.expert
        sim.reset(plan.scene_seed)
        expert.reset(plan.task)
        controller = expert_controller(expert)
        if cfg.execution_noise_rad > 0:
            noise_rng = np.random.default_rng([cfg.seed, 1, plan.index])  # this episode's own stream
            controller = noisy_execution(controller, cfg.execution_noise(), noise_rng, sim.config.control_period_s,
                                         phase=lambda: expert.phase)
        result = run_episode(sim, plan.task, controller)
        keep = result.success or cfg.keep_failures
        return EpisodeOutcome(plan.task.family, result.success, result.sim_duration_s, result.steps,
                              result.episode if keep else None)

    def close(self) -> None:
        self.sim.close()


_WORKER_RUNNER: EpisodeRunner | None = None  # the runner of a worker process


def _start_worker(cfg: DemoConfig) -> None:
    global _WORKER_RUNNER
    _WORKER_RUNNER = EpisodeRunner(cfg)


def _run_in_worker(plan: EpisodePlan) -> EpisodeOutcome:
    return _WORKER_RUNNER(plan)


def _outcomes(cfg: DemoConfig, plans: list[EpisodePlan]):
    """Each plan's outcome, in plan order: from a runner in this process or from `cfg.workers` worker processes."""
    if cfg.workers == 1:
        runner = EpisodeRunner(cfg)
        try:
            yield from map(runner, plans)
        finally:
            runner.close()
        return
    context = multiprocessing.get_context("spawn")  # no simulator or renderer state crosses a fork
    with context.Pool(cfg.workers, initializer=_start_worker, initargs=(cfg,)) as pool:
        yield from pool.imap(_run_in_worker, plans)


def generate_demos(out_dir: str | Path, cfg: DemoConfig) -> dict:
    """Run the expert for `cfg.episodes` episodes and write a dataset to `out_dir` (which
    must not hold a dataset yet). Returns a summary: episodes run and written, steps, success
    rate per task family, wall time, simulated time."""
    contract = sensor_contract_for(cfg.sim_config())  # validates sizes, rate and cameras before anything is written
    plans = episode_plans(cfg)
    runs = dict.fromkeys(cfg.tasks, 0)
    successes = dict.fromkeys(cfg.tasks, 0)
    written = steps = 0
    sim_seconds = 0.0
    start = time.perf_counter()
    source = "moe_vla_ros.sim expert"
    if cfg.execution_noise_rad > 0:
        source += f", execution noise {cfg.execution_noise_rad} rad"
        if cfg.execution_noise_phases:
            source += f" in phases {','.join(cfg.execution_noise_phases)}"
    vocabulary = [*instruction_words(cfg.tasks), *reasoning_vocabulary()]  # words a sample may miss
    with DatasetWriter(out_dir, contract, source=source, vocabulary=vocabulary) as writer:
        for outcome in _progress(_outcomes(cfg, plans), cfg.progress, total=len(plans)):
            runs[outcome.family] += 1
            successes[outcome.family] += int(outcome.success)
            sim_seconds += outcome.sim_duration_s
            if outcome.episode is not None:
                writer.add_episode(outcome.episode)
                written += 1
                steps += outcome.steps
    wall = time.perf_counter() - start
    return {
        "out_dir": str(out_dir),
        "episodes_run": cfg.episodes,
        "episodes_written": written,
        "steps_written": steps,
        "success_rate": {f: successes[f] / runs[f] for f in cfg.tasks if runs[f]},
        "episodes_per_task": dict(runs),
        "wall_time_s": wall,
        "sim_time_s": sim_seconds,
    }


def _progress(iterable, enabled: bool, total: int | None = None):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc="demos", unit="episode", file=sys.stderr, total=total)


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _phases(text: str) -> tuple[str, ...]:
    """--noise-phases: expert phase names; "approaches" stands for expert.APPROACH_PHASES."""
    names = _names(text)
    return tuple(dict.fromkeys(p for name in names for p in (APPROACH_PHASES if name == "approaches" else (name,))))


PROG = "moe_vla_generate_demos"


def build_parser() -> argparse.ArgumentParser:
    p = tool_parser(PROG, __doc__)
    add_output_argument(p, "new dataset folder (must not hold a dataset)")
    p.add_argument("--episodes", type=int, default=100, help="episodes to run (default 100)")
    p.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    p.add_argument("--tasks", type=_names, default=("reach", "push"),
                   help=f"comma-separated task families from {','.join(TASK_FAMILIES)} (default reach,push)")
    p.add_argument("--image-size", type=int, default=96, help="square image size in pixels (default 96)")
    p.add_argument("--cameras", type=_names, default=("front", "wrist"),
                   help=f"comma-separated cameras from {','.join(CAMERA_NAMES)} (default front,wrist)")
    p.add_argument("--control-rate", type=float, default=10.0, help="control/dataset rate in Hz (default 10)")
    p.add_argument("--keep-failures", action="store_true", help="also write failed episodes")
    p.add_argument("--execution-noise", type=float, default=0.0, metavar="RAD",
                   help="std of a smooth offset on the executed arm targets; recorded actions stay "
                        "the expert's (noise-injected demonstrations; default 0: none)")
    p.add_argument("--noise-phases", type=_phases, default=(),
                   help=f"comma-separated expert phases that get new noise, from {','.join(PHASES)}, or "
                        f"'approaches' for {','.join(APPROACH_PHASES)} (default: every phase)")
    p.add_argument("--workers", type=int, default=1,
                   help="simulator processes running episodes in parallel; the dataset is the same "
                        "for any number (default 1)")
    add_progress_argument(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 written, 2 bad arguments or an output folder that holds a dataset, 1 failed."""
    return run_tool(PROG, lambda: _run(argv))


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    with bad_input():  # DemoConfig / SimConfig validation
        cfg = DemoConfig(
            episodes=args.episodes,
            seed=args.seed,
            tasks=args.tasks,
            image_size=args.image_size,
            cameras=args.cameras,
            control_rate_hz=args.control_rate,
            keep_failures=args.keep_failures,
            execution_noise_rad=args.execution_noise,
            execution_noise_phases=args.noise_phases,
            workers=args.workers,
            progress=args.progress,
        )
        cfg.sim_config()
    summary = generate_demos(args.out, cfg)  # DatasetError (bad input) when --out holds a dataset
    rates = ", ".join(
        f"{family} {rate:.0%} ({summary['episodes_per_task'][family]})" for family, rate in summary["success_rate"].items()
    )
    print(
        f"wrote {summary['episodes_written']}/{summary['episodes_run']} episodes "
        f"({summary['steps_written']} steps) to {summary['out_dir']} in {summary['wall_time_s']:.1f} s "
        f"({summary['sim_time_s'] / summary['wall_time_s']:.1f}x real time); success: {rates}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
