"""Reading rosbag2 bags (mcap or sqlite3): a thin, typed layer over rosbags' Reader.

`BagReader` opens a bag folder (or a single .mcap / .db3 file), turns every way a bag can be
broken into a `BagError` that names the file and the problem (a metadata.yaml whose topics,
types or counts differ from the storage's included: rosbags would skip those messages
silently; `check_integrity()` verifies the MCAP chunk CRCs), and iterates messages in
recording order as `BagMessage` (topic, type, receive time, CDR bytes). Types the typestore
lacks are registered from the definitions stored in the bag (or from installed .msg files);
a topic whose type stays unknown, or whose stored hash differs from our definition, can still
be read raw but not deserialised.

    with BagReader("run_01") as bag:
        bag.require_topics(["/joint_states"])
        for msg in bag.messages(["/joint_states"]):
            state = bag.deserialize(msg)

Pure: rosbags only, no rclpy.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import apsw
from rosbags.interfaces import Connection, MessageDefinitionFormat, Qos
from rosbags.rosbag2 import Reader, ReaderError
from rosbags.serde import SerdeError
from rosbags.typesys import get_types_from_idl
from rosbags.typesys.base import TypesysError
from rosbags.typesys.store import Typestore

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.mcap_integrity import McapFormatError, check_chunk_crcs
from moe_vla_ros.bags.typestore import deserialize_cdr, ensure_type, get_typestore, register_definition

HEADER_TYPE = "std_msgs/msg/Header"
REINDEX_COMMAND = "moe_vla_bag_reindex"
_STAMP = {0x00: struct.Struct(">iI"), 0x01: struct.Struct("<iI")}  # CDR encapsulation byte 1: endianness
_READ_ERRORS = (ReaderError, apsw.Error, OSError, EOFError, struct.error, ValueError, KeyError, IndexError)


@dataclass(frozen=True)
class BagMessage:
    """One recorded message.

    Attributes:
        topic: topic it was recorded on.
        msgtype: ROS type, e.g. "sensor_msgs/msg/Image".
        log_time_ns: when the recorder received it (ns; the bag's time axis).
        data: the serialized CDR bytes exactly as published.
        index: position of the message within its topic (0-based, recording order).
    """

    topic: str
    msgtype: str
    log_time_ns: int
    data: bytes | memoryview
    index: int


@dataclass(frozen=True)
class TopicInfo:
    """What a bag holds on one topic.

    Attributes:
        name: topic name.
        msgtype: ROS type of its messages.
        count: number of messages (from the bag's index).
        type_hash: RIHS01 hash stored in the bag ("" when the bag has none).
        qos: QoS profiles the recorded publishers offered (may be empty).
        problem: why its messages cannot be deserialised ("" when they can).
    """

    name: str
    msgtype: str
    count: int
    type_hash: str
    qos: tuple[Qos, ...]
    problem: str = ""


def _describe_read_error(path: Path, err: BaseException) -> str:
    """One line saying which part of the bag is broken, with rosbags' own words in brackets."""
    text = " ".join((str(err) or type(err).__name__).split())
    lower = text.lower()
    if "yaml" in lower or "metadata" in lower:
        return f"metadata.yaml of bag {path} is corrupt or incomplete ({text})"
    if "files are missing" in lower:
        return f"bag {path} is missing storage file(s) listed in its metadata.yaml ({text})"
    files = [path] if path.is_file() else sorted(path.iterdir())
    suffixes = {p.suffix for p in files}
    if isinstance(err, apsw.Error) or "database" in lower or ".db3" in suffixes:
        return f"sqlite3 bag storage of {path} is truncated or corrupt ({text})"
    if ".mcap" in suffixes:
        return f"mcap bag storage of {path} is truncated or corrupt ({text})"
    return f"cannot read bag {path}: {text}"


class BagReader:
    """An open bag; a context manager. Raises BagError for any unreadable or malformed bag."""

    def __init__(self, path: str | os.PathLike, *, typestore: Typestore | None = None) -> None:
        self.path = Path(path)
        self.typestore = typestore if typestore is not None else get_typestore()
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        if self.path.is_dir() and not (self.path / "metadata.yaml").is_file():
            found = sorted(p.name for p in self.path.iterdir())[:10]
            hint = ""
            if any(name.endswith(".mcap") for name in found):
                hint = (f"; if its recorder was killed before it closed the bag, recover it with "
                        f"`{REINDEX_COMMAND} {self.path}` (writes a new, complete bag next to it)")
            raise BagError(f"bag folder {self.path} has no metadata.yaml (it holds: {found}){hint}")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except (FileNotFoundError, *_READ_ERRORS) as e:
            raise BagError(_describe_read_error(self.path, e)) from None
        mismatches = self._metadata_mismatches()
        if mismatches:
            self._reader.close()
            fewer = any("the storage holds" in m and "messages" in m for m in mismatches)
            truncated = f" ({self.storage} bag storage of {self.path} may be truncated or corrupt)" if fewer else ""
            fix = (f"rebuild metadata.yaml from the storage with `{REINDEX_COMMAND} {self.path}`"
                   if self.storage == "mcap" else "`ros2 bag reindex` rebuilds the metadata.yaml of a sqlite3 bag")
            raise BagError(
                f"metadata.yaml of bag {self.path} does not match its storage{truncated} ({len(mismatches)} "
                f"problem(s): " + "; ".join(mismatches) + "). Messages of such topics would be skipped silently; "
                + fix,
                mismatches,
            )
        self._connections: dict[str, list[Connection]] = {}
        for conn in self._reader.connections:
            self._connections.setdefault(conn.topic, []).append(conn)
        try:
            self.topics: dict[str, TopicInfo] = {
                topic: self._topic_info(topic, conns) for topic, conns in sorted(self._connections.items())
            }
        except BaseException:
            self._reader.close()
            raise

    # -- metadata ---------------------------------------------------------------------------

    @property
    def storage(self) -> str:
        """"mcap" or "sqlite3"."""
        files = [self.path] if self.path.is_file() else list(self.path.iterdir())
        return "mcap" if any(p.suffix == ".mcap" for p in files) else "sqlite3"

    @property
    def message_count(self) -> int:
        return int(self._reader.message_count)

    @property
    def start_ns(self) -> int:
        """Receive time of the first message (0 for an empty bag)."""
        return int(self._reader.start_time) if self.message_count else 0

    @property
    def end_ns(self) -> int:
        """Receive time of the last message (0 for an empty bag)."""
        return int(self._reader.end_time) - 1 if self.message_count else 0

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) * 1e-9

    @property
    def custom_data(self) -> dict[str, str]:
        """metadata.yaml's custom_data (empty for a single storage file, which has none)."""
        metadata = getattr(self._reader.storage, "metadata", None)  # rosbags keeps it on the storage
        return dict(getattr(metadata, "custom", None) or {})

    def check_integrity(self) -> list[str]:
        """Verify the CRC of every MCAP chunk (reads the whole storage once); one line per problem.

        Chunks without a CRC (bags written by other tools or before CRCs were written) cannot
        be checked and are not problems; `unchecked_chunks` counts them afterwards.
        sqlite3 bags have no chunk checksums (empty list).
        """
        files = [self.path] if self.path.is_file() else sorted(self.path.glob("*.mcap"))
        problems: list[str] = []
        self.unchecked_chunks = 0
        for f in (f for f in files if f.suffix == ".mcap"):
            try:
                result = check_chunk_crcs(f)
            except (McapFormatError, OSError) as e:
                problems.append(f"{f} cannot be checked: {e}")
                continue
            problems += list(result.problems)
            self.unchecked_chunks += result.unchecked
        return problems

    def require_topics(self, topics: Iterable[str]) -> None:
        """BagError listing the requested topics that are missing, and the topics there are."""
        missing = [t for t in topics if t not in self.topics]
        if missing:
            have = [f"{t} ({info.msgtype}, {info.count} msgs)" for t, info in self.topics.items()]
            raise BagError(f"bag {self.path} lacks topic(s) {missing}; it has: {have or 'no topics'}")

    def require_type(self, topic: str, *msgtypes: str) -> str:
        """The topic's type if it is one of `msgtypes`; BagError naming both otherwise."""
        self.require_topics([topic])
        have = self.topics[topic].msgtype
        if have not in msgtypes:
            raise BagError(f"topic {topic} in {self.path} has type {have}, expected {' or '.join(msgtypes)}")
        return have

    # -- messages ---------------------------------------------------------------------------

    def messages(
        self,
        topics: Iterable[str] | None = None,
        *,
        start_ns: int | None = None,
        stop_ns: int | None = None,
    ) -> Iterator[BagMessage]:
        """Messages of `topics` (all when None) in receive-time order, in [start_ns, stop_ns)."""
        wanted = list(self.topics) if topics is None else list(topics)
        self.require_topics(wanted)
        conns = [c for t in wanted for c in self._connections[t]]
        counters = dict.fromkeys(wanted, 0)
        try:
            for conn, timestamp, data in self._reader.messages(conns, start=start_ns, stop=stop_ns):
                index = counters[conn.topic]
                counters[conn.topic] = index + 1
                yield BagMessage(conn.topic, conn.msgtype, int(timestamp), data, index)
        except _READ_ERRORS as e:
            raise BagError(_describe_read_error(self.path, e)) from None

    def deserialize(self, message: BagMessage) -> object:
        """The rosbags message object (numeric arrays as numpy) of a recorded message."""
        problem = self.topics[message.topic].problem
        if problem:
            raise BagError(problem)
        try:
            return deserialize_cdr(self.typestore, message.data, message.msgtype)
        except (SerdeError, TypesysError, struct.error, ValueError, IndexError, AssertionError) as e:
            raise BagError(
                f"message {message.index} on {message.topic} ({message.msgtype}) in {self.path} "
                f"cannot be deserialised: {e}"
            ) from None

    def decoded(self, topics: Iterable[str] | None = None) -> Iterator[tuple[BagMessage, object]]:
        """(message, deserialised object) pairs of `topics` in receive-time order."""
        for message in self.messages(topics):
            yield message, self.deserialize(message)

    def header_stamp_ns(self, message: BagMessage) -> int | None:
        """header.stamp (ns) of a message whose first field is a std_msgs/Header, read straight
        from the CDR bytes without deserialising the rest (fast for images); None otherwise."""
        fields = self.typestore.fielddefs.get(message.msgtype)
        if not fields or not fields[1] or fields[1][0][1][1] != HEADER_TYPE:
            return None
        data = message.data
        if len(data) < 12 or data[1] not in _STAMP:
            raise BagError(f"message {message.index} on {message.topic} in {self.path} is truncated")
        sec, nanosec = _STAMP[data[1]].unpack_from(data, 4)
        return sec * 1_000_000_000 + nanosec

    def close(self) -> None:
        if self._reader.is_open:
            self._reader.close()

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------

    def _metadata_mismatches(self) -> list[str]:
        """Differences between metadata.yaml's topics and what the storage files hold.

        rosbags matches them by (topic, type, serialization/QoS, hash) and silently skips the
        messages of a storage channel that metadata.yaml does not list the same way.
        """
        inner = self._reader.storage
        storages = getattr(inner, "storages", None)
        if not storages:  # a single storage file: its own index is all there is
            return []
        stored: dict[tuple[str, str], list[Connection]] = {}
        for storage in storages:
            for conn in storage.connections:
                stored.setdefault((conn.topic, conn.msgtype), []).append(conn)
        listed: dict[tuple[str, str], list[Connection]] = {}
        for conn in inner.connections:
            listed.setdefault((conn.topic, conn.msgtype), []).append(conn)
        problems = []
        for (topic, msgtype), conns in sorted(listed.items()):
            count = sum(c.msgcount for c in conns)
            matches = stored.get((topic, msgtype), [])
            if not matches:
                other = sorted(t for (name, t) in stored if name == topic)
                where = f"the storage holds it as {other}" if other else "the storage has no such topic"
                problems.append(f"metadata.yaml lists {topic} ({msgtype}, {count} msgs) but {where}")
                continue
            have = sum(c.msgcount for c in matches)
            if have != count:
                problems.append(f"{topic}: metadata.yaml says {count} messages, the storage holds {have}")
            if not any(m.ext == c.ext for m in matches for c in conns):
                problems.append(f"{topic}: serialization format or QoS in metadata.yaml differ from the storage's")
        for (topic, msgtype), conns in sorted(stored.items()):
            if (topic, msgtype) not in listed and not any(t == topic for t, _ in listed):
                n = sum(c.msgcount for c in conns)
                problems.append(f"the storage holds {topic} ({msgtype}, {n} msgs), which metadata.yaml does not list")
        return problems

    def _topic_info(self, topic: str, conns: list[Connection]) -> TopicInfo:
        first = conns[0]
        types = sorted({c.msgtype for c in conns})
        qos = tuple(q for c in conns for q in getattr(c.ext, "offered_qos_profiles", []))
        info = TopicInfo(topic, first.msgtype, sum(c.msgcount for c in conns), first.digest, qos)
        if len(types) > 1:
            return _with_problem(info, f"topic {topic} in {self.path} mixes message types {types}")
        problem = self._make_known(first)
        if not problem and first.digest and first.digest.startswith("RIHS01_"):
            ours = self.typestore.hash_rihs01(first.msgtype)
            if ours != first.digest:
                problem = (
                    f"topic {topic} in {self.path}: the bag's {first.msgtype} (hash {first.digest}) differs "
                    f"from our definition (hash {ours}); the message definition changed since recording"
                )
        return _with_problem(info, problem)

    def _make_known(self, conn: Connection) -> str:
        """Register the connection's type if needed; a problem description when impossible."""
        msgtype = conn.msgtype
        if msgtype in self.typestore.fielddefs:
            return ""
        try:
            if conn.msgdef.format == MessageDefinitionFormat.MSG and conn.msgdef.data:
                register_definition(self.typestore, msgtype, conn.msgdef.data)
            elif conn.msgdef.format == MessageDefinitionFormat.IDL and conn.msgdef.data:
                self.typestore.register(get_types_from_idl(conn.msgdef.data))
            else:
                ensure_type(self.typestore, msgtype)
        except (BagError, TypesysError, ValueError) as e:
            return (
                f"topic {conn.topic} in {self.path} has message type {msgtype}, which is unknown: "
                f"the bag stores no usable definition of it ({e})"
            )
        return "" if msgtype in self.typestore.fielddefs else f"message type {msgtype} of {conn.topic} is unknown"


def _with_problem(info: TopicInfo, problem: str) -> TopicInfo:
    if not problem:
        return info
    return TopicInfo(info.name, info.msgtype, info.count, info.type_hash, info.qos, problem)
