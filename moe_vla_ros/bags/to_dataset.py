"""Convert a bag of demonstrations into the training dataset format (data/dataset.py).

Inputs: one image topic per contract camera (sensor_msgs/Image or CompressedImage), a
JointState topic, the std_msgs/String instruction topic; optionally the JointTrajectory command
topic (the action source) and our ReasoningTrace topic (reasoning text per step).

How steps are made, on a grid at the contract's control rate:

- An episode runs while one instruction is active: it ends where the instruction text changes
  (or is cleared), and also wherever a step cannot be built (a joint-state gap longer than
  `max_gap_s`, no image within `image_slop_s` on some camera, no action); steps before the first
  instruction are not used. Runs shorter than `min_episode_steps` are dropped.
- Joint positions are interpolated linearly between the joint states around each step.
- Each camera contributes the image nearest to the step time, resized to the contract size.
- Action at step t = the joint-position target one control period later, i.e. when the next
  step is observed (the policy contract's first chunk element): sampled from the trajectory the
  controller was executing (see resample.sample_trajectories), or, with no command topic, the
  observed joint position at t + 1/rate.
- Reasoning at step t = the newest trace stamped within the episode at or before t whose
  instruction (when set) is the episode's; "" before the first.

The contract is checked first: joints by name (extra joints ignored), image topics' types, and
input rates (each camera and the joint states at >= `min_input_rate_fraction` x control rate).
The dataset is written to a hidden sibling folder and renamed into place at the end, so an
existing dataset is never touched and a failed conversion leaves nothing behind.

``moe_vla_bag_to_dataset BAG [BAG ...] -o OUT --contract FILE [--executor local|ray]
[--ray-address ADDRESS] [--ray-num-cpus N]``: one bag -> the dataset OUT; several bags (a fleet's)
-> one dataset per bag in OUT/<bag name>/, converted one after the other or as Ray tasks
(moe_vla_ros/fanout.py), and a fleet summary (OUT/fleet_summary.json, printed as a table: per bag
ok/failed with its error, episodes, steps); a bag that fails is reported without stopping the
others, and the exit code is then 1.

Pure: rosbags + numpy + OpenCV (control/images.py), no rclpy.
"""

from __future__ import annotations

import math
import shutil
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from moe_vla_ros import fanout
from moe_vla_ros.bags import demo_streams as ds
from moe_vla_ros.bags.episode_plan import PlannedEpisode, plan_episodes
from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.reader import BagReader
from moe_vla_ros.bags.validate import load_sensor_contract
from moe_vla_ros.cli import add_bags_argument, add_output_argument, add_progress_argument, run_tool, tool_parser
from moe_vla_ros.contract import SensorContract
from moe_vla_ros.control.images import ImageConversionError, compressed_to_rgb, raw_to_rgb, resize_image
from moe_vla_ros.data.dataset import DatasetWriter, Episode


@dataclass(frozen=True)
class BagToDatasetConfig:
    """How a demonstration bag becomes dataset episodes.

    Topics:
        camera_topics: {contract camera: image topic}; cameras not listed default to
            "/camera/<camera>/image_raw".
        joint_state_topic: sensor_msgs/JointState topic.
        instruction_topic: std_msgs/String topic with the language instruction.
        command_topic: JointTrajectory topic used as the action source; "" (or absent from the
            bag) -> the next observed joint positions.
        reasoning_topic: ReasoningTrace topic; "" (or absent) -> no reasoning text.
    Alignment:
        image_slop_s: an image further than this from a step time cannot serve that step.
        max_gap_s: joint states further apart than this are a gap (the episode is cut).
        time_reference: "header" (header stamps, receive time where 0) or "receive".
        min_input_rate_fraction: cameras and joint states must run at >= this x control rate.
        min_episode_steps: shorter runs of valid steps are dropped.
    Episode metadata:
        task: task family stored with every episode.
        success: success flag stored with every episode.
    progress: show tqdm progress bars.
    """

    camera_topics: Mapping[str, str] = field(default_factory=dict)
    joint_state_topic: str = "/joint_states"
    instruction_topic: str = "/instruction"
    command_topic: str = "/joint_trajectory_controller/joint_trajectory"
    reasoning_topic: str = "/reasoning_trace"
    image_slop_s: float = 0.05
    max_gap_s: float = 0.25
    time_reference: str = "header"
    min_input_rate_fraction: float = 0.9
    min_episode_steps: int = 2
    task: str = ""
    success: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("image_slop_s", "max_gap_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise BagError(f"{name} must be a positive number of seconds, got {value!r}")
        if not 0.0 <= self.min_input_rate_fraction <= 1.0:
            raise BagError(f"min_input_rate_fraction must be in [0, 1], got {self.min_input_rate_fraction!r}")
        if int(self.min_episode_steps) != self.min_episode_steps or self.min_episode_steps < 1:
            raise BagError(f"min_episode_steps must be an integer >= 1, got {self.min_episode_steps!r}")
        if self.time_reference not in ds.TIME_REFERENCES:
            raise BagError(f"time_reference must be one of {ds.TIME_REFERENCES}, got {self.time_reference!r}")
        for name in ("joint_state_topic", "instruction_topic"):
            if not getattr(self, name):
                raise BagError(f"{name} must name a topic")

    def cameras_for(self, contract: SensorContract) -> dict[str, str]:
        """{camera: topic} for every contract camera; BagError for cameras the contract lacks."""
        extra = sorted(set(self.camera_topics) - set(contract.camera_names))
        if extra:
            raise BagError(f"camera_topics names {extra}, not cameras of the contract {list(contract.camera_names)}")
        return {c: self.camera_topics.get(c, f"/camera/{c}/image_raw") for c in contract.camera_names}


@dataclass(frozen=True)
class ConversionReport:
    """What a conversion produced.

    Attributes:
        output: the dataset folder.
        episode_lengths: steps of each written episode.
        action_source: "command <topic>" or "next joint state".
        dropped_steps: grid steps not used, by reason.
        source_image_sizes: (height, width) of each camera's recorded images.
        rates_hz: measured rate of each input stream.
    """

    output: Path
    episode_lengths: tuple[int, ...]
    action_source: str
    dropped_steps: dict[str, int]
    source_image_sizes: dict[str, tuple[int, int]]
    rates_hz: dict[str, float]

    @property
    def num_steps(self) -> int:
        return sum(self.episode_lengths)


def _resolve_topics(bag: BagReader, contract: SensorContract, config: BagToDatasetConfig) -> ds.StreamTopics:
    cameras = config.cameras_for(contract)
    bag.require_topics([*cameras.values(), config.joint_state_topic, config.instruction_topic])
    for topic in cameras.values():
        bag.require_type(topic, *ds.IMAGE_TYPES)
    bag.require_type(config.joint_state_topic, ds.JOINT_STATE_TYPE)
    bag.require_type(config.instruction_topic, ds.INSTRUCTION_TYPE)
    command = config.command_topic if config.command_topic in bag.topics else ""
    if command:
        bag.require_type(command, ds.TRAJECTORY_TYPE)
    reasoning = config.reasoning_topic if config.reasoning_topic in bag.topics else ""
    if reasoning:
        bag.require_type(reasoning, ds.REASONING_TYPE)
    return ds.StreamTopics(cameras, config.joint_state_topic, config.instruction_topic, command, reasoning)


def _check_rates(streams: ds.DemoStreams, topics: ds.StreamTopics, contract: SensorContract, fraction: float) -> dict:
    rates = {topics.joint_states: ds.median_rate_hz(streams.joint_times_ns)}
    rates.update({cam.topic: ds.median_rate_hz(cam.stamps_ns) for cam in streams.cameras.values()})
    floor = fraction * contract.control_rate_hz
    slow = {t: round(r, 2) for t, r in rates.items() if r < floor}
    if slow:
        raise BagError(
            f"input rates {slow} Hz are below {fraction:g} x the contract's control rate "
            f"{contract.control_rate_hz:g} Hz (lower min_input_rate_fraction to accept them)"
        )
    return rates


def _decode(bag: BagReader, msg, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    image = bag.deserialize(msg)
    try:
        if msg.msgtype == "sensor_msgs/msg/CompressedImage":
            rgb = compressed_to_rgb(image.data, format=image.format)  # [h, w, 3] as recorded
            return resize_image(rgb, size), rgb.shape[:2]
        source = (int(image.height), int(image.width))
        rgb = raw_to_rgb(
            image.data, height=image.height, width=image.width, encoding=image.encoding,
            step=image.step, is_bigendian=bool(image.is_bigendian), size=size,
        )
        return rgb, source
    except ImageConversionError as e:
        raise BagError(f"image {msg.index} on {msg.topic} cannot be converted: {e}") from None


def _decode_and_write(
    bag: BagReader,
    topics: ds.StreamTopics,
    episodes: list[PlannedEpisode],
    writer: DatasetWriter,
    contract: SensorContract,
    config: BagToDatasetConfig,
) -> dict[str, tuple[int, int]]:
    """Second pass over the camera topics: decode each image some step uses (once, even when
    several steps share it), write every episode as soon as its images are complete (in time
    order) and drop its pixels. Returns each camera's recorded image size."""
    size = (contract.image_height, contract.image_width)
    users: dict[str, dict[int, list[tuple[int, int]]]] = {cam: {} for cam in topics.cameras}  # index -> steps
    for e, ep in enumerate(episodes):
        for cam, indices in ep.image_index.items():
            for step, index in enumerate(indices.tolist()):
                users[cam].setdefault(index, []).append((e, step))
    camera_of = {topic: cam for cam, topic in topics.cameras.items()}
    source_sizes: dict[str, tuple[int, int]] = {}
    written = 0
    total = sum(bag.topics[t].count for t in camera_of)
    with tqdm(total=total, desc="images", unit="img", disable=not config.progress) as bar:
        for msg in bag.messages(list(camera_of)):
            bar.update(1)
            cam = camera_of[msg.topic]
            uses = users[cam].pop(msg.index, None)
            if not uses:
                continue
            rgb, source_sizes[cam] = _decode(bag, msg, size)
            for e, step in uses:
                ep = episodes[e]
                if cam not in ep.images:
                    ep.images[cam] = np.zeros((len(ep), *size, 3), dtype=np.uint8)  # [T, H, W, 3]
                ep.images[cam][step] = rgb
                ep.missing -= 1
            while written < len(episodes) and episodes[written].missing == 0:
                writer.add_episode(_finish(episodes[written], contract, config))
                episodes[written].images = {}  # free the pixels
                written += 1
    if written != len(episodes):
        raise BagError(f"{len(episodes) - written} episode(s) still lack images after reading {bag.path}")
    return source_sizes


def convert_bag_to_dataset(
    bag_path: str | Path,
    output: str | Path,
    contract: SensorContract,
    config: BagToDatasetConfig = BagToDatasetConfig(),
) -> ConversionReport:
    """Convert the bag at `bag_path` into a new dataset at `output`; see the module docstring."""
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise BagError(f"{output} already exists and is not empty; refusing to overwrite it")
    with BagReader(bag_path) as bag:
        topics = _resolve_topics(bag, contract, config)
        streams = ds.load_demo_streams(
            bag, contract, topics, time_reference=config.time_reference, progress=config.progress
        )
        rates = _check_rates(streams, topics, contract, config.min_input_rate_fraction)
        episodes, dropped = plan_episodes(
            streams, contract, image_slop_s=config.image_slop_s, max_gap_s=config.max_gap_s,
            min_episode_steps=config.min_episode_steps,
        )
        if not episodes:
            raise BagError(
                f"no episode of >= {config.min_episode_steps} steps could be built from {bag_path} "
                f"(steps dropped: {dict(dropped) or 'none: no instruction or joint state overlap'})"
            )
        output.parent.mkdir(parents=True, exist_ok=True)
        staging = output.parent / f".{output.name}.{uuid.uuid4().hex[:8]}.partial"
        staging.mkdir()
        try:
            with DatasetWriter(staging, contract, source=f"bag:{Path(bag_path).resolve()}") as writer:
                source_sizes = _decode_and_write(bag, topics, episodes, writer, contract, config)
            if output.exists():
                output.rmdir()  # an empty folder the caller made for us
            staging.rename(output)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return ConversionReport(
        output=output,
        episode_lengths=tuple(len(ep) for ep in episodes),
        action_source=f"command {topics.command}" if topics.command else "next joint state",
        dropped_steps=dict(dropped),
        source_image_sizes=source_sizes,
        rates_hz=rates,
    )


def _finish(ep: PlannedEpisode, contract: SensorContract, config: BagToDatasetConfig) -> Episode:
    steps = len(ep)
    return Episode(
        images=ep.images,
        joint_position=ep.joint_position.astype(np.float32),
        action=ep.action.astype(np.float32),
        timestamp=np.arange(steps, dtype=np.float64) / contract.control_rate_hz,
        instruction=ep.instruction,
        reasoning=ep.reasoning,
        task=config.task,
        success=config.success,
    )


PROG = "moe_vla_bag_to_dataset"
FLEET_COLUMNS = (fanout.Column("episodes", "episodes"), fanout.Column("steps", "steps"),
                 fanout.Column("actions from", "action_source"))


def main(argv: Sequence[str] | None = None) -> int:
    """``moe_vla_bag_to_dataset BAG [BAG ...] -o OUT --contract FILE [options]``: exit 0 written,
    2 bad input, 1 failed (with several bags: any bag that could not be converted)."""
    return run_tool(PROG, lambda: _run(argv))


def _run(argv: Sequence[str] | None) -> int:
    d = BagToDatasetConfig()
    p = tool_parser(PROG, __doc__)
    add_bags_argument(p, "one or more bags (folder, .mcap or .db3 file); several: one dataset each in OUT/<bag name>/")
    add_output_argument(p, "new dataset folder (must not exist, or be empty); with several bags the folder of their datasets")
    p.add_argument("--contract", required=True, help="JSON sensor/policy contract, a dataset's meta.json or a model's manifest.json")
    p.add_argument("--camera", action="append", default=[], metavar="NAME=TOPIC",
                   help="image topic of a contract camera (default /camera/NAME/image_raw)")
    p.add_argument("--joint-states", default=d.joint_state_topic, help="JointState topic")
    p.add_argument("--instruction", default=d.instruction_topic, help="std_msgs/String instruction topic")
    p.add_argument("--command", default=d.command_topic, help="JointTrajectory action topic ('' = next joint state)")
    p.add_argument("--reasoning", default=d.reasoning_topic, help="ReasoningTrace topic ('' = none)")
    p.add_argument("--image-slop", type=float, default=d.image_slop_s, help="seconds (default %(default)s)")
    p.add_argument("--max-gap", type=float, default=d.max_gap_s, help="seconds (default %(default)s)")
    p.add_argument("--time-reference", choices=ds.TIME_REFERENCES, default=d.time_reference)
    p.add_argument("--min-rate-fraction", type=float, default=d.min_input_rate_fraction)
    p.add_argument("--min-episode-steps", type=int, default=d.min_episode_steps)
    p.add_argument("--task", default="", help="task family stored with each episode")
    add_progress_argument(p)
    fanout.add_executor_arguments(p)
    args = p.parse_args(argv)
    executor = fanout.config_from_args(args)
    fleet = len(args.bags) > 1
    config = BagToDatasetConfig(
        camera_topics=ds.parse_camera_topics(args.camera), joint_state_topic=args.joint_states,
        instruction_topic=args.instruction, command_topic=args.command, reasoning_topic=args.reasoning,
        image_slop_s=args.image_slop, max_gap_s=args.max_gap, time_reference=args.time_reference,
        min_input_rate_fraction=args.min_rate_fraction, min_episode_steps=args.min_episode_steps,
        task=args.task, progress=args.progress and not fleet and executor.executor == "local",
    )
    convert = partial(convert_into, contract=load_sensor_contract(args.contract), config=config)
    if fleet:
        fanout.run_fleet(convert, args.bags, args.out, executor, tool=PROG, metrics=conversion_metrics,
                         columns=FLEET_COLUMNS, totals=fleet_totals, desc="convert bags")
        return 0
    report = fanout.run_single(convert, args.bags[0], args.out, executor)
    print(f"wrote {len(report.episode_lengths)} episode(s), {report.num_steps} steps to {report.output}")
    print(f"actions from: {report.action_source}; source image sizes: {report.source_image_sizes}")
    print(f"input rates (Hz): { {t: round(r, 2) for t, r in report.rates_hz.items()} }")
    if report.dropped_steps:
        print(f"steps not used: {report.dropped_steps}")
    return 0


def convert_into(bag: str | Path, output: str | Path, contract: SensorContract,
                 config: BagToDatasetConfig = BagToDatasetConfig()) -> ConversionReport:
    """convert_bag_to_dataset with the bag and its dataset folder first (the per-bag call of a fleet)."""
    return convert_bag_to_dataset(bag, output, contract, config)


def conversion_metrics(report: ConversionReport) -> dict:
    """The key numbers of one bag's conversion (a row of the fleet summary)."""
    return {"dataset": str(report.output), "episodes": len(report.episode_lengths), "steps": report.num_steps,
            "episode_lengths": list(report.episode_lengths), "action_source": report.action_source,
            "dropped_steps": dict(report.dropped_steps),
            "rates_hz": {t: round(r, 3) for t, r in report.rates_hz.items()}}


def fleet_totals(rows: list[dict]) -> dict:
    return {"episodes": sum(r["episodes"] for r in rows), "steps": sum(r["steps"] for r in rows)}


if __name__ == "__main__":
    sys.exit(main())
