"""The node process wrapper of the evaluators (evaluation/process.py)."""

from __future__ import annotations

import signal
import sys
import time

from moe_vla_ros.evaluation.process import NodeProcess

# a node handles SIGINT (ros/spin.py installs its handler) even when it was started with SIGINT
# ignored, as every child of a background job in a non-interactive shell is
SLEEPER = ("import signal, time; signal.signal(signal.SIGINT, signal.default_int_handler); "
           "print('started', flush=True); time.sleep(60)")
STUBBORN = ("import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('up', flush=True); "
            "time.sleep(60)")


def _wait_for(text: str, process: NodeProcess, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in process.log_tail() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_output_goes_to_the_log_and_sigint_stops_it(tmp_path):
    with NodeProcess([sys.executable, "-c", SLEEPER], tmp_path / "node.log") as process:
        _wait_for("started", process)
        assert process.alive() and process.returncode is None
        assert process.log_tail() == "started"
    assert not process.alive()
    assert process.stop() == -signal.SIGINT  # Python ends an uncaught KeyboardInterrupt by the signal
    assert (tmp_path / "node.log").read_text().startswith("started")


def test_a_process_ignoring_sigint_is_killed(tmp_path):
    process = NodeProcess([sys.executable, "-c", STUBBORN], tmp_path / "node.log", stop_timeout_s=0.3)
    _wait_for("up", process)
    assert process.stop() == -signal.SIGKILL


def test_log_tail_keeps_the_last_lines(tmp_path):
    code = "for i in range(30): print(i)"
    with NodeProcess([sys.executable, "-c", code], tmp_path / "node.log") as process:
        process.proc.wait(20)
        assert not process.alive() and process.returncode == 0
        assert process.log_tail(3) == "27\n28\n29"
