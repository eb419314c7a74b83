"""Recording scripted-expert episodes from the simulator into rosbag2 bags (bags/from_sim.py)."""

import json

import numpy as np
import pytest
from rosbags.interfaces import QosDurability, QosReliability

from moe_vla_ros.bags.demo_streams import median_rate_hz
from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.from_sim import CONTRACT_KEY, EPISODES_KEY, SimBagTopics, SimRecordingConfig, main, record_sim_bag
from moe_vla_ros.bags.reader import BagReader
from moe_vla_ros.bags.validate import validate_bag
from moe_vla_ros.contract import SensorContract
from moe_vla_ros.sim.config import JOINT_NAMES
from moe_vla_ros.sim.tasks import TASK_FAMILIES
from moe_vla_ros.spec.policy_node import default_params_files, global_topic, read_node_params

SMALL = dict(episodes=2, max_episode_s=1.5, image_size=32, camera_rate_hz=10.0, joint_state_rate_hz=50.0,
             progress=False)
TOPICS = ["/camera/front/image_raw", "/camera/wrist/image_raw", "/joint_states", "/instruction",
          "/joint_trajectory_controller/joint_trajectory"]


@pytest.fixture(scope="module", params=("mcap", "sqlite3"))
def recording(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(f"sim_{request.param}") / "bag"
    return record_sim_bag(path, SimRecordingConfig(storage=request.param, **SMALL))


def test_bag_is_valid_for_the_sim_contract(recording):
    contract = SensorContract.from_dict(recording.contract)
    summary = validate_bag(recording.path, TOPICS, contract)
    assert summary.ok and summary.storage in ("mcap", "sqlite3")
    assert contract.joint_names == JOINT_NAMES and contract.image_height == 32
    assert summary.topics["/instruction"].count == 2
    steps = sum(e.steps for e in recording.episodes)
    assert summary.topics["/joint_trajectory_controller/joint_trajectory"].count == steps
    with BagReader(recording.path) as bag:
        joint_ns = np.array([m.log_time_ns for m in bag.messages(["/joint_states"])])
    assert median_rate_hz(joint_ns) == pytest.approx(50.0, rel=0.02)
    assert summary.topics["/camera/front/image_raw"].count == summary.topics["/camera/wrist/image_raw"].count


def test_messages_are_what_a_robot_publishes(recording):
    with BagReader(recording.path) as bag:
        image = next(bag.decoded(["/camera/wrist/image_raw"]))
        state = next(bag.decoded(["/joint_states"]))
        msg, command = next(bag.decoded(["/joint_trajectory_controller/joint_trajectory"]))
        custom = bag.custom_data
        qos = {topic: info.qos for topic, info in bag.topics.items()}
    msg_image, img = image
    assert (img.encoding, img.height, img.width, img.step) == ("rgb8", 32, 32, 96)
    assert img.header.frame_id == "wrist_camera_optical_frame"
    assert bag.header_stamp_ns(msg_image) == msg_image.log_time_ns  # sim time is bag time
    assert list(state[1].name) == list(JOINT_NAMES) and len(state[1].velocity) == len(JOINT_NAMES)
    assert list(command.joint_names) == list(JOINT_NAMES) and len(command.points) == 1
    assert command.points[0].time_from_start.nanosec == 100_000_000  # one control period ahead
    assert msg.log_time_ns * 1e-9 == pytest.approx(recording.episodes[0].start_s)  # first command at the start
    assert json.loads(custom[CONTRACT_KEY]) == recording.contract
    assert qos["/instruction"][0].durability == QosDurability.TRANSIENT_LOCAL  # latched, as sim_node publishes it
    assert qos["/joint_states"][0].reliability == QosReliability.RELIABLE
    planned = json.loads(custom[EPISODES_KEY])
    assert [p["instruction"] for p in planned] == [e.task.instruction for e in recording.episodes]


def test_episodes_are_separated_by_silence_and_start_with_their_instruction(recording):
    first, second = recording.episodes
    assert first.task.family == TASK_FAMILIES[0] and second.task.family == "push"
    assert second.start_s == pytest.approx(first.end_s + 1.0)
    with BagReader(recording.path) as bag:
        instructions = [(m.log_time_ns * 1e-9, o.data) for m, o in bag.decoded(["/instruction"])]
        joint_times = np.array([m.log_time_ns * 1e-9 for m in bag.messages(["/joint_states"])])
    assert instructions == [(pytest.approx(e.start_s), e.task.instruction) for e in recording.episodes]
    in_gap = (joint_times > first.end_s + 1e-6) & (joint_times < second.start_s - 1e-6)
    assert not in_gap.any()
    assert joint_times[0] == pytest.approx(1.0)  # start_time_s: a zero stamp would mean "unset"


def test_same_seed_records_the_same_commands(tmp_path):
    cfg = SimRecordingConfig(**{**SMALL, "episodes": 1, "max_episode_s": 0.5})
    targets = []
    for name in ("a", "b"):
        record_sim_bag(tmp_path / name, cfg)
        with BagReader(tmp_path / name) as bag:
            commands = bag.decoded(["/joint_trajectory_controller/joint_trajectory"])
            targets.append([np.asarray(o.points[0].positions) for _, o in commands])
    np.testing.assert_array_equal(np.array(targets[0]), np.array(targets[1]))


def test_topics_are_those_of_the_sim_arm_robot_file():
    params = read_node_params(default_params_files("sim_arm"))
    topics = SimBagTopics()
    name = global_topic  # the robot file's relative names, for a node in the root namespace
    assert [topics.camera(c) for c in params["robot.camera_names"]] == [name(t) for t in params["topics.camera_topics"]]
    assert (topics.joint_states, topics.instruction, topics.command) == (
        name(params["topics.joint_states"]), name(params["topics.instruction"]), name(params["topics.trajectory"]))


def test_existing_path_is_refused_and_untouched(tmp_path):
    (tmp_path / "bag").mkdir()
    (tmp_path / "bag" / "keep.txt").write_text("mine")
    with pytest.raises(BagError, match="already exists"):
        record_sim_bag(tmp_path / "bag", SimRecordingConfig(**SMALL))
    assert [p.name for p in (tmp_path / "bag").iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("bad, match", [
    (dict(episodes=0), "episodes"), (dict(tasks=("fly",)), "tasks"),
    (dict(joint_state_rate_hz=0.0), "joint_state_rate_hz"),
    (dict(cameras=("front", "front")), "duplicates"), (dict(storage="zip"), "storage"),
    (dict(control_rate_hz=7.0), "simulator"), (dict(max_episode_s=-1.0), "max_episode_s"),
])
def test_invalid_config_names_the_field(bad, match):
    with pytest.raises(BagError, match=match):
        SimRecordingConfig(**{**SMALL, **bad})


@pytest.mark.parametrize("bad, match", [(dict(camera_pattern="/cam"), "camera_pattern"),
                                        (dict(command="cmd"), "command")])
def test_invalid_topics_are_refused(bad, match):
    with pytest.raises(BagError, match=match):
        SimBagTopics(**bad)


def test_command_line(tmp_path, capsys):
    args = ["--out", str(tmp_path / "bag"), "--episodes", "1", "--max-episode-seconds", "0.5", "--image-size", "16",
            "--camera-rate", "10", "--storage", "sqlite3", "--no-progress"]
    assert main(args) == 0
    assert "wrote 1 episode(s)" in capsys.readouterr().out
    assert validate_bag(tmp_path / "bag", TOPICS).storage == "sqlite3"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "moe_vla_bag_from_sim: error:" in err and "already exists" in err
    assert main(["-o", str(tmp_path / "other"), "--episodes", "0"]) == 2
    assert "moe_vla_bag_from_sim: error: episodes" in capsys.readouterr().err
