"""The launch tests run launch files under the real `launch` / `launch_ros` (installed into the venv
by scripts/setup.sh), each in its own process (scripts/ros2_launch.py, what `ros2 launch` does),
stopped with SIGINT once the test's condition is met (waits with timeouts, no fixed sleeps)."""

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # launch_helpers
sys.path.insert(0, str(HERE.parent / "ros"))  # fake_robot


@pytest.fixture
def probe(ros_context):
    """(node, executor) of the test's own view of the graph."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    node = Node("launch_test_probe", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    yield node, executor
    executor.shutdown()
    node.destroy_node()
