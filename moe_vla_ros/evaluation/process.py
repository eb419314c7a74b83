"""A ROS node as a child process of an evaluator (no rclpy here: it is a plain subprocess).

Both evaluators that run the real policy node (closed loop in the simulator, bag replay) start
it with `NodeProcess`. It runs in its own process group with its output in a log file (a pipe
nobody reads would block it once full) and unbuffered Python output (the log is current when
an error quotes it). `stop()` sends SIGINT (a clean ROS shutdown: the node's final hold) to the
group and SIGKILL when it does not exit in time; leaving a `with` block stops it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path


class NodeProcess:
    """Start `argv` now, output to `log_path`; `alive()`, `stop()`, `log_tail()`; a context manager."""

    def __init__(self, argv: Sequence[str], log_path: str | Path, stop_timeout_s: float = 10.0) -> None:
        self.argv, self.log_path, self.stop_timeout_s = list(argv), Path(log_path), stop_timeout_s
        self._log = open(self.log_path, "w")
        try:
            self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        except OSError:
            self._log.close()
            raise

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout_s: float | None = None) -> int:
        """Stop the process group (SIGINT, then SIGKILL after `timeout_s`, default
        `stop_timeout_s`); returns the exit status. Stopping again returns it again."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(self.stop_timeout_s if timeout_s is None else timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def log_tail(self, lines: int = 15) -> str:
        """The last `lines` lines of the process's output."""
        if not self._log.closed:
            self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
