"""`moe_vla_eval_sim`: closed-loop evaluation of a policy in the simulator, through the real policy node.

    moe_vla_eval_sim --episodes 20 --tasks reach,push --out build/eval/run1
    moe_vla_eval_sim --model models/default --max-duration 8 --no-gif

This process runs the simulator (SimNode: real time, /clock, cameras at the model's contract
size) and `EpisodeManager`, a small node that plays the lifecycle manager and records the
traffic. The policy node runs as a separate process (the installed `policy_node` executable,
config/policy.yaml + config/robots/sim_arm.yaml, use_sim_time, autostart off). It is
configured once; every episode then
  1. resets the scene to a held-out seed with the episode's task (the simulator publishes the
     instruction, latched) and waits until the policy node reports that instruction,
  2. activates the policy node (activation starts a fresh episode in the node),
  3. runs until the task has held for `success_confirm_s` or the time limit (simulated time),
  4. deactivates the node and waits for its hold command.
Recorded per episode: outcome, time, control steps, joint states, every commanded trajectory,
reasoning traces, expert usage per chunk, PolicyStatus latency, and for one episode (the first
success, else the first) the front camera. The scripted expert then runs on the same seeds and
tasks (no ROS); report.json, per-episode JSON and the figures go to the output folder
(moe_vla_ros/evaluation/sim/). DDS discovery is restricted to this machine: the evaluation
publishes joint commands, which no real controller on the network may receive.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.clock import Clock, ClockType
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.logging import LoggingSeverity
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory

from moe_vla_msgs.msg import ExpertUsage, PolicyStatus, ReasoningTrace
from moe_vla_ros.cli import run_tool
from moe_vla_ros.errors import BadInputError
from moe_vla_ros.evaluation.process import NodeProcess
from moe_vla_ros.evaluation.records import EvaluationError, TraceRecord, UsageRecord
from moe_vla_ros.evaluation.sim import records as rec
from moe_vla_ros.evaluation.sim.expert_baseline import run_expert_baseline
from moe_vla_ros.evaluation.sim.plots import GIF_FPS, write_plots
from moe_vla_ros.evaluation.sim.report import build_report, episode_line, format_table, write_report
from moe_vla_ros.ros import closed_loop_eval_config as conf
from moe_vla_ros.ros import qos
from moe_vla_ros.ros.contexts import release_context
from moe_vla_ros.ros.conversions import duration_to_seconds, image_msg_to_rgb, is_hold_trajectory, stamp_to_seconds
from moe_vla_ros.ros.domain import DomainLease, lease_domain
from moe_vla_ros.ros.sim_node import SimNode
from moe_vla_ros.runtime.manifest import ModelLoadError, read_manifest

POLL_S = 0.02
PROG = "moe_vla_eval_sim"


def _wait(condition: Callable[[], bool], timeout_s: float, what: str, alive: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if not alive():
            raise EvaluationError(f"the policy node process exited while waiting for {what}")
        if time.monotonic() > deadline:
            raise EvaluationError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(POLL_S)


@dataclass
class _Running:
    record: rec.EpisodeRecord
    end: rec.EpisodeTermination
    done: threading.Event = field(default_factory=threading.Event)


class EpisodeManager(Node):
    """Drives the policy node's lifecycle, ends episodes on success or time-out, records traffic."""

    def __init__(self, sim: SimNode, node_cfg, success_confirm_s: float, gif_camera_topic: str | None,
                 context: Context) -> None:
        super().__init__("episode_manager", context=context)
        self._sim, self._confirm_s = sim, success_confirm_s
        self._lock = threading.Lock()
        self._record: rec.EpisodeRecord | None = None
        self._running: _Running | None = None
        self._capture, self._last_frame_s = False, -1.0
        self.status_holds, self.status_label, self.status_count = 0, "", 0
        self.policy_instruction: str | None = None
        t = node_cfg.topics
        self._change_state = self.create_client(ChangeState, f"/{conf.POLICY_NODE_NAME}/change_state")
        self.create_subscription(JointTrajectory, t.trajectory, self._on_trajectory, qos.command_qos(depth=50))
        self.create_subscription(ExpertUsage, t.expert_usage, self._on_usage, qos.telemetry_qos(50))
        self.create_subscription(ReasoningTrace, t.reasoning_trace, self._on_trace, qos.telemetry_qos(50))
        self.create_subscription(PolicyStatus, t.status, self._on_status, qos.telemetry_qos(50))
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, qos.telemetry_qos(50))
        self.create_subscription(JointState, t.joint_states, self._on_joint_state, qos.sensor_qos("reliable", 50))
        if gif_camera_topic:
            self.create_subscription(Image, gif_camera_topic, self._on_image, qos.sensor_qos("best_effort", 2))
        self.create_timer(POLL_S, self._check_episode, clock=Clock(clock_type=ClockType.STEADY_TIME))

    # -- lifecycle (called from the evaluation thread while the executor spins) -------------------
    def change_state(self, transition_id: int, timeout_s: float, alive: Callable[[], bool]) -> bool:
        _wait(self._change_state.service_is_ready, timeout_s, "the policy node's change_state service", alive)
        request = ChangeState.Request()
        request.transition.id = transition_id
        future = self._change_state.call_async(request)
        _wait(future.done, timeout_s, f"lifecycle transition {transition_id}", alive)
        return bool(future.result().success)

    # -- episodes ---------------------------------------------------------------------------------
    def begin(self, record: rec.EpisodeRecord, t0: float, capture_frames: bool) -> _Running:
        """Record from now on and watch the task: the episode ends on a confirmed success or at its time limit."""
        record.start_s = t0
        running = _Running(record, rec.EpisodeTermination(t0, record.max_duration_s, self._confirm_s))
        with self._lock:
            self._record, self._running = record, running
            self._capture, self._last_frame_s = capture_frames, -1.0
        return running

    def stop_recording(self) -> rec.EpisodeRecord:
        with self._lock:
            record, self._record, self._running = self._record, None, None
            return record

    def _check_episode(self) -> None:
        with self._lock:
            running = self._running
        if running is not None and not running.done.is_set():
            if running.end.update(self._sim.sim_time, self._sim.task_success()):
                running.record.success, running.record.duration_s = running.end.success, running.end.duration_s
                shortfall = self._sim.task_shortfall_m()
                running.record.shortfall_m = shortfall if math.isfinite(shortfall) else None
                running.done.set()

    # -- recording --------------------------------------------------------------------------------
    def _on_trajectory(self, msg: JointTrajectory) -> None:
        with self._lock:
            if is_hold_trajectory(msg):
                return  # holds are counted by the node itself (PolicyStatus.hold_counts)
            if self._record is None:
                return
            self._record.trajectories.append(rec.TrajectoryRecord(
                received_s=self._sim.sim_time, start_s=stamp_to_seconds(msg.header.stamp),
                time_from_start=[duration_to_seconds(p.time_from_start) for p in msg.points],
                positions=[list(p.positions) for p in msg.points],
                velocities=[list(p.velocities) for p in msg.points]))

    def _on_usage(self, msg: ExpertUsage) -> None:
        layers = {layer.layer_name: [float(v) for v in layer.expert_load] for layer in msg.layers}
        with self._lock:
            if self._record is not None:
                self._record.usage.append(UsageRecord(stamp_to_seconds(msg.header.stamp), layers,
                                                      int(msg.chunk_id), self._sim.sim_time))

    def _on_trace(self, msg: ReasoningTrace) -> None:
        with self._lock:
            if self._record is not None:
                stamp = stamp_to_seconds(msg.header.stamp)
                self._record.traces.append(TraceRecord(stamp, msg.text, int(msg.chunk_id)))

    def _on_status(self, msg: PolicyStatus) -> None:
        s = msg.inference_latency
        with self._lock:
            self.status_holds = int(sum(msg.hold_counts))  # the node's own count, since activation
            self.status_label = msg.lifecycle_state.label
            self.status_count += 1
            if self._record is not None:
                self._record.model_id = msg.model_id
                self._record.latency.append(rec.LatencyRecord(
                    stamp_to_seconds(msg.header.stamp), int(s.count), s.mean_ms, s.p50_ms, s.p95_ms, s.max_ms))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith(f"{conf.POLICY_NODE_NAME}:"):
                for kv in status.values:
                    if kv.key == "instruction":
                        self.policy_instruction = kv.value

    def _on_joint_state(self, msg: JointState) -> None:
        with self._lock:
            if self._record is None:
                return
            by_name = dict(zip(msg.name, msg.position))
            self._record.joint_times.append(stamp_to_seconds(msg.header.stamp))
            self._record.joint_positions.append([float(by_name[n]) for n in self._record.joint_names])

    def _on_image(self, msg: Image) -> None:
        stamp = stamp_to_seconds(msg.header.stamp)
        with self._lock:
            if self._record is None or not self._capture or stamp < self._last_frame_s + 1.0 / GIF_FPS - 1e-6:
                return
            self._last_frame_s = stamp
            self._record.frames.append(image_msg_to_rgb(msg))


class _GraphThread(threading.Thread):
    """Creates the simulator and the episode manager, spins them and destroys them, all in this one
    thread: the simulator's OpenGL context belongs to the thread that created it."""

    def __init__(self, build: Callable[[], tuple[SimNode, EpisodeManager]], context: Context) -> None:
        super().__init__(name="eval_graph", daemon=True)
        self._build, self._context = build, context
        self.ready, self._stop_requested = threading.Event(), threading.Event()
        self.sim: SimNode | None = None
        self.manager: EpisodeManager | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        executor = SingleThreadedExecutor(context=self._context)
        try:
            self.sim, self.manager = self._build()
            executor.add_node(self.sim)
            executor.add_node(self.manager)
            self.ready.set()
            while not self._stop_requested.is_set():
                executor.spin_once(timeout_sec=0.05)
        except BaseException as e:
            self.error = e
        finally:
            self.ready.set()
            for node in (self.manager, self.sim):
                if node is not None:
                    node.destroy_node()
            executor.shutdown()

    def stop(self) -> None:
        self._stop_requested.set()
        self.join(timeout=10.0)


class ClosedLoopEvaluator:
    """Simulator + episode manager in this process, the policy node in its own; a context manager."""

    def __init__(self, cfg: conf.EvalConfig, model_dir: Path, out_dir: Path) -> None:
        self.cfg, self.model_dir, self.out_dir = cfg, model_dir, out_dir
        try:
            self.contract = read_manifest(model_dir, verify_checksums=False).contract
        except ModelLoadError as e:
            raise EvaluationError(f"cannot read the model in {model_dir}: {e}") from None
        conf.check_contract_for_sim(self.contract)
        self.node_cfg = conf.policy_node_config(cfg, model_dir, self.contract)
        self.argv = conf.policy_node_command(cfg, model_dir, self.contract)
        self.limits = conf.seam_limits(self.node_cfg, self.contract)
        self.policy: NodeProcess | None = None
        self._graph: _GraphThread | None = None
        self._lease: DomainLease | None = None
        self._saved_domain: str | None = None
        self.domain_id: int | None = None

    def _build_graph(self) -> tuple[SimNode, EpisodeManager]:
        params = conf.sim_parameters(self.contract, self.node_cfg, self.cfg.seed_start)
        rclpy.logging.set_logger_level("sim_node", LoggingSeverity.WARN)  # one line per episode is ours
        sim = SimNode(context=self.context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        cameras = self.contract.sensors.camera_names
        gif_camera = "front" if "front" in cameras else cameras[0]
        gif_topic = self.node_cfg.topics.camera_topics[cameras.index(gif_camera)] if self.cfg.gif else None
        return sim, EpisodeManager(sim, self.node_cfg, self.cfg.success_confirm_s, gif_topic, self.context)

    def __enter__(self) -> ClosedLoopEvaluator:
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # see the module docstring
        os.environ.pop("ROS_STATIC_PEERS", None)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.cfg.domain_id is None:
            try:
                self._lease = lease_domain()
            except RuntimeError as e:
                raise EvaluationError(str(e)) from None
        self.domain_id = self.cfg.domain_id if self._lease is None else self._lease.domain_id
        self._saved_domain = os.environ.get("ROS_DOMAIN_ID")
        os.environ["ROS_DOMAIN_ID"] = str(self.domain_id)  # the policy node process inherits it
        self.context = Context()
        try:
            rclpy.init(context=self.context, domain_id=self.domain_id)
        except BaseException:
            self._release_domain()
            raise
        try:
            self._graph = _GraphThread(self._build_graph, self.context)
            self._graph.start()
            self._graph.ready.wait()
            if self._graph.error is not None:
                raise EvaluationError(f"cannot start the simulator: {self._graph.error}") from self._graph.error
            self.sim, self.manager = self._graph.sim, self._graph.manager
            self.policy = NodeProcess(self.argv, self.out_dir / "policy_node.log")
            self._configure()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _alive(self) -> bool:
        if self._graph.error is not None:
            raise EvaluationError(f"the simulator stopped: {self._graph.error!r}") from self._graph.error
        return self.policy.alive()

    def _configure(self) -> None:
        timeout, m, t = self.cfg.startup_timeout_s, self.manager, self.node_cfg.topics
        try:
            ok = m.change_state(Transition.TRANSITION_CONFIGURE, timeout, self._alive)
        except EvaluationError as e:
            raise EvaluationError(f"{e}; policy node log:\n{self.policy.log_tail()}") from None
        if not ok:
            raise EvaluationError(f"the policy node failed to configure; its log:\n{self.policy.log_tail()}")
        _wait(lambda: m.count_publishers(t.trajectory) >= 1 and m.count_subscribers(t.joint_states) >= 2,
              timeout, "the policy node's topics", self._alive)

    def run_episode(self, plan: rec.EpisodePlan, capture_frames: bool) -> rec.EpisodeRecord:
        """One episode (see the module docstring); returns its record."""
        m, alive, wall0 = self.manager, self._alive, time.monotonic()
        record = rec.EpisodeRecord.for_plan(plan)
        record.joint_names = list(self.contract.sensors.joint_names)
        self.sim.reset_episode(plan.seed, plan.task)
        refused0, controller_holds0 = self.sim.commands_rejected, self.sim.controller_holds
        holds0 = m.status_holds
        _wait(lambda: m.policy_instruction == plan.task.instruction, 15.0, "the instruction at the policy node", alive)
        running = m.begin(record, self.sim.sim_time, capture_frames)
        if not m.change_state(Transition.TRANSITION_ACTIVATE, 30.0, alive):
            raise EvaluationError(f"the policy node failed to activate; its log:\n{self.policy.log_tail()}")
        # Wall-clock guard: the simulator may run slower than real time on a loaded machine.
        _wait(running.done.is_set, 60.0 + 5.0 * plan.task.max_duration_s, f"episode {plan.index} to end", alive)
        if not m.change_state(Transition.TRANSITION_DEACTIVATE, 30.0, alive):
            raise EvaluationError(f"the policy node failed to deactivate; its log:\n{self.policy.log_tail()}")
        # on_deactivate published the hold (when the node was commanding) before it returned; a
        # status published after it counts that hold (PolicyStatus.hold_counts).
        statuses = m.status_count
        _wait(lambda: m.status_count > statuses + 1 and m.status_label == "inactive", 10.0,
              "the node's status after deactivation", alive)
        record = m.stop_recording()
        record.holds = m.status_holds - holds0
        # what joint_trajectory_controller (the simulator follows its rules) refused or stopped
        record.commands_refused = self.sim.commands_rejected - refused0
        record.controller_holds = self.sim.controller_holds - controller_holds0
        record.control_steps = round(record.duration_s * self.contract.sensors.control_rate_hz)
        record.wall_time_s = time.monotonic() - wall0
        return record

    def __exit__(self, *exc) -> None:
        try:
            if self.policy is not None:
                self.policy.stop()
            if self._graph is not None:
                self._graph.stop()
            release_context(self.context)
        finally:
            self._release_domain()

    def _release_domain(self) -> None:
        """Give the leased domain back and restore this process's ROS_DOMAIN_ID."""
        if self._saved_domain is None:
            os.environ.pop("ROS_DOMAIN_ID", None)
        else:
            os.environ["ROS_DOMAIN_ID"] = self._saved_domain
        if self._lease is not None:
            self._lease.close()


@dataclass
class EvaluationResult:
    report: dict
    records: list[rec.EpisodeRecord]
    expert: list[rec.ExpertResult]
    paths: dict[str, Path]
    out_dir: Path


def _progress(iterable, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, unit="episode", file=sys.stderr, disable=not enabled, dynamic_ncols=True)


def run_evaluation(cfg: conf.EvalConfig) -> EvaluationResult:
    """Run every episode through the policy node, the expert baseline, and write report + figures."""
    model_dir, out_dir = cfg.model_dir(), cfg.output_dir()
    plans = rec.plan_sim_episodes(cfg.episodes, cfg.tasks, cfg.seed_start, cfg.max_duration_s)
    records: list[rec.EpisodeRecord] = []
    showcase: rec.EpisodeRecord | None = None
    wall0 = time.monotonic()
    with ClosedLoopEvaluator(cfg, model_dir, out_dir) as evaluator:
        domain_id = evaluator.domain_id
        if cfg.progress:
            print(f"evaluation graph on ROS domain {domain_id} (localhost only)", file=sys.stderr)
        bar = _progress(plans, cfg.progress, "policy")
        for plan in bar:
            record = evaluator.run_episode(plan, cfg.gif and (showcase is None or not showcase.success))
            records.append(record)
            showcase = rec.keep_showcase(showcase, record)
            if cfg.progress:
                bar.write(episode_line(record, len(plans)))
        achieved_rtf = evaluator.sim.achieved_real_time_factor
        limits, contract = evaluator.limits, evaluator.contract
    policy_wall_s = time.monotonic() - wall0
    expert = []
    if cfg.expert_baseline:
        hold_steps = max(1, round(cfg.success_confirm_s * contract.sensors.control_rate_hz))
        expert = run_expert_baseline(plans, contract.sensors.control_rate_hz, hold_steps,
                                     _progress(plans, cfg.progress, "expert"))
    run_info = {
        "model_dir": str(model_dir), "model_id": next((r.model_id for r in records if r.model_id), ""),
        "episodes": cfg.episodes, "tasks": list(cfg.tasks), "seeds": [p.seed for p in plans],
        "max_duration_s": {p.family: p.task.max_duration_s for p in plans},
        "success_confirm_s": cfg.success_confirm_s, "achieved_real_time_factor": achieved_rtf,
        "policy_wall_time_s": policy_wall_s, "policy_log": str(out_dir / "policy_node.log"),
        "showcase_episode": showcase.index if showcase else None, "ros_domain_id": domain_id,
    }
    report = build_report(records, expert, limits, run_info, contract.sensors.control_period_s)
    paths = write_plots(report, showcase, out_dir, gif=cfg.gif)
    report["files"] = {k: str(v) for k, v in paths.items()}
    paths.update(write_report(report, records, out_dir))
    return EvaluationResult(report, records, expert, paths, out_dir)


def run_and_print(cfg: conf.EvalConfig) -> int:
    """Run, print the table and where the files are (EvaluationError when it cannot finish)."""
    result = run_evaluation(cfg)
    print(format_table(result.report))
    print(f"report: {result.paths['report']}")
    print("figures: " + ", ".join(str(p) for k, p in result.paths.items() if p.suffix in (".png", ".gif")))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``moe_vla_eval_sim``: exit 0 evaluated, 2 bad arguments or model folder, 1 the evaluation
    failed, 130 interrupted; errors on stderr as 'moe_vla_eval_sim: error: ...'."""
    return run_tool(PROG, lambda: _run(sys.argv[1:] if argv is None else argv))


def _run(argv: list[str]) -> int:
    args = conf.build_parser(__doc__, PROG).parse_args(argv)
    try:
        cfg = conf.config_from_args(args)
    except EvaluationError as e:  # the configuration names the bad value
        raise BadInputError(str(e)) from e
    return run_and_print(cfg)


if __name__ == "__main__":
    sys.exit(main())
