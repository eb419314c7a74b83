"""Tests of bag -> dataset conversion (bags/to_dataset.py, demo_streams.py, episode_plan.py)
on generated bags whose ground truth is known (bags/synthetic.py)."""

import json
from dataclasses import replace

import numpy as np
import pytest

from moe_vla_ros.bags.demo_streams import StreamTopics, load_demo_streams
from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.reader import BagReader
from moe_vla_ros.bags.synthetic import SyntheticDemo, write_demo_bag
from moe_vla_ros.bags.to_dataset import BagToDatasetConfig, convert_bag_to_dataset, main
from moe_vla_ros.bags.typestore import get_typestore
from moe_vla_ros.bags.writer import BagWriter
from moe_vla_ros.data.dataset import DemoDataset

DEMO = SyntheticDemo()
CONFIG = BagToDatasetConfig(camera_topics=DEMO.camera_topics(), progress=False)


def _expected_grids(demo: SyntheticDemo, rate_hz: float = 10.0) -> list[np.ndarray]:
    """Step times (s) of each instruction's span: from the first joint state after the
    instruction arrived, 1/rate apart, up to the next instruction or the last joint state."""
    joints = demo.joint_stamps_s()
    arrivals = [t + demo.latency_s for t, _ in demo.instructions] + [joints[-1] + 1e-6]
    grids = []
    for start, stop in zip(arrivals, arrivals[1:]):
        first = joints[joints >= start - 1e-9][0]
        grids.append(np.arange(first, min(stop, joints[-1] + 1e-9), 1.0 / rate_hz))
    return grids


def _nearest_frame(demo: SyntheticDemo, t: float) -> int:
    return int(np.argmin(np.abs(demo.stamps_s(demo.camera_rate_hz) - t)))


def _expected_reasoning(demo: SyntheticDemo, grid: np.ndarray, span_start: float) -> list[str]:
    traces = demo.stamps_s(demo.reasoning_rate_hz)
    out = []
    for t in grid:
        ok = [n for n, s in enumerate(traces) if span_start <= s <= t + 1e-9]
        out.append(f"thinking {ok[-1]}" if ok else "")
    return out


def test_demo_with_trajectory_commands(demo_bag, tmp_path):
    path, demo = demo_bag
    contract = demo.contract(image_size=(24, 40))
    report = convert_bag_to_dataset(path, tmp_path / "ds", contract, CONFIG)
    grids = _expected_grids(demo)
    assert report.episode_lengths == tuple(len(g) for g in grids) == (30, 30)
    assert report.action_source == "command /joint_trajectory_controller/joint_trajectory"
    assert report.source_image_sizes == {"front": (48, 64), "wrist": (48, 64)}
    assert report.rates_hz["/joint_states"] == pytest.approx(50.0)
    dataset = DemoDataset(tmp_path / "ds")
    assert dataset.contract == contract and len(dataset) == 2
    for ep, grid, (t_instr, text) in zip(dataset, grids, demo.instructions):
        assert ep.instruction == text
        np.testing.assert_allclose(ep.timestamp, np.arange(len(grid)) * 0.1, atol=1e-9)
        np.testing.assert_allclose(ep.joint_position, demo.position(grid), atol=1e-6)
        np.testing.assert_allclose(ep.action, demo.command_target(grid + 0.1), atol=1e-6)
        assert ep.images["front"].shape == (len(grid), 24, 40, 3)
        for k, t in enumerate(grid):
            frame = _nearest_frame(demo, t)
            assert (ep.images["front"][k] == demo.frame_rgb("front", frame)[0, 0]).all(), (k, frame)
            assert (ep.images["wrist"][k] == demo.frame_rgb("wrist", frame)[0, 0]).all(), (k, frame)
        assert ep.reasoning == _expected_reasoning(demo, grid, t_instr + demo.latency_s)
    meta = json.loads((tmp_path / "ds" / "meta.json").read_text())
    assert meta["num_steps"] == 60 and meta["source"].startswith("bag:")


def test_next_joint_state_is_the_action_without_command_topic(demo_bag, tmp_path):
    path, demo = demo_bag
    report = convert_bag_to_dataset(path, tmp_path / "ds", demo.contract(), replace(CONFIG, command_topic=""))
    assert report.action_source == "next joint state"
    grids = _expected_grids(demo)
    grids[-1] = grids[-1][:-1]  # the last step has no later joint state
    assert report.episode_lengths == (30, 29) and report.dropped_steps == {"no next joint state": 1}
    for ep, grid in zip(DemoDataset(tmp_path / "ds"), grids):
        np.testing.assert_allclose(ep.action, demo.position(grid + 0.1), atol=1e-6)


def test_joint_state_gap_splits_the_episode(tmp_path):
    demo = write_demo_bag(tmp_path / "bag", replace(DEMO, joint_gap_s=(1.0, 1.5)), "sqlite3")
    report = convert_bag_to_dataset(tmp_path / "bag", tmp_path / "ds", demo.contract(), CONFIG)
    assert report.episode_lengths == (10, 15, 30)
    assert report.dropped_steps == {"joint state gap": 5}
    episodes = list(DemoDataset(tmp_path / "ds"))
    assert [e.instruction for e in episodes] == ["reach the red cube"] * 2 + ["push the blue cube to the left"]
    np.testing.assert_allclose(episodes[1].joint_position[0], demo.position(1.52), atol=1e-6)


def test_contract_mismatches_are_rejected_before_writing(demo_bag, tmp_path):
    path, demo = demo_bag
    out = tmp_path / "ds"
    wrong_joint = replace(demo.contract(), joint_names=("j1", "j9", "j3"))
    with pytest.raises(BagError, match=r"wrong joint names on /joint_states \(message 0\).*\['j9'\]"):
        convert_bag_to_dataset(path, out, wrong_joint, CONFIG)
    with pytest.raises(BagError, match=r"lacks topic\(s\) \['/camera/wrist/image_raw'\]"):
        convert_bag_to_dataset(path, out, demo.contract(), replace(CONFIG, camera_topics={}))
    with pytest.raises(BagError, match=r"input rates .*'/camera/front/image_raw': 20.0.* below 0.9 x .* 50 Hz"):
        convert_bag_to_dataset(path, out, demo.contract(control_rate_hz=50.0), CONFIG)
    with pytest.raises(BagError, match=r"camera_topics names \['left'\], not cameras of the contract"):
        convert_bag_to_dataset(path, out, demo.contract(), replace(CONFIG, camera_topics={"left": "/x"}))
    with pytest.raises(BagError, match="has type sensor_msgs/msg/JointState, expected sensor_msgs/msg/Image"):
        convert_bag_to_dataset(path, out, demo.contract(), replace(CONFIG, camera_topics={**DEMO.camera_topics(), "front": "/joint_states"}))
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no staging folder left either


def test_never_overwrites_an_existing_dataset(demo_bag, tmp_path):
    path, demo = demo_bag
    out = tmp_path / "ds"
    out.mkdir()
    (out / "meta.json").write_text("{}")
    with pytest.raises(BagError, match="already exists and is not empty; refusing to overwrite"):
        convert_bag_to_dataset(path, out, demo.contract(), CONFIG)
    assert [p.name for p in out.iterdir()] == ["meta.json"] and (out / "meta.json").read_text() == "{}"
    empty = tmp_path / "empty"
    empty.mkdir()
    convert_bag_to_dataset(path, empty, demo.contract(), CONFIG)
    assert len(DemoDataset(empty)) == 2


def test_failed_conversion_leaves_nothing_behind(tmp_path):
    demo = write_demo_bag(tmp_path / "src", replace(DEMO, duration_s=1.0, instructions=((0.0, "reach"),)), "mcap")
    store = get_typestore()
    broken = tmp_path / "broken"
    with BagReader(tmp_path / "src") as src, BagWriter(broken, "mcap") as dst:
        for topic, info in src.topics.items():
            dst.add_topic(topic, info.msgtype)
        for msg in src.messages():
            data = msg.data
            if msg.topic == "/camera/wrist/image_raw/compressed" and msg.index == 10:
                image = src.deserialize(msg)
                image.data = np.frombuffer(b"not a png at all", dtype=np.uint8)
                data = store.serialize_cdr(image, msg.msgtype)
            dst.write_raw(msg.topic, msg.log_time_ns, data)
    with pytest.raises(BagError, match=r"image 10 on /camera/wrist/image_raw/compressed cannot be converted"):
        convert_bag_to_dataset(broken, tmp_path / "out" / "ds", demo.contract(), CONFIG)
    assert list((tmp_path / "out").iterdir()) == []


def test_out_of_order_stamps_are_reported_with_topic_and_index(tmp_path):
    types = get_typestore().types
    with BagWriter(tmp_path / "bag", "mcap") as bag:
        bag.add_topic("/instruction", "std_msgs/msg/String")
        bag.add_topic("/joint_states", "sensor_msgs/msg/JointState")
        bag.write("/instruction", 1, types["std_msgs/msg/String"](data="go"))
        for i, stamp in enumerate([100, 200, 150]):
            state = types["sensor_msgs/msg/JointState"](
                header=types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=stamp, nanosec=0), frame_id=""),
                name=["j1", "j2", "j3"], position=np.zeros(3), velocity=np.zeros(0), effort=np.zeros(0),
            )
            bag.write("/joint_states", 10 + i, state)
    with BagReader(tmp_path / "bag") as bag, pytest.raises(
        BagError, match=r"out-of-order header stamps on /joint_states .* message 2 has 150.0+ s, earlier than message 1"
    ):
        load_demo_streams(bag, DEMO.contract(), StreamTopics({}, "/joint_states", "/instruction"), progress=False)


def test_config_validation_names_the_bad_value():
    with pytest.raises(BagError, match="image_slop_s must be a positive number of seconds, got -1"):
        BagToDatasetConfig(image_slop_s=-1)
    with pytest.raises(BagError, match="time_reference must be one of"):
        BagToDatasetConfig(time_reference="wall")
    with pytest.raises(BagError, match="min_episode_steps must be an integer >= 1"):
        BagToDatasetConfig(min_episode_steps=0)


def test_cli(demo_bag, tmp_path, capsys):
    path, demo = demo_bag
    contract_file = tmp_path / "contract.json"
    contract_file.write_text(json.dumps({"sensors": demo.contract().to_dict()}))
    args = [str(path), "--out", str(tmp_path / "ds"), "--contract", str(contract_file), "--no-progress",
            "--camera", "wrist=/camera/wrist/image_raw/compressed", "--task", "pick"]
    assert main(args) == 0
    assert "wrote 2 episode(s), 60 steps" in capsys.readouterr().out
    assert DemoDataset(tmp_path / "ds").episode(0).task == "pick"
    assert main(args) == 2
    assert "moe_vla_bag_to_dataset: error: " in (err := capsys.readouterr().err) and "refusing to overwrite" in err
    bad_camera = [str(path), "-o", str(tmp_path / "ds2"), "--contract", str(contract_file), "--camera", "wrist"]
    assert main(bad_camera) == 2
    assert "--camera takes NAME=TOPIC, got 'wrist'" in capsys.readouterr().err


def test_cli_several_bags(tmp_path, capsys):
    """Several bags: one dataset per bag in OUT/<bag name>/ (bags of the same name told apart by
    their parent folder), equal to converting each alone; a folder that is not a bag is reported
    in the fleet summary without stopping the rest, and the exit code is 1."""
    demo = SyntheticDemo(duration_s=3.0)
    bags = [tmp_path / "robot1" / "bag", tmp_path / "robot2" / "bag"]
    for bag in bags:
        write_demo_bag(bag, demo)
    (tmp_path / "not_a_bag").mkdir()
    contract_file = tmp_path / "contract.json"
    contract_file.write_text(json.dumps({"sensors": demo.contract().to_dict()}))
    common = ["--contract", str(contract_file), "--camera", "wrist=/camera/wrist/image_raw/compressed", "--no-progress"]
    fleet = [str(bags[0]), str(tmp_path / "not_a_bag"), str(bags[1])]
    assert main([*fleet, "-o", str(tmp_path / "out"), *common]) == 1
    run = capsys.readouterr()
    assert "2 of 3 bags ok, 1 failed" in run.out and "not_a_bag: BagError:" in run.out
    assert "moe_vla_bag_to_dataset: error: 1 of 3 bags failed" in run.err
    summary = json.loads((tmp_path / "out" / "fleet_summary.json").read_text())
    assert [(r["name"], r["status"]) for r in summary["per_bag"]] == [
        ("robot1_bag", "ok"), ("not_a_bag", "failed"), ("robot2_bag", "ok")]
    assert summary["totals"]["episodes"] == 2 and summary["per_bag"][0]["steps"] == summary["totals"]["steps"] // 2
    assert main([str(bags[0]), "-o", str(tmp_path / "alone"), *common]) == 0  # one bag: OUT is the dataset
    alone, in_fleet = DemoDataset(tmp_path / "alone"), DemoDataset(tmp_path / "out" / "robot1_bag")
    np.testing.assert_array_equal(alone.episode(0).action, in_fleet.episode(0).action)
    capsys.readouterr()
    # refused before any work: a missing bag, the same bag twice, an output folder in use, Ray options without Ray
    for argv, message in (([str(bags[0]), str(tmp_path / "missing")], "not found"),
                          ([str(bags[0]), str(tmp_path / "robot1" / ".." / "robot1" / "bag")], "given twice"),
                          ([*map(str, bags), "-o", str(tmp_path / "out")], "not empty"),
                          ([*map(str, bags), "--ray-num-cpus", "2"], "need --executor ray")):
        out = [] if "-o" in argv else ["-o", str(tmp_path / "new")]
        assert main([*argv, *out, *common]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
