"""Configuration of the closed-loop evaluation (`moe_vla_eval_sim`, `moe_vla_demo`).

Pure (no rclpy): the settings dataclass and its command line, and what follows from it and the model's contract:
the policy node's command line (a separate process, driven through its lifecycle), the
simulator's parameters (cameras at the contract's image size, the policy's topic names) and
the seam limits (one control period of the robot's velocity / acceleration limits).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moe_vla_ros.cli import add_output_argument, add_progress_argument, tool_parser
from moe_vla_ros.contract import PolicyContract
from moe_vla_ros.evaluation.records import EvaluationError
from moe_vla_ros.evaluation.seams import SeamLimits
from moe_vla_ros.evaluation.sim.records import DEFAULT_SEED_START
from moe_vla_ros.paths import bundled_model_dir, find_share_file
from moe_vla_ros.ros.domain import EVALUATION_DOMAINS, MAX_DOMAIN_ID
from moe_vla_ros.sim.config import CAMERA_NAMES, JOINT_NAMES
from moe_vla_ros.sim.tasks import TASK_FAMILIES
from moe_vla_ros.spec.policy_node import NODE_NAME, NodeConfigError, NodeInvocation, PolicyNodeConfig

POLICY_NODE_NAME = NODE_NAME


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and how.

    Attributes:
        model: exported model folder ("" = the bundled model, models/default).
        episodes: number of policy episodes (and expert episodes on the same seeds).
        tasks: task families, cycled through episode by episode (reach, push, lift).
        seed_start: scene seed of episode 0; episode i uses seed_start + i (held-out scenes).
        out_dir: output folder ("" = build/eval/<timestamp> under the working directory).
        max_duration_s: time limit of every episode in simulated seconds (None = the task's own).
        success_confirm_s: the task must hold this long (simulated seconds) to count as a success.
        gif: record one episode's front camera and write a GIF of it.
        expert_baseline: also run the scripted expert on the same seeds and tasks.
        policy_config: the policy node's generic parameters ("" = config/policy.yaml).
        robot_config: the robot's parameters ("" = config/robots/sim_arm.yaml).
        policy_overrides: extra policy node parameters, "name:=value" each (YAML values).
        startup_timeout_s: wall seconds for the policy node to come up and configure.
        domain_id: ROS domain of the evaluation's graph (simulator, episode manager, policy node).
            None: a free one of its own (ros/domain.py), so that evaluations running at once and
            a robot's own stack on this machine never see each other's topics; set one to
            watch the evaluation (rviz, ros2 topic echo with the same ROS_DOMAIN_ID).
        progress: show a progress bar and one line per episode on stderr.
    """

    model: str = ""
    episodes: int = 6
    tasks: tuple[str, ...] = ("reach", "push", "lift")  # what the bundled model does
    seed_start: int = DEFAULT_SEED_START
    out_dir: str = ""
    max_duration_s: float | None = None
    success_confirm_s: float = 0.3
    gif: bool = True
    expert_baseline: bool = True
    policy_config: str = ""
    robot_config: str = ""
    policy_overrides: tuple[str, ...] = ()
    startup_timeout_s: float = 120.0
    domain_id: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        tasks = (self.tasks,) if isinstance(self.tasks, str) else tuple(self.tasks)
        if not tasks or any(t not in TASK_FAMILIES for t in tasks):
            raise EvaluationError(f"tasks must be names from {list(TASK_FAMILIES)}, got {list(tasks)}")
        object.__setattr__(self, "tasks", tasks)
        if isinstance(self.episodes, bool) or int(self.episodes) != self.episodes or not 1 <= self.episodes <= 10_000:
            raise EvaluationError(f"episodes must be an integer in [1, 10000], got {self.episodes!r}")
        if int(self.seed_start) != self.seed_start or not 0 <= self.seed_start < 2**31 - 1 - self.episodes:
            raise EvaluationError(f"seed_start must be an integer in [0, 2^31 - 1 - episodes], got {self.seed_start!r}")
        limit = self.max_duration_s
        if limit is not None and not (math.isfinite(limit) and 0.5 <= limit <= 120):
            raise EvaluationError(f"max_duration_s must be in [0.5, 120] s, got {self.max_duration_s!r}")
        if not (math.isfinite(self.success_confirm_s) and 0.0 <= self.success_confirm_s <= 5.0):
            raise EvaluationError(f"success_confirm_s must be in [0, 5] s, got {self.success_confirm_s!r}")
        if not (math.isfinite(self.startup_timeout_s) and self.startup_timeout_s > 0):
            raise EvaluationError(f"startup_timeout_s must be > 0, got {self.startup_timeout_s!r}")
        domain = self.domain_id
        if domain is not None and (isinstance(domain, bool) or int(domain) != domain or not 0 <= domain <= MAX_DOMAIN_ID):
            raise EvaluationError(f"domain_id must be an integer in [0, {MAX_DOMAIN_ID}] or None, got {domain!r}")
        overrides = tuple(self.policy_overrides)
        bad = [o for o in overrides if ":=" not in o or not o.split(":=", 1)[0].strip()]
        if bad:
            raise EvaluationError(f"policy_overrides must be 'name:=value', got {bad}")  # before the spec's own check
        object.__setattr__(self, "policy_overrides", overrides)

    def model_dir(self) -> Path:
        """The model folder (the bundled one when `model` is empty)."""
        if self.model:
            path = Path(self.model).expanduser().resolve()
        else:
            try:
                path = bundled_model_dir()
            except FileNotFoundError as e:
                raise EvaluationError(f"no bundled model ({e}); pass a model folder (--model DIR)") from None
        if not path.is_dir():
            raise EvaluationError(f"model folder {path} does not exist")
        return path

    def output_dir(self) -> Path:
        if self.out_dir:
            return Path(self.out_dir).expanduser().resolve()
        return (Path("build") / "eval" / time.strftime("%Y%m%d-%H%M%S")).resolve()

    def parameter_files(self) -> tuple[Path, Path]:
        """(generic policy parameters, robot parameters)."""
        try:
            policy = Path(self.policy_config) if self.policy_config else find_share_file("config", "policy.yaml")
            robot = Path(self.robot_config) if self.robot_config else find_share_file("config", "robots", "sim_arm.yaml")
        except FileNotFoundError as e:
            raise EvaluationError(str(e)) from None
        for path in (policy, robot):
            if not path.is_file():
                raise EvaluationError(f"parameter file {path} does not exist")
        return policy, robot


def camera_topic(camera: str) -> str:
    return f"/camera/{camera}/image_raw"


def check_contract_for_sim(contract: PolicyContract) -> None:
    """The simulated arm must be able to serve the model: its joints, known camera names."""
    sensors = contract.sensors
    if sensors.joint_names != JOINT_NAMES:
        raise EvaluationError(f"the model commands joints {list(sensors.joint_names)}; the simulated arm has "
                              f"{list(JOINT_NAMES)}")
    unknown = [c for c in sensors.camera_names if c not in CAMERA_NAMES]
    if unknown:
        raise EvaluationError(f"the model reads cameras {unknown}; the simulator has {list(CAMERA_NAMES)}")


def _fixed_policy_parameters(model_dir: Path, contract: PolicyContract) -> dict[str, Any]:
    cameras = list(contract.sensors.camera_names)
    return {
        "use_sim_time": True,
        "autostart": False,  # the evaluator drives the lifecycle
        "model.path": str(model_dir),
        "model.providers": ["CPUExecutionProvider"],
        "qos.instruction_durability": "transient_local",  # the simulator latches the instruction
        "execution.status_rate_hz": 10.0,
        "robot.camera_names": cameras,
        "topics.camera_topics": [camera_topic(c) for c in cameras],
    }


def policy_node_invocation(cfg: EvalConfig, model_dir: Path, contract: PolicyContract) -> NodeInvocation:
    """The policy node's parameters: the config files, the values the evaluation fixes, then the
    user's overrides (later wins)."""
    return NodeInvocation(cfg.parameter_files(), _fixed_policy_parameters(model_dir, contract), cfg.policy_overrides)


def policy_node_config(cfg: EvalConfig, model_dir: Path, contract: PolicyContract) -> PolicyNodeConfig:
    """The policy node's configuration as the process will see it (files, fixed values, overrides)."""
    try:
        return policy_node_invocation(cfg, model_dir, contract).config()
    except NodeConfigError as e:
        raise EvaluationError(f"invalid policy node parameters: {e}") from None


def policy_node_command(cfg: EvalConfig, model_dir: Path, contract: PolicyContract) -> list[str]:
    """argv of the policy node process: the venv's `policy_node` executable with --ros-args."""
    executable = Path(sys.executable).with_name("policy_node")
    if not executable.is_file():
        raise EvaluationError(f"policy_node executable not found next to {sys.executable} (install the package)")
    return policy_node_invocation(cfg, model_dir, contract).command(executable)


def sim_parameters(contract: PolicyContract, node: PolicyNodeConfig, seed: int) -> dict[str, Any]:
    """SimNode parameters: real time, /clock, the contract's cameras and image size, the policy's topics."""
    sensors = contract.sensors
    return {
        "seed": int(seed),
        "real_time_factor": 1.0,
        "publish_clock": True,
        "cameras.names": list(sensors.camera_names),
        "cameras.frame_ids": [f"{c}_camera_optical_frame" for c in sensors.camera_names],
        "cameras.image_height": sensors.image_height,
        "cameras.image_width": sensors.image_width,
        "topics.camera_topics": list(node.topics.camera_topics),
        "topics.joint_states": node.topics.joint_states,
        "topics.trajectory": node.topics.trajectory,
        "topics.instruction": node.topics.instruction,
    }


def seam_limits(node: PolicyNodeConfig, contract: PolicyContract) -> SeamLimits | None:
    """Velocity / acceleration limits of the robot parameters over one control period (None if unset)."""
    robot = node.robot
    if not robot.max_velocity or not robot.max_acceleration:
        return None
    return SeamLimits(tuple(robot.max_velocity), tuple(robot.max_acceleration), contract.sensors.control_period_s)


def build_parser(doc: str | None = None, prog: str = "moe_vla_eval_sim") -> argparse.ArgumentParser:
    """Command-line options of `moe_vla_eval_sim` (one per EvalConfig field that users set)."""
    d = EvalConfig()
    p = tool_parser(prog, doc)
    p.add_argument("--model", default="", help="exported model folder (default: the bundled model)")
    p.add_argument("--episodes", type=int, default=d.episodes, help=f"policy episodes (default {d.episodes})")
    p.add_argument("--tasks", default=",".join(d.tasks), help=f"task families, comma-separated (default {','.join(d.tasks)})")
    p.add_argument("--seed-start", type=int, default=d.seed_start,
                   help=f"scene seed of episode 0 (default {d.seed_start})")
    add_output_argument(p, "output folder (default build/eval/<timestamp>)", required=False)
    p.add_argument("--max-duration", type=float, default=None,
                   help="time limit per episode [sim s] (default: the task's)")
    p.add_argument("--success-confirm", type=float, default=d.success_confirm_s, help="success must hold this long [s]")
    p.add_argument("--no-gif", action="store_true", help="do not record camera frames / write the GIF")
    p.add_argument("--no-expert", action="store_true", help="skip the scripted expert baseline")
    p.add_argument("--policy-param", action="append", default=[], metavar="NAME:=VALUE",
                   help="extra policy node parameter (repeatable)")
    p.add_argument("--domain-id", type=int, default=None,
                   help="ROS domain of the evaluation's graph, e.g. to watch it (default: a free one of its own, "
                        f"{EVALUATION_DOMAINS.start}-{EVALUATION_DOMAINS.stop - 1})")
    add_progress_argument(p)
    return p


def parse_tasks(text: str) -> tuple[str, ...]:
    """--tasks "reach, push" -> ("reach", "push") (EvalConfig checks the names)."""
    return tuple(t.strip() for t in text.split(",") if t.strip())


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    return EvalConfig(
        model=args.model, episodes=args.episodes, tasks=parse_tasks(args.tasks),
        seed_start=args.seed_start, out_dir=str(args.out or ""), max_duration_s=args.max_duration,
        success_confirm_s=args.success_confirm, gif=not args.no_gif, expert_baseline=not args.no_expert,
        policy_overrides=tuple(args.policy_param), domain_id=args.domain_id, progress=args.progress,
    )
