"""Tests of moe_vla_ros/bags/writer.py (read back through bags/reader.py)."""

import numpy as np
import pytest
from rosbags.typesys import Stores
from rosbags.typesys import get_typestore as rosbags_typestore

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.reader import BagReader
from moe_vla_ros.bags.typestore import get_typestore
from moe_vla_ros.bags.writer import BagWriter

STORAGES = ("mcap", "sqlite3")


def _write(path, storage, messages, **kwargs):
    with BagWriter(path, storage, **kwargs) as bag:
        for topic, msgtype, _, _ in messages:
            bag.add_topic(topic, msgtype)
        for topic, _, t_ns, msg in messages:
            bag.write(topic, t_ns, msg)
    return bag


def _same(a, b) -> bool:
    """Field-by-field equality of two rosbags messages (numpy arrays compared by value)."""
    if hasattr(a, "__dataclass_fields__"):
        return all(_same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):  # float32 fields come back rounded to float32
        return a == pytest.approx(b, rel=1e-6)
    return a == b


@pytest.mark.parametrize("storage", STORAGES)
def test_round_trip_identical_content(tmp_path, storage, sample_messages):
    path = tmp_path / "bag"
    bag = _write(path, storage, sample_messages, custom_data={"contract": "{}"})
    assert bag.counts["/reasoning_trace"] == 6
    store = get_typestore()
    with BagReader(path) as reader:
        assert reader.storage == storage
        assert reader.message_count == len(sample_messages)
        assert {t: i.count for t, i in reader.topics.items()} == {m[0]: 6 for m in sample_messages}
        assert reader.start_ns == sample_messages[0][2] and reader.end_ns == sample_messages[-1][2]
        assert reader.custom_data == {"contract": "{}"}
        read = list(reader.messages())
        assert [(m.topic, m.log_time_ns) for m in read] == [(m[0], m[2]) for m in sample_messages]
        for got, (topic, msgtype, _, original) in zip(read, sample_messages):
            assert got.msgtype == msgtype
            assert bytes(got.data) == bytes(store.serialize_cdr(original, msgtype))
            assert _same(reader.deserialize(got), original), topic
        assert [m.index for m in read if m.topic == "/joint_states"] == list(range(6))
        only = list(reader.messages(["/instruction"], start_ns=sample_messages[12][2]))
        assert [reader.deserialize(m).data for m in only] == ["instruction 2", "instruction 3", "instruction 4", "instruction 5"]


@pytest.mark.parametrize("storage", STORAGES)
def test_definitions_are_stored_so_a_plain_reader_knows_our_types(tmp_path, storage, sample_messages):
    path = tmp_path / "bag"
    _write(path, storage, sample_messages)
    plain = rosbags_typestore(Stores.ROS2_KILTED)  # knows nothing of moe_vla_msgs
    assert "moe_vla_msgs/msg/ReasoningTrace" not in plain.fielddefs
    with BagReader(path, typestore=plain) as reader:
        assert not reader.topics["/reasoning_trace"].problem
        trace = next(reader.deserialize(m) for m in reader.messages(["/reasoning_trace"]))
        assert trace.text == "step 0: move left"
        assert trace.expert_usage[0].layer_name == "trunk.0.ffn"
        assert reader.topics["/reasoning_trace"].type_hash == get_typestore().hash_rihs01("moe_vla_msgs/msg/ReasoningTrace")


def test_raw_bytes_are_written_unchanged(tmp_path):
    store = get_typestore()
    msg = store.types["std_msgs/msg/String"](data="raw")
    data = bytes(store.serialize_cdr(msg, "std_msgs/msg/String"))
    with BagWriter(tmp_path / "bag") as bag:
        bag.add_topic("/s", "std_msgs/msg/String")
        bag.add_topic("/s", "std_msgs/msg/String")  # same type again: no-op
        bag.write_raw("/s", 5, data)
    with BagReader(tmp_path / "bag") as reader:
        (got,) = list(reader.messages())
        assert bytes(got.data) == data and got.log_time_ns == 5


def test_refuses_to_overwrite_and_leaves_existing_files_untouched(tmp_path):
    existing = tmp_path / "bag"
    existing.mkdir()
    (existing / "keep.txt").write_text("precious")
    with pytest.raises(BagError, match="already exists; refusing to overwrite"):
        BagWriter(existing, "mcap")
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]
    assert (existing / "keep.txt").read_text() == "precious"


def test_writer_errors_name_the_problem(tmp_path):
    with pytest.raises(BagError, match="unknown bag storage 'rosbag1'"):
        BagWriter(tmp_path / "a", "rosbag1")
    assert not (tmp_path / "a").exists()
    with BagWriter(tmp_path / "b") as bag:
        with pytest.raises(BagError, match="unknown message type foo_msgs/msg/Bar"):
            bag.add_topic("/x", "foo_msgs/msg/Bar")
        bag.add_topic("/s", "std_msgs/msg/String")
        with pytest.raises(BagError, match="cannot add it again as std_msgs/msg/Bool"):
            bag.add_topic("/s", "std_msgs/msg/Bool")
        with pytest.raises(BagError, match=r"topic /y was not added .*'/s'"):
            bag.write_raw("/y", 1, b"\x00\x01\x00\x00")
    with pytest.raises(BagError, match="already closed"):
        bag.write_raw("/s", 1, b"\x00\x01\x00\x00")


def test_bag_is_closed_properly_when_the_body_fails(tmp_path, sample_messages):
    messages = sample_messages[:12]  # two of each kind
    with pytest.raises(RuntimeError, match="interrupted"):
        with BagWriter(tmp_path / "bag", "mcap") as bag:
            bag.add_topic("/joint_states", "sensor_msgs/msg/JointState")
            for topic, _, t_ns, msg in messages:
                if topic == "/joint_states":
                    bag.write(topic, t_ns, msg)
            raise RuntimeError("interrupted")
    with BagReader(tmp_path / "bag") as reader:
        assert reader.topics["/joint_states"].count == 2
