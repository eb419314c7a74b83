"""Helpers for tests (ours and users') that run a real ROS 2 graph on this machine only.

- `isolated_ros_env()` gives the environment every ROS process of a test must use: discovery
  limited to localhost, the test run's ROS_DOMAIN_ID, and ROS_LOG_DIR inside the build folder.
- `spin_until()` spins an executor until a condition holds or a timeout passes (never a fixed
  sleep), `wait_for_match()` waits until a publisher/subscription has a peer.
- `RosPeerProcess` starts a Python ROS process in its own process group and always stops it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TIMEOUT_S = 15.0


def isolated_ros_env(domain_id: int | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a ROS process of a test: localhost discovery, a fixed domain, logs in build/."""
    env = dict(os.environ if base is None else base)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("ROS_STATIC_PEERS", None)
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    elif "ROS_DOMAIN_ID" not in env:
        env["ROS_DOMAIN_ID"] = str(100 + os.getpid() % 100)
    env.setdefault("ROS_LOG_DIR", str(REPO_ROOT / "build" / "ros_log"))
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def apply_isolated_ros_env(domain_id: int | None = None) -> dict[str, str]:
    """Put `isolated_ros_env()` into this process's environment (call before rclpy.init)."""
    env = isolated_ros_env(domain_id)
    for key in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID", "ROS_LOG_DIR", "RMW_IMPLEMENTATION"):
        os.environ[key] = env[key]
    os.environ.pop("ROS_STATIC_PEERS", None)
    Path(env["ROS_LOG_DIR"]).mkdir(parents=True, exist_ok=True)
    return env


def spin_until(
    executor,
    condition: Callable[[], bool],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    what: str = "condition",
    poll_s: float = 0.05,
) -> None:
    """Spin `executor` until `condition()` is true; raise TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.1f} s waiting for {what}")
        executor.spin_once(timeout_sec=poll_s)


def wait_for_match(executor, endpoint, timeout_s: float = DEFAULT_TIMEOUT_S, count: int = 1) -> None:
    """Wait until a publisher has `count` subscriptions (or a subscription `count` publishers)."""
    if hasattr(endpoint, "get_subscription_count"):
        get, kind = endpoint.get_subscription_count, "subscription"
    else:
        get, kind = endpoint.get_publisher_count, "publisher"
    spin_until(executor, lambda: get() >= count, timeout_s, f"{count} matching {kind}(s) on {endpoint.topic_name}")


class RosPeerProcess:
    """A separate Python process taking part in the test's ROS graph; a context manager.

    Its stdout/stderr are captured; `output()` returns them after stop for assertion messages.
    """

    def __init__(
        self, args: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None, python: bool = True
    ):
        """args: a Python script and its arguments, or (python=False) a whole command line."""
        self.args = [sys.executable, *args] if python else list(args)
        self.env = dict(env) if env is not None else isolated_ros_env()
        self.cwd = cwd or REPO_ROOT
        self.proc: subprocess.Popen | None = None
        self._out = ""

    def __enter__(self) -> RosPeerProcess:
        self.proc = subprocess.Popen(
            self.args,
            env=self.env,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGINT (a clean ROS shutdown), then SIGKILL if it does not exit in time."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self._out, _ = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self._out, _ = self.proc.communicate()
        return self.proc.returncode

    def output(self) -> str:
        return self._out

    def __exit__(self, *exc) -> None:
        self.stop()
