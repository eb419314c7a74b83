"""Share demonstrations as a LeRobotDataset v3.0: our dataset folder, or a robot bag, -> LeRobot.

    moe_vla_to_lerobot DATASET -o OUT                       our demonstration dataset
    moe_vla_to_lerobot BAG -o OUT --contract CONTRACT.json  a recorded bag (through the bag ->
                                                            dataset converter first)

Joint positions become `observation.state`, actions `action`, every camera an mp4 video stream
`observation.images.<camera>` (`--vcodec/--crf/--gop/--pix-fmt`; `--images`: PNG images inside
the parquet files instead), the instruction the task; reasoning text, the target position and
the episode's task family and success flag go along as extra features/columns; stats as LeRobot
computes them. An existing OUT is never overwritten.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from moe_vla_ros.cli import add_output_argument, add_progress_argument, bad_input, parse_pairs, run_tool, tool_parser
from moe_vla_ros.data.dataset import DemoDataset
from moe_vla_ros.data.lerobot.schema import LeRobotFormatError
from moe_vla_ros.data.lerobot.video import CODECS, PIX_FMTS
from moe_vla_ros.data.lerobot.writer import ExportOptions, ExportReport, export_lerobot

PROG = "moe_vla_to_lerobot"


def is_bag(path: Path) -> bool:
    """A rosbag2 folder (metadata.yaml) or a bag file (.mcap, .db3)."""
    return (path.is_dir() and (path / "metadata.yaml").is_file()) or path.suffix in (".mcap", ".db3")


def bag_to_lerobot(bag: str | Path, output: str | Path, contract_path: str | Path, bag_config=None,
                   options: ExportOptions = ExportOptions()) -> ExportReport:
    """Bag -> our dataset (bags/to_dataset.py, in a temporary folder) -> LeRobot folder `output`."""
    from moe_vla_ros.bags.to_dataset import BagToDatasetConfig, convert_bag_to_dataset
    from moe_vla_ros.bags.validate import load_sensor_contract

    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise LeRobotFormatError(f"{output} already exists and is not empty; refusing to overwrite it")
    contract = load_sensor_contract(contract_path)
    with tempfile.TemporaryDirectory(prefix="moe_vla_bag_") as tmp:
        convert_bag_to_dataset(bag, Path(tmp) / "dataset", contract, bag_config or BagToDatasetConfig(progress=options.progress))
        return export_lerobot(DemoDataset(Path(tmp) / "dataset"), output, options)


def main(argv: Sequence[str] | None = None) -> int:
    """`moe_vla_to_lerobot`: exit 0 written, 2 bad input (unknown input, occupied OUT, bad bag), 1 failed."""
    return run_tool(PROG, lambda: _run(argv))


def _run(argv: Sequence[str] | None) -> int:
    p = tool_parser(PROG, __doc__)
    p.add_argument("input", type=Path, help="our dataset folder (meta.json) or a bag (folder, .mcap, .db3)")
    add_output_argument(p, "new LeRobot dataset folder (must not exist, or be empty)")
    p.add_argument("--images", action="store_true", help="embed PNG images in the parquet files instead of mp4 videos")
    p.add_argument("--vcodec", choices=CODECS, default="libsvtav1", help="video codec (default: LeRobot's libsvtav1)")
    p.add_argument("--crf", type=int, default=30, help="video quality, lower is better (default 30, LeRobot's)")
    p.add_argument("--gop", type=int, default=2, help="frames between key frames (default 2, LeRobot's)")
    p.add_argument("--pix-fmt", choices=PIX_FMTS, default="yuv420p",
                   help="video pixel format (default yuv420p, LeRobot's; yuv444p keeps colour at full "
                        "resolution, for small coloured objects; needs --vcodec h264 or hevc)")
    p.add_argument("--robot-type", default=None, help="info.json robot_type")
    bag = p.add_argument_group("bag input (as moe_vla_bag_to_dataset)")
    bag.add_argument("--contract", help="JSON sensor contract, a dataset's meta.json or a model's manifest.json")
    bag.add_argument("--camera", action="append", default=[], metavar="NAME=TOPIC", help="image topic of a contract camera")
    bag.add_argument("--joint-states", default=None, help="JointState topic")
    bag.add_argument("--instruction", default=None, help="std_msgs/String instruction topic")
    bag.add_argument("--command", default=None, help="JointTrajectory action topic ('' = next joint state)")
    bag.add_argument("--reasoning", default=None, help="ReasoningTrace topic ('' = none)")
    bag.add_argument("--task", default="", help="task family stored with each episode")
    add_progress_argument(p)
    args = p.parse_args(argv)
    with bad_input():
        options = ExportOptions(
            video=not args.images, codec=args.vcodec, crf=args.crf, gop=args.gop, pix_fmt=args.pix_fmt,
            robot_type=args.robot_type,
            progress=args.progress,
        )
    if is_bag(args.input):
        from moe_vla_ros.bags.errors import BagError
        from moe_vla_ros.bags.to_dataset import BagToDatasetConfig

        if not args.contract:
            raise BagError(f"{args.input} is a bag: --contract is needed to convert it")
        topics = {
            "joint_state_topic": args.joint_states, "instruction_topic": args.instruction,
            "command_topic": args.command, "reasoning_topic": args.reasoning,
        }
        config = BagToDatasetConfig(
            camera_topics=parse_pairs(args.camera, "=", "--camera NAME=TOPIC", BagError), task=args.task,
            progress=args.progress, **{k: v for k, v in topics.items() if v is not None},
        )
        report = bag_to_lerobot(args.input, args.out, args.contract, config, options)
    elif (args.input / "meta.json").is_file():
        report = export_lerobot(DemoDataset(args.input), args.out, options)
    else:
        raise LeRobotFormatError(f"{args.input} is neither a dataset folder (meta.json) nor a bag (metadata.yaml, .mcap, .db3)")
    print(
        f"wrote {report.output}: {report.episodes} episode(s), {report.frames} frames, {report.tasks} task(s); "
        f"features {', '.join(report.features)}"
    )
    for note in report.notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
