"""Bags that lie or were damaged are refused with the reason, and a killed recorder's bag is recoverable:
metadata.yaml vs storage, MCAP chunk CRCs, reindexing from the .mcap alone."""

import struct
from pathlib import Path

import numpy as np
import pytest

from moe_vla_ros.bags import validate
from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.mcap_integrity import CRC_OFFSET, MAGIC, OP_CHUNK, check_chunk_crcs
from moe_vla_ros.bags.reader import BagReader
from moe_vla_ros.bags.reindex import main as reindex_main
from moe_vla_ros.bags.reindex import reindex_bag
from moe_vla_ros.bags.typestore import get_typestore
from moe_vla_ros.bags.writer import BagWriter

STATES = "/joint_states"
WORDS = "/instruction"


def big_bag(path: Path, states: int = 310, payload: int = 5000) -> Path:
    """~310 JointStates (several 1 MiB chunks) and a few Strings."""
    t = get_typestore().types
    with BagWriter(path, "mcap", custom_data={"contract": "{}"}) as bag:
        bag.add_topic(STATES, "sensor_msgs/msg/JointState")
        bag.add_topic(WORDS, "std_msgs/msg/String")
        for i in range(states):
            stamp = t["builtin_interfaces/msg/Time"](sec=1 + i // 10, nanosec=(i % 10) * 100_000_000)
            header = t["std_msgs/msg/Header"](stamp=stamp, frame_id="")
            state = t["sensor_msgs/msg/JointState"](header=header, name=[f"j{k}" for k in range(3)],
                                                    position=np.full(payload // 8, float(i)), velocity=np.zeros(0),
                                                    effort=np.zeros(0))
            bag.write(STATES, 1_000_000_000 + i * 100_000_000, state)
            if i % 100 == 0:
                bag.write(WORDS, 1_000_000_000 + i * 100_000_000 + 1, t["std_msgs/msg/String"](data=f"step {i}"))
    return path


def mcap_of(bag: Path) -> Path:
    return next(bag.glob("*.mcap"))


def chunk_offsets(path: Path) -> list[int]:
    data = path.read_bytes()
    pos, found = len(MAGIC), []
    while pos + 9 <= len(data):
        opcode, length = struct.unpack_from("<BQ", data, pos)
        if opcode == OP_CHUNK:
            found.append(pos)
        if opcode == 0x0F:
            break
        pos += 9 + length
    return found


@pytest.fixture
def bag(tmp_path) -> Path:
    return big_bag(tmp_path / "run")


def all_messages(path: Path) -> list[tuple[str, int, bytes]]:
    with BagReader(path) as reader:
        return [(m.topic, m.log_time_ns, bytes(m.data)) for m in reader.messages()]


# ------------------------------------------------------------------------------ metadata.yaml


def test_topic_renamed_in_metadata_only_is_refused_by_info_with_nonzero_exit(bag, capsys):
    meta = bag / "metadata.yaml"
    meta.write_text(meta.read_text().replace(f"name: {STATES}", "name: /renamed_states"))
    assert validate.main([str(bag)]) == 2
    err = capsys.readouterr().err
    assert "does not match its storage" in err and "/renamed_states" in err and "310 msgs" in err
    assert "moe_vla_bag_reindex" in err
    with pytest.raises(BagError, match="metadata.yaml lists /renamed_states"):
        BagReader(bag)


def test_message_count_or_type_edited_in_metadata_is_refused(bag):
    meta = bag / "metadata.yaml"
    original = meta.read_text()
    meta.write_text(original.replace("message_count: 310", "message_count: 300"))
    with pytest.raises(BagError, match=f"{STATES}: metadata.yaml says 300 messages, the storage holds 310"):
        BagReader(bag)
    meta.write_text(original.replace("type: std_msgs/msg/String", "type: std_msgs/msg/Header"))
    with pytest.raises(BagError, match=r"lists /instruction \(std_msgs/msg/Header.*holds it as \['std_msgs/msg/String'\]"):
        BagReader(bag)


def test_reindex_rebuilds_a_metadata_yaml_that_no_longer_matches(bag, tmp_path):
    want = all_messages(bag)
    meta = bag / "metadata.yaml"
    meta.write_text(meta.read_text().replace(f"name: {STATES}", "name: /renamed_states"))
    report = reindex_bag(bag, tmp_path / "fixed")
    assert report.messages == {STATES: 310, WORDS: 4} and not report.skipped
    assert all_messages(tmp_path / "fixed") == want
    with BagReader(tmp_path / "fixed") as fixed:
        assert fixed.custom_data == {"contract": "{}"}


# ------------------------------------------------------------------------------ chunk CRCs


def test_written_bags_carry_chunk_crcs(bag):
    check = check_chunk_crcs(mcap_of(bag))
    assert check.chunks >= 2 and check.unchecked == 0 and not check.problems and not check.truncated
    with BagReader(bag) as reader:
        assert reader.check_integrity() == []


def flip_bytes_inside_a_chunk(path: Path, count: int = 64) -> None:
    data = bytearray(path.read_bytes())
    start = chunk_offsets(path)[1] + 200  # well inside the second chunk's message records
    for i in range(start, start + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_bytes_inside_a_chunk_fail_info_and_reading(bag, capsys):
    flip_bytes_inside_a_chunk(mcap_of(bag))
    assert validate.main([str(bag)]) == 1
    out = capsys.readouterr().out
    assert "fails its CRC check" in out and "problems: none" not in out
    with pytest.raises(BagError, match="fails its CRC check"):
        validate.validate_bag(bag)  # what evaluation runs before it reads the bag
    with BagReader(bag) as reader, pytest.raises(BagError, match="truncated or corrupt.*checksum"):
        list(reader.messages())


def test_bags_without_crcs_still_read_and_say_so(bag):
    path = mcap_of(bag)
    data = bytearray(path.read_bytes())
    for offset in chunk_offsets(path):
        data[offset + CRC_OFFSET : offset + CRC_OFFSET + 4] = b"\0\0\0\0"  # as other writers leave it
    path.write_bytes(bytes(data))
    with BagReader(bag) as reader:
        assert reader.check_integrity() == [] and reader.unchecked_chunks == len(chunk_offsets(path))
    assert validate.validate_bag(bag).ok


# ------------------------------------------------------------------------------ killed recorder


def kill_mid_write(bag: Path, keep_fraction: float = 0.7) -> None:
    """What SIGKILL leaves: the .mcap cut off (no summary, no footer) and no metadata.yaml."""
    path = mcap_of(bag)
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep_fraction)])
    (bag / "metadata.yaml").unlink()


def test_killed_recorder_bag_names_the_recovery_and_reindex_recovers_it(bag, tmp_path, capsys):
    want = all_messages(bag)
    kill_mid_write(bag)
    with pytest.raises(BagError, match="no metadata.yaml.*recover it with `moe_vla_bag_reindex"):
        BagReader(bag)
    assert reindex_main([str(bag), "--out", str(tmp_path / "recovered")]) == 0
    out = capsys.readouterr().out
    assert "recovered" in out and "ends without a footer" in out
    got = all_messages(tmp_path / "recovered")
    assert 0 < len(got) < len(want) and got == want[: len(got)], "a prefix, identical, in order"
    assert check_chunk_crcs(mcap_of(tmp_path / "recovered")).unchecked == 0
    assert validate.validate_bag(tmp_path / "recovered").ok
    assert sorted(p.name for p in bag.iterdir()) == ["run.mcap"], "the damaged bag is left as it was"


def test_reindex_refuses_what_it_cannot_recover(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert reindex_main([str(empty)]) == 2
    assert "expected one .mcap file" in capsys.readouterr().err
    (empty / "x.mcap").write_bytes(b"not an mcap file at all")
    assert reindex_main([str(empty), "-o", str(tmp_path / "out")]) == 2
    assert "not an MCAP file" in capsys.readouterr().err
