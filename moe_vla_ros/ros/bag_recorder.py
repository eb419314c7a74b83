"""Record topics of the ROS graph into a new rosbag2 bag (mcap or sqlite3).

`BagRecorder` is a node that looks up the requested topics on the graph every
`discovery_period_s` and subscribes to each one as soon as a publisher appears, with
``raw=True``: messages arrive as serialized CDR and go to the bag without being deserialised.
Each message is written at its receive time (the node clock, so sim time under
``use_sim_time``, or a caller-given stamp source); header stamps inside the messages are kept.
Definitions of every recorded type (ROS 2 kilted + moe_vla_msgs) are stored in the bag.

QoS adapts to the publishers found (as rosbag2 does): reliable when every publisher is
reliable, else best effort; transient local when every publisher is, so a latched instruction
published before recording started is still recorded. Best effort on a reliable camera would
lose frames over shared memory (30-40 % for 640x480 measured here); matching avoids that.
The publishers' QoS is stored in the bag for playback.

``moe_vla_bag_record --out DIR [--storage mcap|sqlite3] [--topics ... | --all]``;
SIGINT / SIGTERM stop it cleanly: the bag is closed with everything received so far.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.writer import BagWriter, check_storage
from moe_vla_ros.cli import add_output_argument, run_tool, split_ros_args, tool_parser
from moe_vla_ros.ros.spin import init_process, spin_until_shutdown

# The policy node's inputs and outputs.
DEFAULT_TOPICS: tuple[str, ...] = (
    "/camera/front/image_raw",
    "/camera/wrist/image_raw",
    "/joint_states",
    "/instruction",
    "/joint_trajectory_controller/joint_trajectory",
    "/reasoning_trace",
    "/expert_usage",
    "/policy_status",
    "/diagnostics",
)
# Never recorded with --all: per-node infrastructure topics.
INFRASTRUCTURE_TOPICS = ("/rosout", "/parameter_events")


def message_class(msgtype: str) -> type:
    """The rclpy message class of "pkg/msg/Type"; BagError when its package is not importable."""
    package, kind, name = msgtype.split("/", 2) if msgtype.count("/") == 2 else ("", "", "")
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError, ValueError):
        raise BagError(f"no Python message class for {msgtype!r} (is its interface package installed?)") from None


def _qos_time(duration: Duration) -> QosTime:
    ns = int(duration.nanoseconds)
    return QosTime(ns // 1_000_000_000, ns % 1_000_000_000)


def to_bag_qos(profile: QoSProfile) -> Qos:
    """rclpy QoSProfile -> the rosbags Qos stored in a bag's offered_qos_profiles."""
    return Qos(
        history=QosHistory(int(profile.history)),
        depth=int(profile.depth),
        reliability=QosReliability(int(profile.reliability)),
        durability=QosDurability(int(profile.durability)),
        deadline=_qos_time(profile.deadline),
        lifespan=_qos_time(profile.lifespan),
        liveliness=QosLiveliness(int(profile.liveliness)),
        liveliness_lease_duration=_qos_time(profile.liveliness_lease_duration),
        avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions),
    )


def subscription_qos(offered: Sequence[QoSProfile], depth: int) -> QoSProfile:
    """QoS that matches every publisher in `offered` and loses as little as they allow."""
    reliable = bool(offered) and all(p.reliability == ReliabilityPolicy.RELIABLE for p in offered)
    latched = bool(offered) and all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in offered)
    return keep_last_qos(depth, reliable=reliable, transient_local=latched)


def keep_last_qos(depth: int, *, reliable: bool, transient_local: bool) -> QoSProfile:
    """Keep-last QoS of `depth`: reliable or best effort, transient local or volatile (the profiles
    the recorder subscribes and the player publishes with)."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if transient_local else DurabilityPolicy.VOLATILE,
    )


@dataclass(frozen=True)
class RecorderConfig:
    """What and where to record.

    Attributes:
        output: bag folder to create (must not exist).
        storage: "mcap" or "sqlite3".
        topics: topics to record (fully qualified names).
        all_topics: record every topic that appears (except /rosout, /parameter_events) instead.
        discovery_period_s: how often the graph is searched for the topics' publishers.
        queue_depth: subscription history depth per topic.
    """

    output: Path
    storage: str = "mcap"
    topics: tuple[str, ...] = DEFAULT_TOPICS
    all_topics: bool = False
    discovery_period_s: float = 0.2
    queue_depth: int = 100

    def __post_init__(self) -> None:
        object.__setattr__(self, "output", Path(self.output))
        object.__setattr__(self, "topics", tuple(self.topics))
        check_storage(self.storage)
        bad = [t for t in self.topics if not t.startswith("/")]
        if bad:
            raise BagError(f"topics must be fully qualified (start with '/'): {bad}")
        if not self.topics and not self.all_topics:
            raise BagError("no topics to record: give topics or set all_topics")
        if not (math.isfinite(self.discovery_period_s) and 0.01 <= self.discovery_period_s <= 10.0):
            raise BagError(f"discovery_period_s must be in [0.01, 10], got {self.discovery_period_s!r}")
        if not 1 <= int(self.queue_depth) <= 10000:
            raise BagError(f"queue_depth must be in [1, 10000], got {self.queue_depth!r}")


class BagRecorder(Node):
    """A node recording `config.topics` into a new bag; call `close()` to finish the bag.

    Args:
        config: what and where to record.
        context: rclpy context (the default one when None).
        node_name: name of the node.
        stamp_source: receive time in ns for each message; the node clock when None.
    """

    def __init__(
        self,
        config: RecorderConfig,
        *,
        context=None,
        node_name: str = "bag_recorder",
        stamp_source: Callable[[], int] | None = None,
    ) -> None:
        self._writer = BagWriter(config.output, config.storage)  # first: refuses an existing path
        super().__init__(node_name, context=context)
        self.config = config
        self._stamp = stamp_source or (lambda: self.get_clock().now().nanoseconds)
        self._recording_subs: dict[str, object] = {}
        self.skipped_topics: dict[str, str] = {}  # topic -> why it is not recorded
        self._closed = False
        self._discovery_timer = self.create_timer(config.discovery_period_s, self.discover)
        self.discover()

    @property
    def recorded_topics(self) -> dict[str, str]:
        """{topic: type} of the topics being recorded."""
        return self._writer.topics

    @property
    def counts(self) -> dict[str, int]:
        """Messages written per topic so far."""
        return self._writer.counts

    def _wanted(self, topic: str) -> bool:
        if self.config.all_topics:
            return topic not in INFRASTRUCTURE_TOPICS
        return topic in self.config.topics

    def discover(self) -> None:
        """Subscribe to every wanted topic that now has a publisher (called by the timer)."""
        if self._closed:
            return
        for topic, types in self.get_topic_names_and_types():
            if topic in self._recording_subs or topic in self.skipped_topics or not self._wanted(topic):
                continue
            publishers = self.get_publishers_info_by_topic(topic)
            if not publishers:
                continue  # only subscribers so far: the type may still change
            try:
                self._subscribe(topic, types, publishers)
            except BagError as e:
                self.skipped_topics[topic] = str(e)
                self.get_logger().error(f"not recording {topic}: {e}")

    def _subscribe(self, topic: str, types: Sequence[str], publishers) -> None:
        if len(types) > 1:
            raise BagError(f"{topic} is published with several types {list(types)}")
        msgtype = types[0]
        cls = message_class(msgtype)
        self._writer.add_topic(topic, msgtype, qos=[to_bag_qos(p.qos_profile) for p in publishers])
        ours = self._writer.typestore.hash_rihs01(msgtype)
        theirs = {str(p.topic_type_hash) for p in publishers} - {"INVALID"}
        if theirs and theirs != {ours}:
            self.get_logger().warning(
                f"{topic}: publishers' type hash {sorted(theirs)} differs from the recorded definition of "
                f"{msgtype} ({ours}); readers may misinterpret its messages"
            )
        qos = subscription_qos([p.qos_profile for p in publishers], self.config.queue_depth)
        self._recording_subs[topic] = self.create_subscription(
            cls, topic, lambda data, t=topic: self._on_message(t, data), qos, raw=True
        )
        self.get_logger().info(
            f"recording {topic} [{msgtype}] ({qos.reliability.name.lower()}, {qos.durability.name.lower()})"
        )

    def _on_message(self, topic: str, data: bytes) -> None:
        if not self._closed:
            self._writer.write_raw(topic, self._stamp(), data)

    def subscribed(self, topics: Iterable[str]) -> bool:
        """True when every topic in `topics` is recorded and matched with a publisher."""
        return all(t in self._recording_subs and self._recording_subs[t].get_publisher_count() > 0 for t in topics)

    def close(self) -> dict[str, int]:
        """Stop recording and finish the bag (metadata written); returns counts. Idempotent."""
        if not self._closed:
            self._closed = True
            self.destroy_timer(self._discovery_timer)
            for sub in self._recording_subs.values():
                self.destroy_subscription(sub)
            self._writer.close()
        return self.counts

    def destroy_node(self) -> None:
        """Finish the bag (`close`) and destroy the node: nothing received is lost, whoever stops it."""
        self.close()
        super().destroy_node()


PROG = "moe_vla_bag_record"


def build_parser() -> argparse.ArgumentParser:
    parser = tool_parser(PROG, __doc__)
    add_output_argument(parser, "bag folder to create (must not exist)")
    parser.add_argument("--storage", "-s", default="mcap", choices=("mcap", "sqlite3"))
    parser.add_argument("--topics", nargs="+", default=list(DEFAULT_TOPICS), help="topics to record")
    parser.add_argument("--all", action="store_true", help="record every topic that appears")
    parser.add_argument("--discovery-period", type=float, default=0.2, help="seconds between graph look-ups")
    parser.add_argument("--queue-depth", type=int, default=100, help="subscription history depth")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Record until SIGINT / SIGTERM (a normal stop, exit 0); ROS arguments (--ros-args ...) are
    passed to rclpy. Exit 2 for bad arguments or an existing output folder, 1 when recording failed."""
    return run_tool(PROG, lambda: _run(sys.argv[1:] if argv is None else argv))


def _run(argv: Sequence[str]) -> int:
    own, ros_args = split_ros_args(argv)
    args = build_parser().parse_args(own)
    config = RecorderConfig(
        output=args.out, storage=args.storage, topics=tuple(args.topics), all_topics=args.all,
        discovery_period_s=args.discovery_period, queue_depth=args.queue_depth,
    )
    init_process([PROG, *ros_args])
    try:
        recorder = BagRecorder(config)  # BagError when the output exists
    except BaseException:
        rclpy.try_shutdown()
        raise
    # SIGINT/SIGTERM end the spin between callbacks (a write is never cut); destroying the
    # recorder closes the bag with everything received so far.
    spin_until_shutdown(recorder)
    counts = recorder.counts
    print(f"closed {config.output}: {sum(counts.values())} messages {counts}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
