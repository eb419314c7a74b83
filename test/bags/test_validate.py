"""Tests of moe_vla_ros/bags/validate.py: summary, problems, CLI."""

import json

import numpy as np
import pytest

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.synthetic import JOINT_STATE_TOPIC, SyntheticDemo
from moe_vla_ros.bags.typestore import get_typestore
from moe_vla_ros.bags.validate import load_sensor_contract, main, validate_bag
from moe_vla_ros.bags.writer import BagWriter


def _joint_state(names, stamp_ns):
    t = get_typestore().types
    stamp = t["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    return t["sensor_msgs/msg/JointState"](
        header=t["std_msgs/msg/Header"](stamp=stamp, frame_id=""), name=list(names),
        position=np.zeros(len(names)), velocity=np.zeros(0), effort=np.zeros(0),
    )


def _joint_bag(path, stamps_s, names=("j1", "j2", "j3")):
    with BagWriter(path, "mcap") as bag:
        bag.add_topic("/joint_states", "sensor_msgs/msg/JointState")
        for i, s in enumerate(stamps_s):
            bag.write("/joint_states", 10**9 + i * 10**7, _joint_state(names, int(s * 1e9)))
    return path


def test_summary_of_a_good_bag(demo_bag):
    path, demo = demo_bag
    summary = validate_bag(path, ["/camera/front/image_raw", JOINT_STATE_TOPIC], demo.contract())
    assert summary.ok and summary.problems == ()
    assert summary.message_count == sum(t.count for t in summary.topics.values())
    assert summary.topics[JOINT_STATE_TOPIC].count == 300
    assert summary.topics[JOINT_STATE_TOPIC].rate_hz == pytest.approx(50.0, rel=1e-3)
    assert summary.topics["/camera/wrist/image_raw/compressed"].msgtype == "sensor_msgs/msg/CompressedImage"
    assert summary.topics["/camera/front/image_raw"].rate_hz == pytest.approx(20.0, rel=1e-3)
    assert summary.duration_s == pytest.approx(demo.duration_s - 1 / demo.joint_rate_hz, abs=1e-6)
    text = summary.format()
    assert "/joint_states" in text and "problems: none" in text


def test_out_of_order_stamps_name_topic_and_index(tmp_path):
    path = _joint_bag(tmp_path / "bag", [1.0, 1.1, 1.2, 1.15, 1.3, 1.25])
    with pytest.raises(BagError, match=r"out-of-order header stamps on /joint_states: message 3 .* earlier than message 2") as err:
        validate_bag(path)
    assert "2 message(s) go backwards" in str(err.value)
    summary = validate_bag(path, strict=False)
    assert len(summary.problems) == 1 and not summary.ok


def test_wrong_joint_names_against_contract(tmp_path, demo_bag):
    path = _joint_bag(tmp_path / "bag", [1.0, 1.1], names=("j1", "elbow", "j3"))
    contract = SyntheticDemo().contract()
    with pytest.raises(BagError, match=r"wrong joint names on /joint_states \(message 0, 2 message\(s\) affected\): joints \['j2'\]"):
        validate_bag(path, contract=contract)
    validate_bag(path)  # no contract: names are not checked
    other = contract.__class__(("front", "wrist"), 32, 32, ("shoulder", "j2", "j3"), 10.0)
    summary = validate_bag(demo_bag[0], contract=other, strict=False)
    topics = {p.split(" ")[4] for p in summary.problems}
    assert topics == {"/joint_states", "/joint_trajectory_controller/joint_trajectory"}, summary.problems


def test_missing_and_empty_required_topics(tmp_path, demo_bag):
    with pytest.raises(BagError, match=r"required topic\(s\) missing: \['/camera/left/image_raw'\]; the bag has: .*/joint_states"):
        validate_bag(demo_bag[0], ["/camera/left/image_raw", JOINT_STATE_TOPIC])
    with BagWriter(tmp_path / "empty", "sqlite3") as bag:
        bag.add_topic("/joint_states", "sensor_msgs/msg/JointState")
    with pytest.raises(BagError, match="required topic /joint_states has no messages"):
        validate_bag(tmp_path / "empty", ["/joint_states"])


def test_unreadable_bag_raises_even_when_not_strict(tmp_path):
    with pytest.raises(BagError, match="does not exist"):
        validate_bag(tmp_path / "missing", strict=False)


def test_load_sensor_contract_from_the_three_file_shapes(tmp_path):
    contract = SyntheticDemo().contract()
    for i, wrap in enumerate([lambda d: d, lambda d: {"sensors": d}, lambda d: {"format": "x", "contract": d}]):
        f = tmp_path / f"c{i}.json"
        f.write_text(json.dumps(wrap(contract.to_dict())))
        assert load_sensor_contract(f) == contract
    # an exported model's manifest.json: {"contract": {"sensors": ...}}
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "m", "contract": {"sensors": contract.to_dict()}}))
    assert load_sensor_contract(tmp_path / "manifest.json") == contract
    (tmp_path / "bad.json").write_text('{"camera_names": []}')
    with pytest.raises(BagError, match="cannot load a sensor contract from .*bad.json"):
        load_sensor_contract(tmp_path / "bad.json")


def test_cli_exit_codes(tmp_path, demo_bag, capsys):
    contract_file = tmp_path / "contract.json"
    contract_file.write_text(json.dumps(SyntheticDemo().contract().to_dict()))
    assert main([str(demo_bag[0]), "--require", JOINT_STATE_TOPIC, "--contract", str(contract_file)]) == 0
    assert "problems: none" in capsys.readouterr().out
    assert main([str(demo_bag[0]), "--require", "/nope"]) == 1
    assert "required topic(s) missing" in capsys.readouterr().out
    assert main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("moe_vla_bag_info: error: ") and "does not exist" in err
