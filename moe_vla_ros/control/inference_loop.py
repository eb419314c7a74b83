"""The policy's inference loop on its own thread (pure Python: no rclpy).

The policy node runs its ROS callbacks (inputs, status, lifecycle services) in a single-threaded
executor and its inference here, so a 40-150 ms inference never delays input stamps and the
executor never has to arbitrate between threads. (rclpy's MultiThreadedExecutor re-offers ready
entities of a busy callback group in a tight loop; with use_sim_time and /clock at 100 Hz this
kept a whole core busy and starved the inference timer.)

`InferenceLoop(tick, period_s, on_error)` calls `tick()` every `period_s` seconds (at once again
when a tick took longer) between `start()` and `stop()`. An exception from `tick` goes to
`on_error` and the loop goes on: the tick itself must put the robot in a safe state (the policy
runner holds on inference errors). `stop()` waits for the running tick to finish, so after it
returns nothing is published from this loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from moe_vla_ros.errors import FailedError


class InferenceLoopError(FailedError):
    """Bad loop configuration, or the loop did not stop in time."""


class InferenceLoop:
    """See the module docstring. `start`/`stop` may be called repeatedly (lifecycle activate/deactivate)."""

    def __init__(self, tick: Callable[[], None], period_s: float,
                 on_error: Callable[[BaseException], None], name: str = "inference") -> None:
        if not period_s > 0.0:
            raise InferenceLoopError(f"period_s must be > 0, got {period_s!r}")
        self._tick, self._period_s, self._on_error, self._name = tick, float(period_s), on_error, name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0  # completed ticks since construction
        self.errors = 0  # ticks that raised

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start ticking (no-op when already running)."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop and wait for the running tick to finish; raises InferenceLoopError after `timeout_s`."""
        thread = self._thread
        self._stop.set()
        if thread is None or thread is threading.current_thread():
            return
        thread.join(timeout_s)
        if thread.is_alive():
            raise InferenceLoopError(f"the {self._name} loop did not stop within {timeout_s} s")
        self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._tick()
            except Exception as e:
                self.errors += 1
                self._on_error(e)
            self.ticks += 1
            self._stop.wait(max(0.0, self._period_s - (time.monotonic() - started)))
