"""Tests of moe_vla_ros/ros/contexts.py: a released context's nodes leave the graph at once."""

import pytest

pytestmark = pytest.mark.ros


def test_a_released_context_leaves_the_graph_and_a_merely_shut_down_one_does_not():
    """Three participants in this process: `kept` (only shut down, its objects still referenced,
    as a test's or tool's leftovers are until a garbage collection) and `released`, both with a
    lifecycle node that was destroyed, and a probe made after both. Once the probe sees the kept
    one's node (the control: a leftover participant does stay in the graph), the released one's
    must be gone."""
    import rclpy
    from rclpy.context import Context
    from rclpy.lifecycle import LifecycleNode
    from rclpy.node import Node

    from moe_vla_ros.ros.contexts import private_context, release_context
    from moe_vla_ros.ros.testing import DEFAULT_TIMEOUT_S

    leftovers = []
    for name, release in (("kept_node", False), ("released_node", True)):
        context = Context()
        rclpy.init(context=context)
        node = LifecycleNode(name, context=context)
        node.destroy_node()
        if release:
            del node
            release_context(context)
        else:
            rclpy.try_shutdown(context=context)
            leftovers.append((context, node))
    with private_context() as context:
        from rclpy.executors import SingleThreadedExecutor

        from moe_vla_ros.ros.testing import spin_until

        probe = Node("probe", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(probe)
        names = lambda: [n for n, _ in probe.get_node_names_and_namespaces()]
        spin_until(executor, lambda: "kept_node" in names(), DEFAULT_TIMEOUT_S, "the kept participant's node")
        assert "released_node" not in names()
        executor.shutdown()
        probe.destroy_node()
    leftovers.clear()
