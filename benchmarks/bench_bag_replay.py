"""Bag replay throughput: BagPlayer at rate 0 (as fast as possible) into a subscriber process.

Cases (generated mcap bags): small JointState messages, 96x96 rgb8 images, 640x480 rgb8 images.
For each, a separate subscriber process (raw subscription: it counts receipts, it does not
deserialise) reports how many messages arrived and when; the player runs in this process.
Reported per case:

    published/s   messages the player published per second of its playback loop
    delivered/s   messages received / (last receipt - playback start), cross-process
    received      receipts vs messages published (reliable, keep-last 100 on both sides)
    MB/s          delivered payload bytes per second
    read/s        messages per second of reading the bag alone (rosbags, no ROS)

Prints a table and writes JSON (default build/benchmarks/bag_replay.json). Runs with
localhost-only discovery in its own ROS domain.

    .venv/bin/python benchmarks/bench_bag_replay.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COUNT_TOPIC = "/bench_bag_replay/count"


def subscriber_main(topic: str, msgtype: str) -> int:
    """Subscriber process: counts raw receipts on `topic`, publishes progress as JSON at 20 Hz."""
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    from moe_vla_ros.ros.bag_recorder import message_class
    from moe_vla_ros.ros.spin import spin_until_shutdown

    rclpy.init()
    node = Node("bench_counter")
    state = {"count": 0, "bytes": 0, "first": 0.0, "last": 0.0}

    def on_message(data: bytes) -> None:
        now = time.monotonic()
        state["first"] = state["first"] or now
        state["count"] += 1
        state["bytes"] += len(data)
        state["last"] = now

    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(message_class(msgtype), topic, on_message, qos, raw=True)
    report = node.create_publisher(String, COUNT_TOPIC, 10)
    node.create_timer(0.05, lambda: report.publish(String(data=json.dumps(state))))
    spin_until_shutdown(node)
    return 0


def make_bags(folder: Path, quick: bool) -> list[tuple[str, Path, str, str]]:
    """(case name, bag, topic, type) of the generated bags."""
    import numpy as np

    from moe_vla_ros.bags.synthetic import write_image_bag
    from moe_vla_ros.bags.typestore import get_typestore
    from moe_vla_ros.bags.writer import BagWriter

    scale = 0.25 if quick else 1.0
    types = get_typestore().types
    joints = folder / "joint_states"
    with BagWriter(joints, "mcap") as bag:
        bag.add_topic("/joint_states", "sensor_msgs/msg/JointState")
        for i in range(int(5000 * scale)):
            t_ns = 1_700_000_000 * 10**9 + i * 2_000_000
            stamp = types["builtin_interfaces/msg/Time"](sec=t_ns // 10**9, nanosec=t_ns % 10**9)
            bag.write("/joint_states", t_ns, types["sensor_msgs/msg/JointState"](
                header=types["std_msgs/msg/Header"](stamp=stamp, frame_id=""), name=[f"j{k}" for k in range(7)],
                position=np.full(7, 0.1 * i), velocity=np.zeros(7), effort=np.zeros(0),
            ))
    cases = [("JointState (7 joints)", joints, "/joint_states", "sensor_msgs/msg/JointState")]
    for name, count, (h, w) in (("image 96x96", int(2000 * scale), (96, 96)), ("image 640x480", int(300 * scale), (480, 640))):
        path = folder / name.replace(" ", "_")
        write_image_bag(path, count, h, w, rate_hz=30.0, storage="mcap")
        cases.append((name, path, "/camera/front/image_raw", "sensor_msgs/msg/Image"))
    return cases


def run_case(name: str, bag: Path, topic: str, msgtype: str, env: dict[str, str]) -> dict:
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from std_msgs.msg import String

    from moe_vla_ros.bags.reader import BagReader
    from moe_vla_ros.ros.bag_player import BagPlayer, PlayerConfig
    from moe_vla_ros.ros.testing import RosPeerProcess, spin_until

    with BagReader(bag) as reader:
        start = time.perf_counter()
        total = sum(1 for _ in reader.messages())
        read_s = time.perf_counter() - start
    context = Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    progress: dict = {}
    watcher = Node("bench_watcher", context=context)
    watcher.create_subscription(String, COUNT_TOPIC, lambda m: progress.update(json.loads(m.data)), 10)
    player = BagPlayer(bag, PlayerConfig(rate=0.0, publish_clock=False, wait_for_subscribers_s=15.0), context=context)
    executor.add_node(watcher)
    executor.add_node(player)
    with RosPeerProcess([__file__, "--subscriber", topic, msgtype], env=env, cwd=REPO) as peer:
        try:
            if player.wait_for_subscribers(20.0, executor=executor):
                raise TimeoutError(f"{name}: the subscriber process did not match")
            spin_until(executor, lambda: "count" in progress, what="the subscriber's first report")
            play_start = time.monotonic()
            stats = player.play()
            last = {"count": -1, "at": time.monotonic()}

            def settled() -> bool:  # all received, or no progress for 1 s
                if progress["count"] != last["count"]:
                    last.update(count=progress["count"], at=time.monotonic())
                return progress["count"] >= total or time.monotonic() - last["at"] > 1.0

            spin_until(executor, settled, timeout_s=120.0, what=f"{name}: receipts to settle")
        finally:
            peer.stop()
    player.close()
    for node in (player, watcher):
        node.destroy_node()
    executor.shutdown()
    rclpy.try_shutdown(context=context)
    span = max(progress["last"] - play_start, 1e-9)
    return {
        "case": name,
        "messages": total,
        "published_per_s": stats.messages_per_s,
        "received": progress["count"],
        "delivered_per_s": progress["count"] / span,
        "delivered_mb_per_s": progress["bytes"] / span / 1e6,
        "read_per_s": total / read_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the messages")
    parser.add_argument("--output", default=str(REPO / "build" / "benchmarks" / "bag_replay.json"))
    parser.add_argument("--subscriber", nargs=2, metavar=("TOPIC", "TYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.subscriber:
        return subscriber_main(*args.subscriber)

    from moe_vla_ros.ros.testing import apply_isolated_ros_env

    env = apply_isolated_ros_env(int(os.environ.get("ROS_DOMAIN_ID", 100 + os.getpid() % 100)))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_bag_replay_") as tmp:
        for case in make_bags(Path(tmp), args.quick):
            results.append(run_case(*case, env=env))
    header = f"{'case':<24} {'msgs':>6} {'published/s':>12} {'delivered/s':>12} {'received':>10} {'MB/s':>8} {'read/s':>9}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['case']:<24} {r['messages']:>6} {r['published_per_s']:>12.0f} {r['delivered_per_s']:>12.0f} "
            f"{r['received']:>5}/{r['messages']:<4} {r['delivered_mb_per_s']:>8.1f} {r['read_per_s']:>9.0f}"
        )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(), "quick": args.quick}
    out.write_text(json.dumps({"benchmark": "bag_replay", "meta": meta, "results": results}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
