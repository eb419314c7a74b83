"""Writing rosbag2 bags (mcap or sqlite3) with our typestore: a thin, typed layer over rosbags.

A `BagWriter` always creates a NEW bag folder (an existing path is refused, never touched),
stores every topic's full message definition and RIHS01 type hash (so `ros2 bag`, Foxglove and
rosbags can read our moe_vla_msgs types without our code) and accepts either serialized CDR
(what the recorder receives from the middleware) or rosbags message objects. On close, every
MCAP chunk gets its CRC32 (bags/mcap_integrity.py), which readers check.

    with BagWriter("run_01", storage="mcap") as bag:
        bag.add_topic("/instruction", "std_msgs/msg/String")
        bag.write("/instruction", t_ns, String(data="reach the red cube"))

Pure: rosbags only, no rclpy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path

from rosbags.interfaces import Connection, Qos
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from rosbags.typesys.store import Typestore

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.mcap_integrity import McapFormatError, write_chunk_crcs
from moe_vla_ros.bags.typestore import ensure_type, get_typestore

STORAGES: dict[str, StoragePlugin] = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
BAG_FORMAT_VERSION = 9


def check_storage(storage: str) -> StoragePlugin:
    """The rosbags plugin for a storage name; BagError naming the valid names otherwise."""
    try:
        return STORAGES[storage]
    except KeyError:
        raise BagError(f"unknown bag storage {storage!r}; use one of {sorted(STORAGES)}") from None


class BagWriter:
    """A new rosbag2 bag being written; a context manager that closes it (metadata included).

    Args:
        path: folder of the bag to create; must not exist (parents are created).
        storage: "mcap" (default, what ROS 2 records by default since Iron) or "sqlite3".
        typestore: types used to find definitions and hashes; `get_typestore()` by default.
        custom_data: string key/values stored in metadata.yaml (e.g. the sensor contract).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        storage: str = "mcap",
        *,
        typestore: Typestore | None = None,
        custom_data: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.storage = storage
        plugin = check_storage(storage)
        if self.path.exists():
            raise BagError(f"{self.path} already exists; refusing to overwrite it (choose a new bag path)")
        self.typestore = typestore if typestore is not None else get_typestore()
        self._writer = Writer(self.path, version=BAG_FORMAT_VERSION, storage_plugin=plugin)
        for key, value in (custom_data or {}).items():
            self._writer.set_custom_data(str(key), str(value))
        try:
            self._writer.open()
        except (WriterError, OSError) as e:
            raise BagError(f"cannot create bag {self.path}: {e}") from None
        self._connections: dict[str, Connection] = {}
        self._counts: dict[str, int] = {}
        self._closed = False

    @property
    def topics(self) -> dict[str, str]:
        """{topic: message type} of the topics added so far."""
        return {topic: conn.msgtype for topic, conn in self._connections.items()}

    @property
    def counts(self) -> dict[str, int]:
        """Messages written so far, per topic."""
        return dict(self._counts)

    def add_topic(self, topic: str, msgtype: str, *, qos: Sequence[Qos] = ()) -> None:
        """Declare `topic` with message type `msgtype` (e.g. "sensor_msgs/msg/Image").

        `qos` are the publishers' offered QoS profiles (stored for playback). Adding a topic
        again with the same type is a no-op; with another type it is a BagError.
        """
        self._check_open()
        if topic in self._connections:
            have = self._connections[topic].msgtype
            if have != msgtype:
                raise BagError(f"topic {topic} was added as {have}, cannot add it again as {msgtype}")
            return
        ensure_type(self.typestore, msgtype)
        try:
            conn = self._writer.add_connection(topic, msgtype, typestore=self.typestore, offered_qos_profiles=qos)
        except WriterError as e:
            raise BagError(f"cannot add topic {topic} ({msgtype}) to {self.path}: {e}") from None
        self._connections[topic] = conn
        self._counts[topic] = 0

    def write_raw(self, topic: str, timestamp_ns: int, data: bytes | memoryview) -> None:
        """Write one serialized (CDR) message received at `timestamp_ns` (ns since the epoch)."""
        conn = self._connection(topic)
        if timestamp_ns < 0:
            raise BagError(f"negative timestamp {timestamp_ns} for a message on {topic}")
        self._writer.write(conn, int(timestamp_ns), data)
        self._counts[topic] += 1

    def write(self, topic: str, timestamp_ns: int, message: object) -> None:
        """Serialize a rosbags message object of the topic's type and write it."""
        conn = self._connection(topic)
        data = self.typestore.serialize_cdr(message, conn.msgtype)
        self.write_raw(topic, timestamp_ns, data)

    def close(self) -> None:
        """Finish the storage file and write metadata.yaml; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.close()
        except (WriterError, OSError) as e:
            with suppress(Exception):
                self._writer.abort()
            raise BagError(f"could not finish bag {self.path}: {e}") from None
        if self.storage == "mcap":
            try:
                for mcap in sorted(self.path.glob("*.mcap")):
                    write_chunk_crcs(mcap)  # rosbags writes 0 ("no CRC"); readers then check them
            except (McapFormatError, OSError, ValueError) as e:
                raise BagError(f"could not write chunk CRCs of bag {self.path}: {e}") from None

    def _connection(self, topic: str) -> Connection:
        self._check_open()
        try:
            return self._connections[topic]
        except KeyError:
            raise BagError(
                f"topic {topic} was not added to {self.path}; added topics: {sorted(self._connections)}"
            ) from None

    def _check_open(self) -> None:
        if self._closed:
            raise BagError(f"bag {self.path} is already closed")

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc) -> None:
        # Close even when the body failed: everything written so far stays readable.
        self.close()
