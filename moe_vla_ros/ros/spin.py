"""Run nodes in a process until it is told to stop: the one place the mains spin.

`init_process(args)` initialises rclpy WITHOUT its own signal handlers. `spin_until_shutdown(
*nodes)` spins the nodes on one SingleThreadedExecutor (see DEVELOPERS.md: rclpy's
MultiThreadedExecutor starves timers under /clock) in the main thread and handles SIGINT and
SIGTERM itself: Python's signal wake-up fd hands the signal number at once, whatever thread the
kernel delivered it to, to a watcher thread.

Why not rclpy's handlers: on a signal they shut the context down at once, before any node can
react, so the policy node could not send its final hold ("publisher's context is invalid") and
an inference finishing in that moment could still publish a trajectory. Here, on a signal:

1. the watcher calls `stop_commanding(reason)` on every node that has it (the policy node gates
   its publishers and sends its final hold: the first thing that happens, nothing after it);
2. the main thread leaves the spin loop, destroys the nodes (last first) while the context is
   still valid, and shuts rclpy down.

Ctrl-C is a normal stop, not an error. A node that sets its `exit_requested` attribute (e.g. the
policy node after a failed autostart) ends the spin too; the main returns its exit status. A
process whose rclpy was initialised with its own signal handlers (plain `rclpy.init()`) stops
the old way: rclpy shuts the context down, the spin ends, the nodes are destroyed.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions, get_current_signal_handlers_options

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SPIN_TIMEOUT_S = 0.5  # the spin loop re-checks the stop flag at least this often


def init_process(args: Sequence[str] | None = None) -> None:
    """rclpy.init for a process main: no rclpy signal handlers, SIGINT/SIGTERM are left to
    `spin_until_shutdown`."""
    rclpy.init(args=list(args) if args is not None else None, signal_handler_options=SignalHandlerOptions.NO)


class _SignalWatcher(threading.Thread):
    """Reads signal numbers from the wake-up pipe; on the first, stops the nodes' commands and
    wakes the spin. Python's C-level handler writes the pipe in whatever thread got the signal."""

    def __init__(self, nodes: Sequence[Node], executor: SingleThreadedExecutor) -> None:
        super().__init__(name="signal_watcher", daemon=True)
        self.nodes, self.executor = nodes, executor
        self.stop_requested = threading.Event()
        self.signal_name = ""
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._previous: dict[int, object] = {}
        self._previous_fd = -1

    def install(self) -> None:
        """Main thread only: route SIGINT/SIGTERM here."""
        self._previous_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, lambda *_: None)  # the pipe does the work
        self.start()

    def uninstall(self) -> None:
        signal.set_wakeup_fd(self._previous_fd)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        os.close(self._write_fd)  # ends run() when no signal came

    def run(self) -> None:
        try:
            data = os.read(self._read_fd, 1)
        finally:
            os.close(self._read_fd)
        if not data:
            return
        self.signal_name = signal.Signals(data[0]).name
        for node in self.nodes:
            stop = getattr(node, "stop_commanding", None)
            if stop is not None:
                try:
                    stop(f"{self.signal_name} received")
                except Exception as e:
                    node.get_logger().error(f"stopping on {self.signal_name} failed: {type(e).__name__}: {e}")
        self.stop_requested.set()
        try:
            self.executor.wake()
        except Exception:
            pass


def spin_until_shutdown(*nodes: Node, before_shutdown: Callable[[], None] | None = None) -> str:
    """Spin `nodes` until SIGINT/SIGTERM or an rclpy shutdown; always destroys them, then calls
    `before_shutdown` (e.g. stop a node spinning in another thread), then shuts rclpy down.
    Returns the name of the signal that stopped the process ("" when none did)."""
    executor = SingleThreadedExecutor()
    own_signals = (threading.current_thread() is threading.main_thread()
                   and get_current_signal_handlers_options() == SignalHandlerOptions.NO)
    watcher = _SignalWatcher(nodes, executor) if own_signals else None
    try:
        for node in nodes:
            executor.add_node(node)
        if watcher is not None:
            watcher.install()
        while rclpy.ok() and not (watcher is not None and watcher.stop_requested.is_set()):
            executor.spin_once(timeout_sec=SPIN_TIMEOUT_S)
            if any(getattr(node, "exit_requested", False) for node in nodes):
                break
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for node in reversed(nodes):
            node.destroy_node()
        executor.shutdown()
        if before_shutdown is not None:
            before_shutdown()
        rclpy.try_shutdown()
        if watcher is not None:
            watcher.uninstall()
    return watcher.signal_name if watcher is not None else ""
