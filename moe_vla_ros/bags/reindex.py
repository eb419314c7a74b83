"""Recover a bag from its .mcap alone: a recorder killed with SIGKILL (or a power cut) leaves an
.mcap without summary and footer and no metadata.yaml; a metadata.yaml edited by hand may no
longer match the storage. Like `ros2 bag reindex`, the recovery rebuilds the index and
metadata.yaml from what the .mcap holds, but it writes a NEW bag (the damaged one is never
modified):

    moe_vla_bag_reindex run_01                 # -> run_01_reindexed/ (metadata.yaml, chunk CRCs)
    moe_vla_bag_reindex run_01 --out fixed

`reindex_bag()` walks the data section record by record (bags/mcap_integrity.py scan_records):
schemas and channels give the topics, types, QoS and message definitions, messages are copied
unchanged (CDR bytes, receive times) in file order. It stops at the first truncated record;
chunks that fail their CRC are skipped and reported. What a killed recorder had not yet
flushed (its last, unwritten chunk: up to ~1 MiB of messages) is lost; custom_data of the
original metadata.yaml (e.g. the sensor contract) is copied when that file is readable.

Exit status: 0 recovered (the report lists what was skipped), 2 nothing recoverable or bad input.
Pure: rosbags only, no rclpy.
"""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rosbags.rosbag2.storage_mcap import get_qos

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.mcap_integrity import OP_CHANNEL, OP_MESSAGE, OP_SCHEMA, McapFormatError, scan_records
from moe_vla_ros.bags.typestore import get_typestore, register_definition
from moe_vla_ros.bags.writer import BagWriter
from moe_vla_ros.cli import add_bag_argument, add_output_argument, run_tool, tool_parser


@dataclass(frozen=True)
class ReindexReport:
    """What `reindex_bag` recovered.

    Attributes:
        output: the new bag folder.
        messages: per topic, messages copied.
        skipped: one line per thing left out (corrupt chunks, a truncated tail, unknown channels).
    """

    output: Path
    messages: dict[str, int]
    skipped: tuple[str, ...]

    def format(self) -> str:
        lines = [f"recovered {sum(self.messages.values())} messages into {self.output}"]
        lines += [f"  {topic}: {n}" for topic, n in sorted(self.messages.items())]
        lines += [f"  skipped: {s}" for s in self.skipped]
        return "\n".join(lines)


def _string(body: bytes, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<I", body, pos)
    return body[pos + 4 : pos + 4 + n].decode(), pos + 4 + n


def _mcap_file(bag: Path) -> Path:
    if bag.is_file():
        return bag
    files = sorted(bag.glob("*.mcap")) if bag.is_dir() else []
    if len(files) != 1:
        raise BagError(f"{bag}: expected one .mcap file to reindex, found {[f.name for f in files]}"
                       + (" (sqlite3 bags are not supported)" if bag.is_dir() and list(bag.glob("*.db3")) else ""))
    return files[0]


def _custom_data(bag: Path) -> dict[str, str]:
    """custom_data of the damaged bag's metadata.yaml, when it still parses."""
    try:
        import yaml

        meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        return {str(k): str(v) for k, v in (meta.get("custom_data") or {}).items()}
    except Exception:  # missing or broken metadata.yaml: nothing to keep
        return {}


def reindex_bag(bag: str | os.PathLike, output: str | os.PathLike | None = None) -> ReindexReport:
    """Write a complete copy of `bag` (folder or .mcap file) to `output` (default: <bag>_reindexed).

    BagError when the input is not an MCAP bag, the output exists, or no message is recoverable.
    """
    bag = Path(bag)
    if not bag.exists():
        raise BagError(f"bag {bag} does not exist")
    source = _mcap_file(bag)
    out = Path(output) if output is not None else bag.with_name(f"{bag.stem if bag.is_file() else bag.name}_reindexed")
    typestore = get_typestore()
    skipped: list[str] = []
    schemas: dict[int, tuple[str, str, bytes]] = {}  # id -> (name, encoding, data)
    channels: dict[int, str] = {}  # id -> topic (added to the writer)
    counts: dict[str, int] = {}
    writer = BagWriter(out, "mcap", typestore=typestore, custom_data=_custom_data(bag) if bag.is_dir() else None)
    try:
        for record in scan_records(source, skipped):
            body = record.body
            try:
                if record.opcode == OP_SCHEMA:
                    (sid,) = struct.unpack_from("<H", body, 0)
                    name, pos = _string(body, 2)
                    encoding, pos = _string(body, pos)
                    (n,) = struct.unpack_from("<I", body, pos)
                    schemas[sid] = (name, encoding, body[pos + 4 : pos + 4 + n])
                elif record.opcode == OP_CHANNEL:
                    cid, sid = struct.unpack_from("<HH", body, 0)
                    topic, pos = _string(body, 4)
                    _, pos = _string(body, pos)  # message encoding (cdr)
                    if cid in channels:
                        continue
                    if sid not in schemas:
                        skipped.append(f"channel {topic}: its schema {sid} is not in the readable part")
                        continue
                    name, encoding, data = schemas[sid]
                    if name not in typestore.fielddefs and encoding == "ros2msg" and data:
                        register_definition(typestore, name, data.decode())
                    (n,) = struct.unpack_from("<I", body, pos)  # metadata map: byte length + pairs
                    writer.add_topic(topic, name, qos=get_qos(body[pos + 4 : pos + 4 + n]))
                    channels[cid] = topic
                    counts.setdefault(topic, 0)
                elif record.opcode == OP_MESSAGE:
                    cid, _, log_time, _ = struct.unpack_from("<HIQQ", body, 0)
                    if cid not in channels:
                        continue  # its channel was skipped (reported above)
                    writer.write_raw(channels[cid], log_time, body[22:])
                    counts[channels[cid]] += 1
            except (struct.error, UnicodeDecodeError, BagError, ValueError) as e:
                skipped.append(f"record at byte {record.offset}: {e}")
    except (McapFormatError, OSError) as e:
        raise BagError(f"{source} cannot be reindexed: {e}") from None
    finally:
        writer.close()
    if not sum(counts.values()):
        raise BagError(f"no message of {source} is recoverable ({'; '.join(skipped) or 'it holds none'}); "
                       f"{out} holds an empty bag")
    return ReindexReport(out, counts, tuple(skipped))


PROG = "moe_vla_bag_reindex"


def main(argv: Sequence[str] | None = None) -> int:
    """``moe_vla_bag_reindex BAG [-o/--out DIR]``."""
    return run_tool(PROG, lambda: _run(argv))


def _run(argv: Sequence[str] | None) -> int:
    parser = tool_parser(PROG, __doc__)
    add_bag_argument(parser, "bag folder (or .mcap file) to recover; it is not modified")
    add_output_argument(parser, "new bag folder to write (default: <bag>_reindexed)", required=False)
    args = parser.parse_args(argv)
    report = reindex_bag(args.bag, args.out)
    print(report.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
