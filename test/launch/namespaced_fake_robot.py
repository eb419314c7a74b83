"""test/ros/fake_robot.py's FakeRobot in a namespace: cameras, joint_states and instruction under
/<namespace>/ (its absolute /joint_states and /instruction are remapped to relative names).

    python test/launch/namespaced_fake_robot.py --namespace robot1 --camera-topics camera/front/image_raw ...
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ros"))

import rclpy  # noqa: E402
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor  # noqa: E402

from fake_robot import FakeRobot  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--namespace", default="")
    p.add_argument("--camera-topics", nargs="+", required=True, help="relative names")
    p.add_argument("--joint-names", nargs="+", required=True)
    p.add_argument("--instruction", default="")
    args = p.parse_args()
    ros_args = ["--ros-args", "-r", "/joint_states:=joint_states", "-r", "/instruction:=instruction"]
    if args.namespace:
        ros_args += ["-r", f"__ns:=/{args.namespace.strip('/')}"]
    rclpy.init(args=["fake_robot", *ros_args])
    node = FakeRobot(args.camera_topics, args.joint_names, instruction=args.instruction)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    print(f"fake robot publishing in {node.get_namespace()}", flush=True)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
