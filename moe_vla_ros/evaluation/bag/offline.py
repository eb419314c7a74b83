"""Offline open-loop evaluation of a policy on a recorded bag, deciding exactly as the node would.

`evaluate_bag()` replays the bag's camera images, joint states and instructions, in receive
order and on the bag's clock, into the node's own logic (control/policy_runner.PolicyRunner,
built from the node's parameters: approximate-time pairing, stale-input watchdog, refill
threshold, chunk merging with blending and the safety filter). The inference loop is polled
every `poll_period_s` like the node's timer; with `simulate_latency` (the default) an inference
started at t delivers its chunk at t + latency (the policy's measured latency, or
`fixed_latency_s`) and the loop is busy meanwhile, so the next inference only sees observations
received by then, as the node would. The published trajectories, traces and expert usage are
then scored against the bag's recorded actions (evaluation/bag/metrics.py, evaluation/seams.py)
and written as a report (JSON + PNG plots, evaluation/bag/report.py).

Bad bags are refused before anything is written: missing topics, joints that do not match the
model's contract, unreadable storage (validate_bag, BagError). Images of any size are resized
to the contract's, as the node does.

``moe_vla_eval_bag BAG [BAG ...] --model DIR -o DIR [--camera NAME=TOPIC] [--no-simulate-latency]
[--executor local|ray] [--ray-address ADDRESS] [--ray-num-cpus N]``

One bag: the report goes into DIR. Several bags (a fleet's): one report per bag in DIR/<bag name>/,
on this machine one after the other or as Ray tasks (moe_vla_ros/fanout.py), and a fleet summary
(DIR/fleet_summary.json, printed as a table: per bag ok/failed with its error, action MAE,
commands, holds, seams); a bag that fails is reported without stopping the others, and the exit
code is then 1.

Pure: no rclpy (the model runs with ONNX Runtime on CPU by default).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from moe_vla_ros import fanout
from moe_vla_ros.bags import demo_streams as ds
from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.reader import BagMessage, BagReader
from moe_vla_ros.bags.validate import validate_bag
from moe_vla_ros.cli import add_bag_argument, add_bags_argument, add_output_argument, add_progress_argument, run_tool, tool_parser
from moe_vla_ros.contract import SensorContract
from moe_vla_ros.control.images import ImageConversionError, compressed_to_rgb, raw_to_rgb, resize_image
from moe_vla_ros.control.joint_state import JointStateError, JointStateMapper
from moe_vla_ros.control.policy_runner import JOINT_STATES, Command, PolicyRunner, camera_input
from moe_vla_ros.control.warm_up import warm_up
from moe_vla_ros.evaluation.bag.config import EvaluationConfig
from moe_vla_ros.evaluation.bag.records import ChunkRecord, RunRecords, load_reference
from moe_vla_ros.evaluation.bag.report import EvaluationReport, check_output_dir, write_report
from moe_vla_ros.evaluation.records import CommandRecord, TraceRecord, UsageRecord
from moe_vla_ros.runtime.config import RuntimeConfig
from moe_vla_ros.runtime.loader import load_policy
from moe_vla_ros.runtime.types import Observation, Policy, PolicyMetadata, PolicyOutput
from moe_vla_ros.spec.policy_node import default_params_files

NS = 1_000_000_000
PROG = "moe_vla_eval_bag"
CPU_RUNTIME = RuntimeConfig(providers=("CPUExecutionProvider",))


@dataclass(frozen=True)
class BagInputs:
    """The bag topics the policy reads ({camera: topic}, joint states, instruction)."""

    cameras: dict[str, str]
    joint_states: str
    instruction: str

    @property
    def topics(self) -> list[str]:
        return [*self.cameras.values(), self.joint_states, self.instruction]


def resolve_inputs(bag: BagReader, sensors: SensorContract, cfg: EvaluationConfig) -> BagInputs:
    """Topics of every contract camera (default /camera/<c>/image_raw; <topic>/compressed when only
    that is recorded) and of the joint states and instruction; BagError naming what is missing."""
    extra = sorted(set(cfg.camera_topics) - set(sensors.camera_names))
    if extra:
        raise BagError(f"camera_topics names {extra}, not cameras of the model {list(sensors.camera_names)}")
    cameras = {}
    for camera in sensors.camera_names:
        topic = cfg.camera_topics.get(camera, f"/camera/{camera}/image_raw")
        if topic not in bag.topics and f"{topic}/compressed" in bag.topics:
            topic = f"{topic}/compressed"  # image_transport's compressed topic of the same camera
        cameras[camera] = topic
    inputs = BagInputs(cameras, cfg.joint_state_topic, cfg.instruction_topic)
    bag.require_topics(inputs.topics)
    for topic in cameras.values():
        bag.require_type(topic, *ds.IMAGE_TYPES)
    bag.require_type(inputs.joint_states, ds.JOINT_STATE_TYPE)
    bag.require_type(inputs.instruction, ds.INSTRUCTION_TYPE)
    return inputs


class _TimedPolicy(Policy):
    """Wraps the evaluated policy: counts inferences, keeps every latency and optionally
    reports a fixed (simulated) latency instead of the measured one."""

    def __init__(self, inner: Policy, fixed_latency_s: float | None) -> None:
        self.inner, self.contract, self.fixed = inner, inner.contract, fixed_latency_s
        self.latencies: list[float] = []

    @property
    def metadata(self) -> PolicyMetadata:
        return self.inner.metadata

    def infer(self, observation: Observation, generate_reasoning: bool = True) -> PolicyOutput:
        out = self.inner.infer(observation, generate_reasoning)
        if self.fixed is not None:
            out = replace(out, latency_s=self.fixed)
        self.latencies.append(out.latency_s)
        return out

    def reset(self) -> None:
        self.inner.reset()


class OfflineRun:
    """One pass of a policy over a bag through a PolicyRunner on the bag's clock (module docstring)."""

    def __init__(self, policy: Policy, cfg: EvaluationConfig, inputs: BagInputs) -> None:
        self.cfg, self.inputs = cfg, inputs
        self.policy = _TimedPolicy(policy, cfg.fixed_latency_s)
        contract = policy.contract
        self.runner = PolicyRunner(self.policy, cfg.runner_config(contract), cfg.safety(contract))
        self.sensors = contract.sensors
        self.mapper = JointStateMapper(self.sensors.joint_names)
        self.camera_of = {topic: camera for camera, topic in inputs.cameras.items()}
        self.source_sizes: dict[str, list[int]] = {}
        self.holds = 0
        self.records = RunRecords(tuple(self.sensors.joint_names), self.sensors.control_period_s, 0.0, 0.0)

    def run(self, bag: BagReader) -> RunRecords:
        cfg = self.cfg
        start_ns = bag.start_ns
        stop_ns = start_ns + int(cfg.max_seconds * NS) + 1 if cfg.max_seconds is not None else None
        self.records.start_s = self.records.end_s = start_ns / NS
        self.runner.activate(start_ns / NS)
        next_poll = start_ns / NS
        total = sum(bag.topics[t].count for t in self.inputs.topics)
        for msg in tqdm(bag.messages(self.inputs.topics, stop_ns=stop_ns), total=total, desc="evaluate",
                        unit="msg", disable=not cfg.progress):
            now = msg.log_time_ns / NS
            while next_poll < now:  # inputs received at a tick are there for it
                next_poll = self._poll(next_poll)
            self._deliver(bag, msg, now)
            self.records.end_s = now
        self._poll(max(next_poll, self.records.end_s))  # the last inputs may still trigger a refill
        self._finish()
        return self.records

    # -- the inference loop -------------------------------------------------------------------
    def _poll(self, t: float) -> float:
        """One tick of the node's inference timer at bag time t; returns the next tick time."""
        before = len(self.policy.latencies)

        def clock() -> float:  # t until an inference ran, then t + its latency (when simulated)
            if len(self.policy.latencies) == before or not self.cfg.simulate_latency:
                return t
            return t + self.policy.latencies[-1]

        command = self.runner.step(clock)
        done = clock()
        if command is not None:
            self._record(command, done)
        return max(t + self.cfg.poll_period_s, done)

    def _record(self, command: Command, done: float) -> None:
        r = self.records
        if command.is_hold:  # recorded as a stop where it was sent (the trajectory brakes to rest)
            self.holds += 1
            r.commands.append(CommandRecord(done, done, np.zeros(0), np.zeros((0, self.sensors.num_joints))))
            return
        out, traj, chunk_id = command.output, command.trajectory, command.accept.chunk_id
        r.commands.append(CommandRecord(done, traj.start_time, traj.times, traj.positions.copy(), out.stamp, chunk_id))
        r.usage.append(UsageRecord(out.stamp, {u.layer_name: np.asarray(u.expert_load, dtype=np.float64)
                                               for u in out.expert_usage}, chunk_id))
        if out.reasoning is not None and out.reasoning_is_new:
            r.traces.append(TraceRecord(out.reasoning.stamp, out.reasoning.text, chunk_id))
        r.chunks.append(ChunkRecord(out.stamp, done, np.asarray(out.actions, dtype=np.float64)))

    def _finish(self) -> None:
        c = self.runner.counters
        self.records.latencies_s = list(self.policy.latencies)
        self.records.counters = {
            "observations": int(self.runner.sync.counters[JOINT_STATES].matched),
            "inferences": len(self.policy.latencies), "chunks_published": c.chunks_published,
            "rejected_chunks": c.rejected_chunks, "rejected_inputs": c.rejected_inputs,
            "inference_errors": c.inference_errors, "holds": self.holds,
            "dropped_inputs": self.runner.input_drop_count(), "stale_events": self.runner.stale_event_count(),
        }

    # -- inputs -----------------------------------------------------------------------------------
    def _deliver(self, bag: BagReader, msg: BagMessage, now: float) -> None:
        obj = bag.deserialize(msg)
        if msg.topic in self.camera_of:
            camera = self.camera_of[msg.topic]
            size = (self.sensors.image_height, self.sensors.image_width)
            try:
                if msg.msgtype == "sensor_msgs/msg/CompressedImage":
                    rgb = compressed_to_rgb(obj.data, format=obj.format)  # [h, w, 3] as recorded
                    self.source_sizes.setdefault(camera, list(rgb.shape[:2]))
                    rgb = resize_image(rgb, size)
                else:
                    self.source_sizes.setdefault(camera, [int(obj.height), int(obj.width)])
                    rgb = raw_to_rgb(obj.data, height=obj.height, width=obj.width, encoding=obj.encoding,
                                     step=obj.step, is_bigendian=bool(obj.is_bigendian), size=size)
            except ImageConversionError as e:
                self.runner.reject_input(camera_input(camera), str(e))
                return
            self.runner.add_image(camera, _stamp(obj.header.stamp) or now, rgb, now)
        elif msg.topic == self.inputs.joint_states:
            try:
                joints = self.mapper.map(list(obj.name), obj.position, obj.velocity)
            except JointStateError as e:
                self.runner.reject_input(JOINT_STATES, str(e))
                return
            self.runner.add_joint_state(_stamp(obj.header.stamp) or now, joints, now)
        else:
            self.runner.set_instruction(str(obj.data))


def _stamp(stamp) -> float:
    return int(stamp.sec) + int(stamp.nanosec) * 1e-9


def evaluate_bag(
    bag: str | os.PathLike,
    model: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    config: EvaluationConfig | None = None,
    *,
    runtime: RuntimeConfig | None = None,
    policy: Policy | None = None,
) -> EvaluationReport:
    """Evaluate the model in `model` (or an already loaded `policy`, e.g. the oracle baseline) on
    `bag`; writes report.json and plots into `out_dir` (new or empty) and returns the report.

    Raises BagError (bad bag or output folder), ModelLoadError / ContractError (bad model).
    """
    cfg = config or EvaluationConfig()
    check_output_dir(out_dir)
    if policy is not None:
        return _evaluate(bag, model, out_dir, cfg, policy)
    if model is None:
        raise BagError("give a model folder or a policy to evaluate")
    loaded = load_policy(model, replace(runtime or CPU_RUNTIME, reasoning_enabled=cfg.node.execution.reasoning_enabled))
    try:
        return _evaluate(bag, model, out_dir, cfg, loaded)
    finally:
        loaded.close()


def _evaluate(bag: str | os.PathLike, model: str | os.PathLike | None, out_dir: str | os.PathLike,
              cfg: EvaluationConfig, policy: Policy) -> EvaluationReport:
    contract = policy.contract
    cfg.check_model(contract)
    with BagReader(bag) as reader:
        inputs = resolve_inputs(reader, contract.sensors, cfg)
    validate_bag(bag, inputs.topics, contract.sensors)
    warm_up(policy, cfg.node.model.warmup_runs, cfg.safety(contract))  # as the node does at configure
    with BagReader(bag) as reader:
        reference = load_reference(reader, contract.sensors, inputs.joint_states, inputs.instruction,
                                   cfg.command_topic, cfg.reference_max_gap_s)
        run = OfflineRun(policy, cfg, inputs)
        started = time.perf_counter()
        records = run.run(reader)
        wall = time.perf_counter() - started
    meta = policy.metadata
    info = {
        "mode": "offline", "bag": str(Path(bag)), "model": str(model) if model is not None else meta.model_id,
        "model_id": meta.model_id, "backend": meta.backend, "execution_providers": list(meta.execution_providers),
        "inputs": {"cameras": inputs.cameras, "joint_states": inputs.joint_states, "instruction": inputs.instruction},
        "source_image_sizes": run.source_sizes, "wall_s": wall,
    }
    return write_report(out_dir, records, reference, contract, cfg, info)


def add_common_arguments(p: argparse.ArgumentParser, many: bool = False) -> None:
    """Arguments shared with the replay evaluator (ros/bag_replay_eval.py); `many`: positional
    `bags` (one or more) instead of `bag`."""
    if many:
        add_bags_argument(p, "one or more bags (folder, .mcap or .db3 file); several: one report each in OUT/<bag name>/")
    else:
        add_bag_argument(p, "bag folder, .mcap or .db3 file")
    p.add_argument("--model", required=True, help="exported model folder")
    add_output_argument(p, "report folder (new or empty); with several bags the folder of their reports")
    p.add_argument("--params-file", action="append", default=None, metavar="YAML",
                   help="the node's parameter files (default: config/policy.yaml + config/robots/sim_arm.yaml)")
    p.add_argument("--camera", action="append", default=[], metavar="NAME=TOPIC", help="image topic of a camera")
    p.add_argument("--joint-states", default=None, help="JointState topic")
    p.add_argument("--instruction", default=None, help="std_msgs/String instruction topic")
    p.add_argument("--command", default=None, help="recorded JointTrajectory topic ('' = score against joint states)")
    p.add_argument("--no-plots", action="store_true", help="JSON report only")


def config_from_args(args: argparse.Namespace, **overrides) -> EvaluationConfig:
    topics = {k: v for k, v in (("joint_state_topic", args.joint_states), ("instruction_topic", args.instruction),
                                ("command_topic", args.command)) if v is not None}
    cameras = ds.parse_camera_topics(args.camera)
    if cameras:
        topics["camera_topics"] = cameras
    files = args.params_file or default_params_files()
    return EvaluationConfig.from_params_files(files, plots=not args.no_plots,
                                              **topics, **overrides)


def main(argv: Sequence[str] | None = None) -> int:
    """``moe_vla_eval_bag``: offline evaluation; prints the headline numbers (several bags: the
    fleet table). Exit 0 reported, 2 bad input (bag, model, arguments), 1 failed (with several
    bags: any bag that could not be evaluated)."""
    return run_tool(PROG, lambda: _run(argv))


def _run(argv: Sequence[str] | None) -> int:
    p = tool_parser(PROG, __doc__)
    add_common_arguments(p, many=True)
    p.add_argument("--max-seconds", type=float, default=None, help="evaluate only the first seconds of the bag")
    p.add_argument("--no-simulate-latency", action="store_true", help="inference takes no time")
    p.add_argument("--latency", type=float, default=None, help="simulate this latency (s) instead of the measured one")
    p.add_argument("--backend", choices=("onnxruntime", "torch"), default="onnxruntime")
    add_progress_argument(p)
    fanout.add_executor_arguments(p)
    args = p.parse_args(argv)
    executor = fanout.config_from_args(args)
    fleet = len(args.bags) > 1
    cfg = config_from_args(args, simulate_latency=not args.no_simulate_latency, fixed_latency_s=args.latency,
                           max_seconds=args.max_seconds,
                           progress=args.progress and not fleet and executor.executor == "local")
    model = Path(args.model).absolute() if executor.executor == "ray" else args.model  # Ray workers run elsewhere
    evaluate = partial(evaluate_into, model=model, config=cfg, runtime=replace(CPU_RUNTIME, backend=args.backend))
    if not fleet:
        report = fanout.run_single(evaluate, args.bags[0], args.out, executor)
        print(report.format())
        return 0
    fanout.run_fleet(evaluate, args.bags, args.out, executor, tool=PROG, metrics=report_metrics,
                     columns=FLEET_COLUMNS, totals=fleet_totals, desc="evaluate bags")
    return 0


def evaluate_into(bag: str | os.PathLike, out_dir: str | os.PathLike, model: str | os.PathLike | None,
                  config: EvaluationConfig, runtime: RuntimeConfig | None = None) -> EvaluationReport:
    """evaluate_bag with the bag and its report folder first (the per-bag call of a fleet)."""
    return evaluate_bag(bag, model, out_dir, config, runtime=runtime)


FLEET_COLUMNS = (
    fanout.Column("action MAE", "action_mae", "{:.4f}"), fanout.Column("chunk MAE", "chunk_mae", "{:.4f}"),
    fanout.Column("commands", "commands"), fanout.Column("holds", "holds"), fanout.Column("seams", "seams"),
    fanout.Column("starved", "starved_seams"), fanout.Column("s", "duration_s", "{:.1f}"),
)


def report_metrics(report: EvaluationReport) -> dict:
    """The key numbers of one bag's report (a row of the fleet summary)."""
    d = report.data
    return {
        "report": str(report.path), "duration_s": d["span_s"]["duration"],
        "action_mae": d["action_error"]["mae"], "action_rmse": d["action_error"]["rmse"],
        "action_samples": d["action_error"]["samples"],
        "chunk_mae": d.get("chunk_error", {}).get("mae"),
        "commands": d["counts"]["commands"], "holds": d["counts"]["holds"],
        "seams": d["seams"]["count"], "starved_seams": d["seams"]["starved"]["count"],
        "seam_velocity_jump_p95": d["seams"]["velocity_jump"]["p95"],
        "staleness_p95_s": d["staleness_s"]["p95"], "latency_p50_s": d["latency_s"]["p50"],
    }


def fleet_totals(rows: list[dict]) -> dict:
    """Over the bags that were evaluated: action MAE weighted by executed points, counts summed."""
    scored = [r for r in rows if r["action_mae"] is not None and r["action_samples"]]
    samples = sum(r["action_samples"] for r in scored)
    return {
        "action_mae": sum(r["action_mae"] * r["action_samples"] for r in scored) / samples if samples else None,
        "action_samples": samples, "commands": sum(r["commands"] for r in rows),
        "holds": sum(r["holds"] for r in rows), "duration_s": sum(r["duration_s"] for r in rows),
    }


if __name__ == "__main__":
    sys.exit(main())
