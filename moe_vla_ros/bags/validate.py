"""Check a bag before using it: topics, types, counts, rates, stamp order, joints vs a contract.

`validate_bag()` reads every message once (header stamps straight from the CDR bytes, so images
are not deserialised) and returns a `BagSummary`; with ``strict=True`` (the default) any problem
raises a `BagError` listing all of them. Problems found:

- requested topics that are missing (the message lists the topics the bag does have) or empty,
- topics whose message type is unknown or whose stored type hash differs from ours,
- header stamps going backwards on a topic (topic, message index and both stamps),
- JointState / JointTrajectory messages that lack joints of the given contract (by name),
- MCAP chunks whose CRC does not match (corrupted bytes; messages are then not read).

An unreadable bag (missing, truncated, corrupt metadata, or a metadata.yaml that lists other
topics, types or counts than the storage holds) raises BagError right away.
The ``moe_vla_bag_info`` command prints the summary (exit status 1 when problems are found).

Pure: rosbags + numpy, no rclpy.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.reader import BagReader
from moe_vla_ros.cli import add_bag_argument, run_tool, tool_parser
from moe_vla_ros.contract import ContractError, SensorContract
from moe_vla_ros.errors import EXIT_FAILED

JOINT_TYPES = {"sensor_msgs/msg/JointState": "name", "trajectory_msgs/msg/JointTrajectory": "joint_names"}


@dataclass(frozen=True)
class TopicSummary:
    """Counts and timing of one topic (times are receive times, ns)."""

    name: str
    msgtype: str
    count: int
    first_ns: int
    last_ns: int

    @property
    def rate_hz(self) -> float:
        """Mean message rate over the topic's own span (0 with fewer than 2 messages)."""
        span = (self.last_ns - self.first_ns) * 1e-9
        return (self.count - 1) / span if self.count > 1 and span > 0 else 0.0


@dataclass(frozen=True)
class BagSummary:
    """What `validate_bag` found.

    Attributes:
        path: the bag.
        storage: "mcap" or "sqlite3".
        start_ns, end_ns: receive times of the first and last message.
        message_count: messages in the bag.
        topics: per-topic summaries, by topic name.
        problems: one line per problem; empty when the bag is usable as requested.
    """

    path: Path
    storage: str
    start_ns: int
    end_ns: int
    message_count: int
    topics: dict[str, TopicSummary]
    problems: tuple[str, ...] = field(default=())

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) * 1e-9

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self) -> str:
        """A human-readable table (what `moe_vla_bag_info` prints)."""
        lines = [
            f"bag:      {self.path} ({self.storage})",
            f"duration: {self.duration_s:.3f} s, {self.message_count} messages",
            f"{'topic':<48} {'type':<40} {'count':>7} {'rate Hz':>9}",
        ]
        for t in self.topics.values():
            lines.append(f"{t.name:<48} {t.msgtype:<40} {t.count:>7} {t.rate_hz:>9.2f}")
        lines += [f"problem:  {p}" for p in self.problems] or ["problems: none"]
        return "\n".join(lines)


class _StampOrder:
    """Tracks header stamps of one topic; remembers the first backwards step and how many."""

    def __init__(self) -> None:
        self.previous: tuple[int, int] | None = None  # (index, stamp)
        self.first_problem = ""
        self.count = 0

    def add(self, index: int, stamp_ns: int) -> None:
        if stamp_ns == 0:  # unset stamp: no order to check
            return
        if self.previous is not None and stamp_ns < self.previous[1]:
            self.count += 1
            if not self.first_problem:
                self.first_problem = (
                    f"message {index} has header stamp {stamp_ns * 1e-9:.9f} s, earlier than message "
                    f"{self.previous[0]} ({self.previous[1] * 1e-9:.9f} s)"
                )
        self.previous = (index, stamp_ns)


def _joint_problem(names: Sequence[str], contract: SensorContract) -> str:
    missing = [j for j in contract.joint_names if j not in set(names)]
    if missing:
        return f"joints {missing} of the contract are missing (message has {list(names)})"
    return ""


def validate_bag(
    path: str | os.PathLike,
    required_topics: Iterable[str] = (),
    contract: SensorContract | None = None,
    *,
    strict: bool = True,
) -> BagSummary:
    """Summarise and check the bag at `path`; see the module docstring for the checks.

    Args:
        path: bag folder (or a single .mcap / .db3 file).
        required_topics: topics that must be present and non-empty.
        contract: when given, joint names of JointState / JointTrajectory topics are checked.
        strict: raise BagError listing every problem (default); False returns them in the summary.
    """
    required = list(required_topics)
    problems: list[str] = []
    with BagReader(path) as bag:
        missing = [t for t in required if t not in bag.topics]
        if missing:
            have = [f"{t} ({i.msgtype})" for t, i in bag.topics.items()]
            problems.append(f"required topic(s) missing: {missing}; the bag has: {have or 'no topics'}")
        problems += [f"required topic {t} has no messages" for t in required if t in bag.topics and not bag.topics[t].count]
        problems += [info.problem for info in bag.topics.values() if info.problem]
        first: dict[str, int] = {}
        last: dict[str, int] = {}
        counts = dict.fromkeys(bag.topics, 0)
        orders = {t: _StampOrder() for t in bag.topics}
        joint_checks: dict[str, dict[tuple[str, ...], str]] = {}
        joint_bad: dict[str, tuple[int, str, int]] = {}  # topic -> (first index, problem, count)
        integrity = bag.check_integrity()  # MCAP chunk CRCs; a corrupt chunk cannot be read
        problems += integrity
        for msg in () if integrity else bag.messages():
            first.setdefault(msg.topic, msg.log_time_ns)
            last[msg.topic] = msg.log_time_ns
            counts[msg.topic] += 1
            if bag.topics[msg.topic].problem:
                continue
            stamp = bag.header_stamp_ns(msg)
            if stamp is not None:
                orders[msg.topic].add(msg.index, stamp)
            if contract is not None and msg.msgtype in JOINT_TYPES:
                names = tuple(getattr(bag.deserialize(msg), JOINT_TYPES[msg.msgtype]))
                cache = joint_checks.setdefault(msg.topic, {})
                if names not in cache:
                    cache[names] = _joint_problem(names, contract)
                if cache[names]:
                    index, text, n = joint_bad.get(msg.topic, (msg.index, cache[names], 0))
                    joint_bad[msg.topic] = (index, text, n + 1)
        for topic, order in orders.items():
            if order.count:
                problems.append(
                    f"out-of-order header stamps on {topic}: {order.first_problem} "
                    f"({order.count} message(s) go backwards)"
                )
        for topic, (index, text, n) in joint_bad.items():
            problems.append(f"wrong joint names on {topic} (message {index}, {n} message(s) affected): {text}")
        summary = BagSummary(
            path=Path(path),
            storage=bag.storage,
            start_ns=bag.start_ns,
            end_ns=bag.end_ns,
            message_count=bag.message_count,
            topics={
                t: TopicSummary(t, info.msgtype, info.count if integrity else counts[t], first.get(t, 0),
                                last.get(t, 0))
                for t, info in bag.topics.items()
            },
            problems=tuple(problems),
        )
    if strict and problems:
        raise BagError(f"bag {path} has {len(problems)} problem(s): " + "; ".join(problems), problems)
    return summary


def load_sensor_contract(path: str | os.PathLike) -> SensorContract:
    """A SensorContract from a JSON file: the contract itself, a policy contract ("sensors"),
    a dataset's meta.json ("contract") or an exported model's manifest.json ("contract" ->
    "sensors"). BagError naming the file otherwise."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        for key in ("contract", "sensors"):  # dataset meta.json / policy contract wrappers
            if isinstance(data, dict) and key in data:
                data = data[key]
        return SensorContract.from_dict(data)
    except (OSError, json.JSONDecodeError, ContractError, TypeError, AttributeError) as e:
        raise BagError(f"cannot load a sensor contract from {path}: {e}") from None


PROG = "moe_vla_bag_info"


def main(argv: Sequence[str] | None = None) -> int:
    """``moe_vla_bag_info BAG [--require TOPIC ...] [--contract FILE]``: exit 0 no problem found,
    1 problems found (listed), 2 bad arguments or an unreadable bag or contract."""
    return run_tool(PROG, lambda: _run(argv))


def _run(argv: Sequence[str] | None) -> int:
    parser = tool_parser(PROG, __doc__)
    add_bag_argument(parser, "bag folder, .mcap or .db3 file")
    parser.add_argument("--require", nargs="*", default=[], metavar="TOPIC", help="topics that must be present")
    parser.add_argument("--contract", help="JSON sensor contract to check joint names against")
    args = parser.parse_args(argv)
    contract = load_sensor_contract(args.contract) if args.contract else None
    summary = validate_bag(args.bag, args.require, contract, strict=False)
    print(summary.format())
    return 0 if summary.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
