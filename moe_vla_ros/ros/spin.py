"""Run nodes in a process until it is told to stop: the one place the mains spin.

`spin_until_shutdown(*nodes)` spins the nodes on one SingleThreadedExecutor (see DEVELOPERS.md:
rclpy's MultiThreadedExecutor starves timers under /clock) until SIGINT, SIGTERM or an rclpy
shutdown, then destroys the nodes (last first) and shuts rclpy down. Ctrl-C is a normal stop,
not an error.
"""

from __future__ import annotations

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node


def spin_until_shutdown(*nodes: Node) -> None:
    """Spin `nodes` until the process is asked to stop; always destroys them and shuts rclpy down."""
    executor = SingleThreadedExecutor()
    try:
        for node in nodes:
            executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for node in reversed(nodes):
            node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown()
