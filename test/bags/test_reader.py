"""Tests of moe_vla_ros/bags/reader.py: every broken bag is a BagError naming the problem."""

import hashlib
import shutil
from pathlib import Path

import pytest
from rosbags.rosbag2 import Writer

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.reader import BagReader
from moe_vla_ros.bags.typestore import get_typestore
from moe_vla_ros.bags.writer import BagWriter

STORAGES = ("mcap", "sqlite3")


def _small_bag(path: Path, storage: str, sample_messages) -> Path:
    with BagWriter(path, storage) as bag:
        for topic, msgtype, t_ns, msg in sample_messages:
            bag.add_topic(topic, msgtype)
            bag.write(topic, t_ns, msg)
    return path


def _fingerprint(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _storage_file(bag: Path) -> Path:
    return next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))


@pytest.mark.parametrize("storage,fraction", [("mcap", 0.5), ("mcap", 0.97), ("sqlite3", 0.5), ("sqlite3", 0.9)])
def test_truncated_storage_file(tmp_path, sample_messages, storage, fraction):
    bag = _small_bag(tmp_path / "bag", storage, sample_messages)
    data_file = _storage_file(bag)
    data_file.write_bytes(data_file.read_bytes()[: int(data_file.stat().st_size * fraction)])
    before = _fingerprint(bag)
    # A cut-off sqlite3 file may still open: then its counts differ from metadata.yaml's.
    with pytest.raises(BagError, match=f"{storage} bag storage of .*bag (is|may be) truncated or corrupt"):
        with BagReader(bag) as reader:
            list(reader.messages())
    assert _fingerprint(bag) == before  # reading never modifies a bag


def test_truncated_single_mcap_file(tmp_path, sample_messages):
    bag = _small_bag(tmp_path / "bag", "mcap", sample_messages)
    single = tmp_path / "cut.mcap"
    single.write_bytes(_storage_file(bag).read_bytes()[:-40])
    with pytest.raises(BagError, match="mcap bag storage of .*cut.mcap is truncated or corrupt"):
        BagReader(single)


def test_single_storage_file_can_be_read_without_metadata(tmp_path, sample_messages):
    bag = _small_bag(tmp_path / "bag", "mcap", sample_messages)
    with BagReader(_storage_file(bag)) as reader:
        assert reader.message_count == len(sample_messages)


@pytest.mark.parametrize(
    "text,match",
    [
        ("rosbag2_bagfile_information: [unclosed\n", "metadata.yaml of bag .* is corrupt"),
        ("rosbag2_bagfile_information:\n  version: 9\n", "metadata.yaml of bag .* is corrupt or incomplete.*relative_file_paths"),
    ],
)
def test_corrupt_metadata(tmp_path, sample_messages, text, match):
    bag = _small_bag(tmp_path / "bag", "mcap", sample_messages)
    (bag / "metadata.yaml").write_text(text)
    with pytest.raises(BagError, match=match):
        BagReader(bag)
    assert (bag / "metadata.yaml").read_text() == text


def test_missing_bag_missing_metadata_missing_storage_file(tmp_path, sample_messages):
    with pytest.raises(BagError, match="does not exist"):
        BagReader(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="has no metadata.yaml"):
        BagReader(tmp_path / "empty")
    bag = _small_bag(tmp_path / "bag", "sqlite3", sample_messages)
    _storage_file(bag).unlink()
    with pytest.raises(BagError, match="missing storage file"):
        BagReader(bag)


@pytest.mark.parametrize("storage", STORAGES)
def test_missing_topic_lists_what_is_there(tmp_path, sample_messages, storage):
    bag = _small_bag(tmp_path / "bag", storage, sample_messages)
    with BagReader(bag) as reader:
        with pytest.raises(BagError, match=r"lacks topic\(s\) \['/camera/wrist/image_raw'\]") as err:
            reader.require_topics(["/joint_states", "/camera/wrist/image_raw"])
        assert "/camera/front/image_raw (sensor_msgs/msg/Image, 6 msgs)" in str(err.value)
        with pytest.raises(BagError, match="lacks topic"):
            list(reader.messages(["/nope"]))
        with pytest.raises(BagError, match="has type std_msgs/msg/String, expected sensor_msgs/msg/JointState"):
            reader.require_type("/instruction", "sensor_msgs/msg/JointState")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_unknown_message_type_without_stored_definition(tmp_path, storage):
    from rosbags.rosbag2 import StoragePlugin

    path = tmp_path / "bag"
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:  # a foreign tool's bag
        conn = writer.add_connection("/gadget", "gadget_msgs/msg/Reading", msgdef="", rihs01="RIHS01_" + "0" * 64)
        writer.write(conn, 10, b"\x00\x01\x00\x00\x01\x00\x00\x00")
        std = writer.add_connection("/s", "std_msgs/msg/String", typestore=get_typestore())
        writer.write(std, 11, bytes(get_typestore().serialize_cdr(get_typestore().types["std_msgs/msg/String"](data="ok"), "std_msgs/msg/String")))
    with BagReader(path) as reader:
        problem = reader.topics["/gadget"].problem
        assert "gadget_msgs/msg/Reading" in problem and "unknown" in problem
        raw = list(reader.messages(["/gadget"]))
        assert len(raw) == 1 and bytes(raw[0].data) == b"\x00\x01\x00\x00\x01\x00\x00\x00"  # still readable raw
        with pytest.raises(BagError, match="gadget_msgs/msg/Reading, which is unknown"):
            reader.deserialize(raw[0])
        assert reader.deserialize(next(reader.messages(["/s"]))).data == "ok"


def test_changed_definition_is_detected_by_hash(tmp_path):
    path = tmp_path / "bag"
    store = get_typestore()
    with Writer(path, version=9) as writer:
        msgdef, _ = store.generate_msgdef("std_msgs/msg/String", ros_version=2)
        conn = writer.add_connection("/s", "std_msgs/msg/String", msgdef=msgdef, rihs01="RIHS01_" + "ab" * 32)
        writer.write(conn, 1, b"\x00\x01\x00\x00\x01\x00\x00\x00\x00")
    with BagReader(path) as reader:
        assert "differs from our definition" in reader.topics["/s"].problem
        with pytest.raises(BagError, match="definition changed since recording"):
            reader.deserialize(next(reader.messages()))


def test_header_stamp_read_from_cdr_without_deserialising(tmp_path, sample_messages):
    bag = _small_bag(tmp_path / "bag", "mcap", sample_messages)
    with BagReader(bag) as reader:
        for msg in reader.messages():
            stamp = reader.header_stamp_ns(msg)
            if msg.msgtype == "std_msgs/msg/String":
                assert stamp is None
            else:
                h = reader.deserialize(msg).header.stamp
                assert stamp == h.sec * 10**9 + h.nanosec


def test_bag_folder_can_be_renamed(tmp_path, sample_messages):
    bag = _small_bag(tmp_path / "bag", "sqlite3", sample_messages)
    copy = tmp_path / "copy"
    shutil.copytree(bag, copy)
    with BagReader(bag) as a, BagReader(copy) as b:
        assert [bytes(m.data) for m in a.messages()] == [bytes(m.data) for m in b.messages()]
