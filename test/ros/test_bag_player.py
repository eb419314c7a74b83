"""Tests of moe_vla_ros/ros/bag_player.py on a real ROS graph: playback, /clock, step mode,
filtering/remapping, and replay_and_record with an echo node."""

from pathlib import Path

import pytest

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.reader import BagReader
from moe_vla_ros.bags.synthetic import SyntheticDemo, write_demo_bag, write_image_bag

pytestmark = pytest.mark.ros

IMAGE = "/camera/front/image_raw"
NS = 1_000_000_000


@pytest.fixture(scope="module")
def image_bag(tmp_path_factory) -> Path:
    """20 images 32x32 at 20 Hz (0.95 s of bag time); frame_id is the frame index."""
    path = tmp_path_factory.mktemp("player") / "images"
    write_image_bag(path, 20, 32, 32, rate_hz=20.0, storage="mcap")
    return path


@pytest.fixture(scope="module")
def demo_bag(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("player") / "demo"
    write_demo_bag(path, SyntheticDemo(), "sqlite3")
    return path


def _listener(context, *, sim_time: bool = False):
    """A node recording received images (frame ids) and /clock values."""
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image

    overrides = [Parameter("use_sim_time", value=True)] if sim_time else []
    node = Node("listener", context=context, parameter_overrides=overrides)
    node.frames, node.clocks = [], []
    node.create_subscription(Image, IMAGE, lambda m: node.frames.append(int(m.header.frame_id)), 100)
    node.create_subscription(Clock, "/clock", lambda m: node.clocks.append(m.clock.sec * NS + m.clock.nanosec), 1000)
    return node


def _executor(context, *nodes):
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=context)
    for node in nodes:
        executor.add_node(node)
    return executor


def test_plays_in_order_with_clock_at_the_requested_rate(ros_context, image_bag):
    from moe_vla_ros.ros.bag_player import BagPlayer, PlayerConfig
    from moe_vla_ros.ros.testing import spin_until

    listener = _listener(ros_context, sim_time=True)
    player = BagPlayer(image_bag, PlayerConfig(rate=2.0), context=ros_context)
    executor = _executor(ros_context, listener, player)
    with BagReader(image_bag) as bag:
        stamps = [m.log_time_ns for m in bag.messages()]
    stats = player.play(executor)  # waits for the listener to match first
    spin_until(executor, lambda: len(listener.frames) == 20, what="all 20 frames")
    assert listener.frames == list(range(20))
    assert stats.messages == 20 and stats.per_topic == {IMAGE: 20}
    bag_s = (stamps[-1] - stamps[0]) / NS  # 0.95 s
    assert 0.5 * bag_s / 2.0 < stats.wall_s < 3.0 * bag_s / 2.0 + 0.5, stats  # loose: ~0.48 s
    spin_until(executor, lambda: listener.clocks and listener.clocks[-1] == stamps[-1], what="/clock at the last stamp")
    assert listener.clocks == sorted(listener.clocks) and listener.clocks[0] >= stamps[0]
    assert listener.get_clock().now().nanoseconds == stamps[-1]  # use_sim_time follows the bag
    player.close()
    for node in (player, listener):
        node.destroy_node()
    executor.shutdown()


def test_step_mode_publishes_one_message_per_call(ros_context, image_bag):
    from moe_vla_ros.ros.bag_player import BagPlayer, PlayerConfig
    from moe_vla_ros.ros.testing import spin_until

    listener = _listener(ros_context)
    player = BagPlayer(image_bag, PlayerConfig(start_offset_s=0.5), context=ros_context)
    executor = _executor(ros_context, listener, player)
    assert player.wait_for_subscribers(15.0, [IMAGE, "/clock"], executor) == []
    with BagReader(image_bag) as bag:
        stamps = [m.log_time_ns for m in bag.messages()][10:]  # frames at >= 0.5 s
    for i, stamp in enumerate(stamps):
        message = player.step()
        assert message.log_time_ns == stamp and message.index == i
        spin_until(executor, lambda: len(listener.frames) == i + 1, what=f"frame {10 + i}")
        spin_until(executor, lambda: listener.clocks and listener.clocks[-1] == stamp, what=f"/clock {stamp}")
        assert player.current_bag_time_ns() == stamp
    assert listener.frames == list(range(10, 20))
    assert player.step() is None and player.finished
    player.close()
    for node in (player, listener):
        node.destroy_node()
    executor.shutdown()


def test_waits_for_the_named_reader_of_topics_it_does_not_play(ros_context, image_bag):
    """reader_node/reader_topics: playing waits until that node (in its namespace) subscribes to the
    topics (e.g. a recorder of the outputs); another node's subscription does not count."""
    from rclpy.node import Node
    from std_msgs.msg import String

    from moe_vla_ros.ros.bag_player import BagPlayer, PlayerConfig

    with pytest.raises(BagError, match="go together"):
        PlayerConfig(reader_node="/ns/recorder")
    with pytest.raises(BagError, match="fully qualified"):
        PlayerConfig(reader_node="recorder", reader_topics=("/out",))
    listener = _listener(ros_context)
    other = Node("recorder", namespace="/elsewhere", context=ros_context)
    other.create_subscription(String, "/ns/out", lambda m: None, 10)
    player = BagPlayer(image_bag, PlayerConfig(reader_node="/ns/recorder", reader_topics=("/ns/out",)),
                       context=ros_context)
    executor = _executor(ros_context, listener, other, player)
    assert player.wait_for_subscribers(1.0, None, executor) == ["/ns/out"]  # the image topic is matched
    recorder = Node("recorder", namespace="/ns", context=ros_context)
    recorder.create_subscription(String, "/ns/out", lambda m: None, 10)
    executor.add_node(recorder)
    assert player.wait_for_subscribers(15.0, None, executor) == []
    player.close()
    for node in (player, listener, other, recorder):
        node.destroy_node()
    executor.shutdown()


def test_topic_filter_remap_and_start_offset(ros_context, demo_bag):
    from rclpy.node import Node
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String

    from moe_vla_ros.ros.bag_player import BagPlayer, PlayerConfig
    from moe_vla_ros.ros.testing import spin_until

    with pytest.raises(BagError, match=r"cannot remap \['/nope'\]"):
        BagPlayer(demo_bag, PlayerConfig(remap={"/nope": "/x"}), context=ros_context)
    with pytest.raises(BagError, match=r"lacks topic\(s\) \['/nope'\]"):
        BagPlayer(demo_bag, PlayerConfig(topics=("/nope",)), context=ros_context)
    with pytest.raises(BagError, match="rate must be in"):
        PlayerConfig(rate=-1.0)

    node = Node("remap_listener", context=ros_context)
    states, texts = [], []
    node.create_subscription(JointState, "/robot/joint_states", states.append, 500)
    node.create_subscription(String, "/instruction", lambda m: texts.append(m.data), 10)
    config = PlayerConfig(
        rate=0.0, start_offset_s=3.0, topics=("/joint_states", "/instruction"),
        remap={"/joint_states": "/robot/joint_states"}, publish_clock=False,
    )
    player = BagPlayer(demo_bag, config, context=ros_context)
    assert player.topics == {"/robot/joint_states": "sensor_msgs/msg/JointState", "/instruction": "std_msgs/msg/String"}
    executor = _executor(ros_context, node, player)
    stats = player.play(executor)
    # bag time starts at the first message (0.002 s); the offset keeps joint states from 3.002 s on
    assert stats.per_topic == {"/robot/joint_states": 150, "/instruction": 1}
    spin_until(executor, lambda: len(states) == 150 and texts, what="150 joint states and the instruction")
    assert texts == ["push the blue cube to the left"]
    assert states[0].header.stamp.sec * NS + states[0].header.stamp.nanosec == SyntheticDemo().to_ns(3.0)
    player.close()
    for n in (player, node):
        n.destroy_node()
    executor.shutdown()


def test_replay_and_record_captures_what_a_node_publishes(ros_context, demo_bag, tmp_path):
    from rclpy.node import Node
    from sensor_msgs.msg import JointState

    from moe_vla_msgs.msg import ReasoningTrace
    from moe_vla_ros.ros.bag_player import PlayerConfig, replay_and_record

    echo = Node("echo", context=ros_context)
    trace_pub = echo.create_publisher(ReasoningTrace, "/echo_trace", 500)

    def on_state(state: JointState) -> None:
        trace_pub.publish(ReasoningTrace(header=state.header, text=",".join(f"{q:.4f}" for q in state.position)))

    echo.create_subscription(JointState, "/joint_states", on_state, 500)
    executor = _executor(ros_context, echo)
    out = tmp_path / "out"
    result = replay_and_record(
        demo_bag, out, ["/echo_trace"], rate=4.0, player_config=PlayerConfig(topics=("/joint_states",)),
        context=ros_context, executor=executor, idle_timeout_s=0.5,
    )
    assert result.playback.messages == 300 and result.recorded == {"/echo_trace": 300}
    with BagReader(demo_bag) as src:
        states = [src.deserialize(m) for m in src.messages(["/joint_states"])]
        start, end = src.start_ns, src.end_ns
    with BagReader(out) as bag:
        assert bag.storage == "mcap"
        traces = [(m.log_time_ns, bag.deserialize(m)) for m in bag.messages(["/echo_trace"])]
    assert [t.header.stamp.sec * NS + t.header.stamp.nanosec for _, t in traces] == [
        s.header.stamp.sec * NS + s.header.stamp.nanosec for s in states
    ]
    assert traces[5][1].text == ",".join(f"{q:.4f}" for q in states[5].position)
    log_times = [t for t, _ in traces]
    assert log_times == sorted(log_times) and start <= log_times[0] and log_times[-1] <= end  # bag time axis
    echo.destroy_node()
    executor.shutdown()


def test_player_cli_plays_a_bag_and_reports(image_bag):
    import subprocess
    import sys

    from moe_vla_ros.ros.testing import isolated_ros_env

    args = [sys.executable, "-m", "moe_vla_ros.ros.bag_player", str(image_bag), "--rate", "0", "--wait-timeout", "0",
            "--remap", f"{IMAGE}:=/cli/image"]
    done = subprocess.run(args, env=isolated_ros_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "played 20 messages" in done.stdout
    bad = subprocess.run([*args[:3], str(image_bag.parent / "missing")], env=isolated_ros_env(),
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_player_refuses_a_renamed_topic_and_a_corrupt_chunk_before_publishing(ros_context, tmp_path):
    import shutil
    import subprocess
    import sys

    from moe_vla_ros.ros.bag_player import BagPlayer
    from moe_vla_ros.ros.testing import isolated_ros_env

    renamed = tmp_path / "renamed"
    write_image_bag(renamed, 310, 32, 32, rate_hz=20.0, storage="mcap")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(renamed, corrupt)
    meta = renamed / "metadata.yaml"
    meta.write_text(meta.read_text().replace(f"name: {IMAGE}", "name: /camera/renamed"))
    with pytest.raises(BagError, match="does not match its storage.*/camera/renamed"):
        BagPlayer(renamed, context=ros_context)
    mcap = next(corrupt.glob("*.mcap"))
    data = bytearray(mcap.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):  # inside the first chunk's image data
        data[i] ^= 0xFF
    mcap.write_bytes(bytes(data))
    with pytest.raises(BagError, match="corrupt, nothing played.*CRC"):
        BagPlayer(corrupt, context=ros_context)
    for bag, reason in ((renamed, "does not match its storage"), (corrupt, "fails its CRC check")):
        done = subprocess.run([sys.executable, "-m", "moe_vla_ros.ros.bag_player", str(bag), "--rate", "0",
                               "--wait-timeout", "0"], env=isolated_ros_env(), capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 2 and reason in done.stderr, done.stdout + done.stderr
        assert "played" not in done.stdout
