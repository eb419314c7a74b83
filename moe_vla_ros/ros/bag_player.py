"""Play a rosbag2 bag on the ROS graph: raw CDR on the recorded topics, plus /clock.

`BagPlayer` is a node that publishes every recorded message, unchanged (serialized CDR; no
deserialisation), on its topic (optionally remapped or filtered), and bag time on /clock
(rosgraph_msgs/Clock) so nodes running with ``use_sim_time`` follow the recording. Timing:
``rate`` 1.0 is real time, 2.0 twice as fast, 0 as fast as possible; `step()` publishes one
message per call instead (deterministic tests, stepping through an evaluation).

Publisher QoS follows what the recorded publishers offered: reliable unless they were all
best effort, transient local if they all were (a latched instruction stays latched).

A bag whose metadata.yaml disagrees with its storage (BagReader) or whose MCAP chunk CRCs fail
is refused before anything is published (exit status 2), never played in part.

`replay_and_record()` plays a bag while recording what the nodes under test publish into a
new bag on the same time axis (bag time), for replay evaluation.

``moe_vla_bag_play BAG [--rate R] [--start-offset S] [--topics ...] [--remap FROM:=TO ...]``
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import rclpy
from rclpy.context import Context
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rosbags.interfaces import QosDurability, QosReliability
from rosgraph_msgs.msg import Clock

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.reader import BagMessage, BagReader, TopicInfo
from moe_vla_ros.cli import add_bag_argument, parse_pairs, run_tool, split_ros_args, tool_parser
from moe_vla_ros.ros.bag_recorder import BagRecorder, RecorderConfig, keep_last_qos, message_class
from moe_vla_ros.ros.contexts import release_context
from moe_vla_ros.ros.qos import CLOCK_TOPIC

_POLL_S = 0.02  # granularity of waits for subscribers and of /clock between messages


@dataclass(frozen=True)
class PlayerConfig:
    """How to play a bag.

    Attributes:
        rate: playback speed; 1.0 real time, >1 faster, 0 as fast as possible (a subscriber
            slower than the player then loses messages from its keep-last queue).
        start_offset_s: skip the first seconds of the bag.
        topics: bag topics to play; empty = all.
        remap: {bag topic: topic to publish on}.
        publish_clock: publish bag time on /clock.
        clock_rate_hz: /clock publications per second of bag time while playing at a rate.
        wait_for_subscribers_s: before playing, wait up to this long for subscribers (0: don't).
        wait_topics: published topics that need a subscriber before playing; None = all.
        reader_node: fully qualified name of a node (e.g. /robot1/bag_recorder) that must subscribe
            to every one of `reader_topics` before playing ("": none). With a recorder of the
            outputs of the nodes under test, nothing they publish in reply is lost to discovery.
        reader_topics: topics (not played here) `reader_node` must subscribe to.
        queue_depth: publisher history depth.
    """

    rate: float = 1.0
    start_offset_s: float = 0.0
    topics: tuple[str, ...] = ()
    remap: Mapping[str, str] = field(default_factory=dict)
    publish_clock: bool = True
    clock_rate_hz: float = 100.0
    wait_for_subscribers_s: float = 10.0
    wait_topics: tuple[str, ...] | None = None
    reader_node: str = ""
    reader_topics: tuple[str, ...] = ()
    queue_depth: int = 100

    def __post_init__(self) -> None:
        object.__setattr__(self, "topics", tuple(self.topics))
        object.__setattr__(self, "reader_topics", tuple(self.reader_topics))
        if bool(self.reader_node) != bool(self.reader_topics):
            raise BagError("reader_node and reader_topics go together (both set or both empty)")
        if self.reader_node and not self.reader_node.startswith("/"):
            raise BagError(f"reader_node must be fully qualified (start with '/'), got {self.reader_node!r}")
        if not (math.isfinite(self.rate) and 0.0 <= self.rate <= 1000.0):
            raise BagError(f"rate must be in [0, 1000] (0 = as fast as possible), got {self.rate!r}")
        if not (math.isfinite(self.start_offset_s) and self.start_offset_s >= 0):
            raise BagError(f"start_offset_s must be >= 0, got {self.start_offset_s!r}")
        if not (math.isfinite(self.clock_rate_hz) and 0.0 < self.clock_rate_hz <= 10000.0):
            raise BagError(f"clock_rate_hz must be in (0, 10000], got {self.clock_rate_hz!r}")
        if not (math.isfinite(self.wait_for_subscribers_s) and self.wait_for_subscribers_s >= 0):
            raise BagError(f"wait_for_subscribers_s must be >= 0, got {self.wait_for_subscribers_s!r}")
        if not 1 <= int(self.queue_depth) <= 10000:
            raise BagError(f"queue_depth must be in [1, 10000], got {self.queue_depth!r}")
        bad = [t for t in (*self.remap, *self.remap.values()) if not t.startswith("/")]
        if bad:
            raise BagError(f"remapped topics must be fully qualified (start with '/'): {bad}")


@dataclass(frozen=True)
class PlaybackStats:
    """Result of `BagPlayer.play()`: messages published (per output topic) and timing."""

    messages: int
    per_topic: dict[str, int]
    wall_s: float
    bag_s: float

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.wall_s if self.wall_s > 0 else 0.0


def publisher_qos(info: TopicInfo, depth: int) -> QoSProfile:
    """Playback QoS from the QoS the recorded publishers offered (reliable, volatile if unknown)."""
    offered = info.qos
    best_effort = bool(offered) and all(q.reliability == QosReliability.BEST_EFFORT for q in offered)
    latched = bool(offered) and all(q.durability == QosDurability.TRANSIENT_LOCAL for q in offered)
    return keep_last_qos(depth, reliable=not best_effort, transient_local=latched)


class BagPlayer(Node):
    """A node that plays one bag; drive it with `play()` or `step()`, then `close()`.

    Args:
        bag: bag folder (or .mcap / .db3 file).
        config: playback settings.
        context: rclpy context (the default one when None).
        node_name: name of the node.
    """

    def __init__(
        self, bag: str | Path, config: PlayerConfig = PlayerConfig(), *, context=None, node_name: str = "bag_player"
    ) -> None:
        self._reader = BagReader(bag)
        try:
            corrupt = self._reader.check_integrity()  # before anything is published
            if corrupt:
                raise BagError(f"bag {self._reader.path} is corrupt, nothing played: " + "; ".join(corrupt), corrupt)
            played = list(config.topics) or list(self._reader.topics)
            self._reader.require_topics(played)
            unknown = sorted(set(config.remap) - set(self._reader.topics))
            if unknown:
                raise BagError(f"cannot remap {unknown}: not in {self._reader.path} (it has {list(self._reader.topics)})")
            classes = {topic: message_class(self._reader.topics[topic].msgtype) for topic in played}
        except BagError:
            self._reader.close()
            raise
        super().__init__(node_name, context=context)
        self.config = config
        self.output_topic = {t: config.remap.get(t, t) for t in played}
        self._topic_publishers = {
            topic: self.create_publisher(
                cls, self.output_topic[topic], publisher_qos(self._reader.topics[topic], config.queue_depth)
            )
            for topic, cls in classes.items()
        }
        self._clock_publisher = self.create_publisher(Clock, CLOCK_TOPIC, 10) if config.publish_clock else None
        self.start_ns = self._reader.start_ns + int(round(config.start_offset_s * 1e9))
        self._pending: Iterator[BagMessage] = self._reader.messages(played, start_ns=self.start_ns)
        self._bag_now_ns = self.start_ns
        self._last_clock_ns: int | None = None
        self.published: dict[str, int] = dict.fromkeys(self.output_topic.values(), 0)
        self.finished = False

    @property
    def topics(self) -> dict[str, str]:
        """{published topic: message type}."""
        return {self.output_topic[t]: self._reader.topics[t].msgtype for t in self.output_topic}

    def current_bag_time_ns(self) -> int:
        """Bag time of the playback position (the last message or /clock published)."""
        return self._bag_now_ns

    def unmatched_topics(self, topics: Sequence[str] | None = None) -> list[str]:
        """Published topics (all played ones, or `topics`, which may include /clock) that have
        no subscriber yet."""
        wanted = list(self.topics) if topics is None else list(topics)
        by_output = {self.output_topic[t]: pub for t, pub in self._topic_publishers.items()}
        if self._clock_publisher is not None:
            by_output.setdefault(CLOCK_TOPIC, self._clock_publisher)
        missing = sorted(set(wanted) - set(by_output))
        if missing:
            raise BagError(f"{missing} are not played (played topics: {sorted(by_output)})")
        return [t for t in wanted if by_output[t].get_subscription_count() == 0]

    def unread_topics(self) -> list[str]:
        """`config.reader_topics` that `config.reader_node` does not subscribe to yet."""
        namespace, _, name = self.config.reader_node.rpartition("/")
        namespace = namespace or "/"
        return [
            t for t in self.config.reader_topics
            if not any(i.node_name == name and i.node_namespace == namespace
                       for i in self.get_subscriptions_info_by_topic(t))
        ]

    def wait_for_subscribers(
        self, timeout_s: float, topics: Sequence[str] | None = None, executor: Executor | None = None
    ) -> list[str]:
        """Wait until `topics` (default: all) have subscribers and `config.reader_node` subscribes
        to `config.reader_topics`; returns the topics still waited for."""
        deadline = time.monotonic() + timeout_s
        while (waiting := self.unmatched_topics(topics) + self.unread_topics()) and time.monotonic() < deadline:
            self._idle(_POLL_S, executor)
        return waiting

    def step(self) -> BagMessage | None:
        """Publish the next message (after /clock at its time); None when the bag is done."""
        message = next(self._pending, None)
        if message is None:
            self.finished = True
            return None
        self._publish_clock(message.log_time_ns, force=True)
        self._publish(message)
        return message

    def play(self, executor: Executor | None = None) -> PlaybackStats:
        """Play the rest of the bag at `config.rate`; returns when the last message is out.

        Waits for subscribers first (config). With an `executor`, waiting spins it, so nodes
        in this process (a subscriber, a recorder) keep running during playback.
        """
        if self.config.wait_for_subscribers_s > 0:
            unmatched = self.wait_for_subscribers(self.config.wait_for_subscribers_s, self.config.wait_topics, executor)
            if unmatched:
                self.get_logger().warning(f"starting without subscribers on {unmatched}")
            else:
                self.get_logger().info("subscribers ready: playing")
        wall_start, bag_start = time.monotonic(), self._bag_now_ns
        count = 0
        clock_period_ns = int(1e9 / self.config.clock_rate_hz)
        for message in self._pending:
            if self.config.rate > 0:
                due = wall_start + (message.log_time_ns - bag_start) * 1e-9 / self.config.rate
                while (remaining := due - time.monotonic()) > 0:
                    self._bag_now_ns = bag_start + int((time.monotonic() - wall_start) * self.config.rate * 1e9)
                    self._publish_clock(min(self._bag_now_ns, message.log_time_ns), force=False, period_ns=clock_period_ns)
                    self._idle(min(remaining, clock_period_ns * 1e-9 / self.config.rate), executor)
            elif executor is not None:
                executor.spin_once(timeout_sec=0.0)
            self._publish_clock(message.log_time_ns, force=False, period_ns=clock_period_ns)
            self._publish(message)
            count += 1
        if count and self._last_clock_ns != self._bag_now_ns:
            self._publish_clock(self._bag_now_ns, force=True)  # end exactly at the last message
        self.finished = True
        wall_s = time.monotonic() - wall_start
        return PlaybackStats(count, dict(self.published), wall_s, (self._bag_now_ns - bag_start) * 1e-9)

    def close(self) -> None:
        """Release the bag (the node itself is destroyed with destroy_node())."""
        self._reader.close()

    def _publish(self, message: BagMessage) -> None:
        data = message.data if isinstance(message.data, bytes) else bytes(message.data)
        self._topic_publishers[message.topic].publish(data)
        self._bag_now_ns = message.log_time_ns
        self.published[self.output_topic[message.topic]] += 1

    def _publish_clock(self, t_ns: int, *, force: bool, period_ns: int = 0) -> None:
        if self._clock_publisher is None:
            return
        if not force and self._last_clock_ns is not None and t_ns - self._last_clock_ns < period_ns:
            return
        clock = Clock()
        clock.clock.sec, clock.clock.nanosec = divmod(int(t_ns), 1_000_000_000)
        self._clock_publisher.publish(clock)
        self._last_clock_ns = t_ns

    @staticmethod
    def _idle(seconds: float, executor: Executor | None) -> None:
        if executor is None:
            time.sleep(max(seconds, 0.0))
        else:
            executor.spin_once(timeout_sec=max(seconds, 0.0))


@dataclass(frozen=True)
class ReplayResult:
    """What `replay_and_record` did: playback stats and messages recorded per topic."""

    playback: PlaybackStats
    recorded: dict[str, int]
    out_bag: Path


def replay_and_record(
    bag: str | Path,
    out_bag: str | Path,
    record_topics: Sequence[str],
    rate: float = 1.0,
    *,
    player_config: PlayerConfig | None = None,
    storage: str = "mcap",
    context: Context | None = None,
    executor: Executor | None = None,
    ready_timeout_s: float = 15.0,
    idle_timeout_s: float = 1.0,
    drain_timeout_s: float = 30.0,
) -> ReplayResult:
    """Play `bag` while recording `record_topics` into the new bag `out_bag`.

    Before playing it waits (up to `ready_timeout_s`, else TimeoutError) until every record
    topic has a publisher matched by the recorder and the played topics have subscribers
    (`player_config.wait_topics`). Recorded messages are stamped with the playback's bag time.
    After the last message it keeps spinning until no recorded message arrived for
    `idle_timeout_s` (at most `drain_timeout_s`), then closes the out bag.

    `context` / `executor`: pass the ones the nodes under test (in this process) use so they
    are spun together; by default a private context and executor are created.
    """
    config = replace(player_config or PlayerConfig(), rate=rate, wait_for_subscribers_s=0.0)
    own_context = context is None
    if own_context:
        context = Context()
        rclpy.init(context=context)
    executor = executor or SingleThreadedExecutor(context=context)
    nodes: list[BagPlayer | BagRecorder] = []
    try:
        player = BagPlayer(bag, config, context=context, node_name="replay_player")
        nodes.append(player)
        recorder = BagRecorder(
            RecorderConfig(Path(out_bag), storage, tuple(record_topics), discovery_period_s=0.1, queue_depth=1000),
            context=context, node_name="replay_recorder", stamp_source=player.current_bag_time_ns,
        )
        nodes.append(recorder)
        for node in nodes:
            executor.add_node(node)
        deadline = time.monotonic() + ready_timeout_s
        while not (recorder.subscribed(record_topics) and not player.unmatched_topics(config.wait_topics)):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"not ready after {ready_timeout_s:.1f} s: record topics without a publisher: "
                    f"{[t for t in record_topics if not recorder.subscribed([t])]}; played topics without "
                    f"a subscriber: {player.unmatched_topics(config.wait_topics)}"
                )
            executor.spin_once(timeout_sec=_POLL_S)
        playback = player.play(executor)
        drain_end = time.monotonic() + drain_timeout_s
        last_total, last_change = -1, time.monotonic()
        while time.monotonic() - last_change < idle_timeout_s and time.monotonic() < drain_end:
            executor.spin_once(timeout_sec=_POLL_S)
            total = sum(recorder.counts.values())
            if total != last_total:
                last_total, last_change = total, time.monotonic()
        return ReplayResult(playback, recorder.close(), Path(out_bag))
    finally:
        for node in nodes:
            node.close()
            executor.remove_node(node)
            node.destroy_node()
        if own_context:
            executor.shutdown()
            release_context(context)


PROG = "moe_vla_bag_play"


def build_parser() -> argparse.ArgumentParser:
    d = PlayerConfig()
    p = tool_parser(PROG, __doc__)
    add_bag_argument(p, "bag folder, .mcap or .db3 file")
    p.add_argument("--rate", "-r", type=float, default=d.rate, help="1 real time, >1 faster, 0 as fast as possible")
    p.add_argument("--start-offset", type=float, default=0.0, help="skip the first seconds of the bag")
    p.add_argument("--topics", nargs="+", default=[], help="bag topics to play (default: all)")
    p.add_argument("--remap", nargs="+", default=[], metavar="FROM:=TO", help="publish a bag topic elsewhere")
    p.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    p.add_argument("--clock-rate", type=float, default=d.clock_rate_hz, help="/clock per bag second")
    p.add_argument("--wait-timeout", type=float, default=d.wait_for_subscribers_s,
                   help="seconds to wait for subscribers before playing (0: do not wait)")
    p.add_argument("--wait-for", nargs="+", default=None, metavar="TOPIC",
                   help="published topics that need a subscriber before playing (default: all)")
    p.add_argument("--wait-for-reader", default="", metavar="NODE",
                   help="fully qualified node (e.g. a recorder) that must subscribe to --reader-topics first")
    p.add_argument("--reader-topics", nargs="+", default=[], metavar="TOPIC",
                   help="topics --wait-for-reader must subscribe to before playing")
    p.add_argument("--queue-depth", type=int, default=d.queue_depth, help="publisher history depth")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Play a bag once; SIGINT stops early (a normal stop, exit 0). ROS arguments (--ros-args ...)
    go to rclpy. Exit 2 for bad arguments or a bag that cannot be played, 1 when playing failed."""
    return run_tool(PROG, lambda: _run(sys.argv[1:] if argv is None else argv))


def _run(argv: Sequence[str]) -> int:
    own, ros_args = split_ros_args(argv)
    args = build_parser().parse_args(own)
    config = PlayerConfig(
        rate=args.rate, start_offset_s=args.start_offset, topics=tuple(args.topics),
        remap=parse_pairs(args.remap, ":=", "--remap FROM:=TO", BagError),
        publish_clock=not args.no_clock, clock_rate_hz=args.clock_rate,
        wait_for_subscribers_s=args.wait_timeout,
        wait_topics=tuple(args.wait_for) if args.wait_for else None, queue_depth=args.queue_depth,
        reader_node=args.wait_for_reader, reader_topics=tuple(args.reader_topics),
    )
    rclpy.init(args=[PROG, *ros_args])
    player = None
    try:
        player = BagPlayer(args.bag, config)
        stats = player.play()
        print(f"played {stats.messages} messages in {stats.wall_s:.2f} s ({stats.messages_per_s:.0f} msg/s)")
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # Ctrl-C stops playing: a normal stop
    finally:
        if player is not None:
            player.close()
            player.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
