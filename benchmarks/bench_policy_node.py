"""End-to-end benchmark of the policy node: camera stamp -> trajectory publish latency, command rate,
CPU use and memory growth, with 30 Hz camera input over real DDS (localhost only).

The node runs as its own process (the `policy_node` executable, CPU execution provider); this
process publishes two 96x96 rgb8 cameras at --camera-rate and joint states at 100 Hz, stamped
with the current time; the joints follow the node's commands (mock hardware behind a
joint_trajectory_controller stand-in, which counts what the controller would refuse), and it
records every ExpertUsage (stamped with the observation it came from,
published together with the trajectory) and JointTrajectory the node sends.

    python benchmarks/bench_policy_node.py --quick          # 30 s
    python benchmarks/bench_policy_node.py --duration 600   # the 10-minute leak check

Prints a table and writes JSON (default build/benchmarks/policy_node.json).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from report_file import write_report

REPO = Path(__file__).resolve().parents[1]


def default_model(root: Path) -> Path:
    bundled = REPO / "models" / "default"
    if (bundled / "manifest.json").is_file():
        return bundled
    from moe_vla_ros.export.demo_checkpoint import export_demo_model

    return export_demo_model(root, preset="small", seed=0)[1]


def run(args) -> dict:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import Image, JointState
    from trajectory_msgs.msg import JointTrajectory

    from moe_vla_msgs.msg import ExpertUsage
    from moe_vla_ros.ros import qos
    from moe_vla_ros.ros.conversions import is_hold_trajectory
    from moe_vla_ros.ros.mock_controller import MockJointTrajectoryController
    from moe_vla_ros.ros.testing import RosPeerProcess, apply_isolated_ros_env, isolated_ros_env

    apply_isolated_ros_env()
    model = args.model or default_model(REPO / "build" / "bench_models")
    node_cmd = [
        str(Path(sys.executable).with_name("policy_node")), "--ros-args",
        "--params-file", str(REPO / "config" / "policy.yaml"),
        "--params-file", str(REPO / "config" / "robots" / "sim_arm.yaml"),
        "-p", f"model.path:={model}", "-p", "model.providers:=[CPUExecutionProvider]",
        "-p", "autostart:=true", "-p", "execution.default_instruction:=reach the red cube",
        "-p", f"execution.refill_threshold_s:={args.refill_threshold}",
        "-p", f"model.intra_op_threads:={args.threads}",
    ]
    rclpy.init()
    node = Node("bench_policy_node")
    cams = [node.create_publisher(Image, t, qos.sensor_qos("reliable"))
            for t in ("/camera/front/image_raw", "/camera/wrist/image_raw")]
    joints = node.create_publisher(JointState, "/joint_states", qos.sensor_qos("reliable"))
    latencies, usage_times, traj_times = [], [], []

    def on_usage(msg):
        now = node.get_clock().now().nanoseconds * 1e-9
        latencies.append(now - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9))
        usage_times.append(now)

    node.create_subscription(ExpertUsage, "/expert_usage", on_usage, qos.telemetry_qos(100))
    node.create_subscription(JointTrajectory, "/joint_trajectory_controller/joint_trajectory",
                             lambda m: None if is_hold_trajectory(m) else traj_times.append(time.monotonic()), qos.command_qos(100))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8).tobytes() for _ in range(8)]
    names = ["joint_1", "joint_2", "joint_3", "joint_4", "joint_5", "joint_6", "gripper"]
    count = {"frames": 0}

    def publish_camera():
        stamp = node.get_clock().now().to_msg()
        data = frames[count["frames"] % len(frames)]
        for pub in cams:
            msg = Image(height=96, width=96, encoding="rgb8", step=288, data=data)
            msg.header.stamp = stamp
            pub.publish(msg)
        count["frames"] += 1

    # The joints follow the commands (mock hardware behind a joint_trajectory_controller stand-in):
    # a robot that ignores them makes the node hold (tracking error), as it should.
    clock = lambda: node.get_clock().now().nanoseconds * 1e-9
    controller = MockJointTrajectoryController(names, np.array([0.0, -0.3, 0.6, 0.0, 0.8, 0.0, 0.0]), clock)
    node.create_subscription(JointTrajectory, "/joint_trajectory_controller/joint_trajectory", controller.receive,
                             qos.command_qos(10))

    def publish_joints():
        msg = JointState(name=names, position=controller.positions().tolist(), velocity=[0.0] * 7)
        msg.header.stamp = node.get_clock().now().to_msg()
        joints.publish(msg)

    node.create_timer(1.0 / args.camera_rate, publish_camera)
    node.create_timer(0.01, publish_joints)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    samples = []  # (t, cpu %, rss MB)
    with RosPeerProcess(node_cmd, env=isolated_ros_env(), python=False) as peer:
        proc = psutil.Process(peer.proc.pid)
        deadline = time.monotonic() + 120
        while not usage_times and time.monotonic() < deadline:
            if not peer.alive():
                raise RuntimeError(f"policy_node exited:\n{peer.output()}")
            time.sleep(0.1)
        if not usage_times:
            raise RuntimeError("policy_node published nothing within 120 s")
        start, n_lat0, n_traj0, frames0 = time.monotonic(), len(latencies), len(traj_times), count["frames"]
        proc.cpu_percent()
        while time.monotonic() - start < args.duration:
            time.sleep(1.0)
            samples.append((time.monotonic() - start, proc.cpu_percent(), proc.memory_info().rss / 2**20))
            if args.progress:
                print(f"\r{samples[-1][0]:6.0f}/{args.duration:.0f} s  rss {samples[-1][2]:.0f} MB", end="", flush=True)
        elapsed = time.monotonic() - start
        lat = np.array(latencies[n_lat0:]) * 1e3
        commands = len(traj_times) - n_traj0
        frames_sent = count["frames"] - frames0
    executor.shutdown()
    rclpy.try_shutdown()
    if args.progress:
        print()
    t, cpu, rss = (np.array(c) for c in zip(*samples))
    half = t >= t[-1] / 2
    growth = float(np.polyfit(t[half], rss[half], 1)[0] * 60) if half.sum() >= 2 else 0.0
    return {
        "model": str(model), "duration_s": elapsed, "camera_rate_hz": frames_sent / elapsed,
        "refill_threshold_s": args.refill_threshold, "latency_ms": {
            "count": int(lat.size), "p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)),
            "p99": float(np.percentile(lat, 99)), "max": float(lat.max())},
        "command_rate_hz": commands / elapsed, "cpu_percent_mean": float(cpu.mean()),
        "rss_mb_start": float(rss[0]), "rss_mb_end": float(rss[-1]), "rss_growth_mb_per_min": growth,
        "commands_refused_by_controller": controller.refused,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=None, help="model folder (default: bundled, else random small)")
    p.add_argument("--duration", type=float, default=600.0, help="measured seconds (after the first chunk)")
    p.add_argument("--quick", action="store_true", help="30 s run")
    p.add_argument("--camera-rate", type=float, default=30.0)
    p.add_argument("--refill-threshold", type=float, default=1.5,
                   help="execution.refill_threshold_s; 1.5 of a 1.6 s chunk = replan on every new frame")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads per session")
    p.add_argument("--out", type=Path, default=REPO / "build" / "benchmarks" / "policy_node.json")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    if args.quick:
        args.duration = 30.0
    result = run(args)
    lat = result["latency_ms"]
    rows = [
        ("camera rate (Hz)", f"{result['camera_rate_hz']:.1f}"),
        ("camera stamp -> publish p50 / p95 / p99 (ms)", f"{lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f}"),
        ("trajectory commands (Hz)", f"{result['command_rate_hz']:.1f}"),
        ("node CPU (% of one core)", f"{result['cpu_percent_mean']:.0f}"),
        ("node RSS start -> end (MB)", f"{result['rss_mb_start']:.0f} -> {result['rss_mb_end']:.0f}"),
        ("RSS growth, 2nd half (MB/min)", f"{result['rss_growth_mb_per_min']:+.2f}"),
        ("trajectories the controller refused", f"{result['commands_refused_by_controller']}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"policy node, {result['duration_s']:.0f} s, model {result['model']}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    write_report(args.out, result)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    sys.exit(main())
