"""The policy node as a child process of the evaluator (no rclpy here: it is a plain subprocess).

It runs in its own process group with its output in a log file (a pipe nobody reads would
block it once full). `stop()` sends SIGINT (a clean ROS shutdown) to the group and SIGKILL
when it does not exit in time.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Sequence


class PolicyProcess:
    """Start `argv` now; `alive()`, `stop()`, `log_tail()`."""

    def __init__(self, argv: Sequence[str], log_path: str | Path) -> None:
        self.argv, self.log_path = list(argv), Path(log_path)
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        try:
            self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
        except OSError:
            self._log.close()
            raise

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> int:
        """Stop the process group (SIGINT, then SIGKILL after `timeout_s`); returns the exit status."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def log_tail(self, lines: int = 15) -> str:
        """The last `lines` lines of the process's output."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
