"""Private rclpy contexts that leave nothing behind in the ROS graph.

rclpy frees a context's DDS participant only when the Context object and every node and executor
made with it have been garbage collected, and nodes hold their context in reference cycles that
only Python's cyclic collector breaks. Until then the participant stays alive, and so does every
node it ever had, destroyed or not, in the graph of every other participant on the machine: a
test process once showed 26 `/policy_node` at once, and rmw_fastrtps then never calls a service
of that name available (it wants as many request readers as reply writers). A tool that makes a
context per evaluation or per bag leaks one participant each time the same way.

`release_context(context)` shuts a context down and frees its participant now;
`private_context()` is a context manager around it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import rclpy
from rclpy.context import Context


def release_context(context: Context) -> None:
    """Shut `context` down (if it is not already) and free its DDS participant as soon as nothing
    uses it: the nodes and executors made with it must be destroyed / shut down before."""
    rclpy.try_shutdown(context=context)
    gc.collect()  # break the node <-> context reference cycles so the handle is not in use
    context.destroy()


@contextmanager
def private_context(args: Sequence[str] | None = None) -> Iterator[Context]:
    """A fresh context initialised with `args` (e.g. ["--ros-args", "--params-file", F]), released
    on exit (see `release_context`)."""
    context = Context()
    rclpy.init(args=None if args is None else list(args), context=context)
    try:
        yield context
    finally:
        release_context(context)
