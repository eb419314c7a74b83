"""Tests of moe_vla_ros/control/inference_loop.py: ticking, errors, stop waits for the running tick."""

import threading
import time

import pytest

from moe_vla_ros.control.inference_loop import InferenceLoop, InferenceLoopError


def wait_until(condition, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        threading.Event().wait(0.005)


def test_ticks_until_stopped_and_restarts():
    calls = []
    loop = InferenceLoop(lambda: calls.append(1), 0.001, on_error=pytest.fail)
    loop.start()
    loop.start()  # no second thread
    wait_until(lambda: len(calls) >= 5)
    loop.stop()
    assert not loop.running
    n = len(calls)
    assert loop.ticks == n
    loop.start()
    wait_until(lambda: len(calls) >= n + 3)
    loop.stop()


def test_an_error_is_reported_and_the_loop_goes_on():
    errors, calls = [], []

    def tick():
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("bad chunk")

    loop = InferenceLoop(tick, 0.001, on_error=errors.append)
    loop.start()
    wait_until(lambda: len(calls) >= 4)
    loop.stop()
    assert len(errors) == 1 and isinstance(errors[0], ValueError) and loop.errors == 1


def test_stop_waits_for_the_running_tick():
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()

    def tick():
        entered.set()
        release.wait(5.0)
        finished.set()

    loop = InferenceLoop(tick, 0.001, on_error=pytest.fail)
    loop.start()
    assert entered.wait(5.0)
    threading.Timer(0.05, release.set).start()
    loop.stop()
    assert finished.is_set()  # nothing of this tick can run after stop() returned


def test_stop_times_out_loudly_and_bad_period_is_refused():
    release = threading.Event()
    loop = InferenceLoop(lambda: release.wait(5.0), 0.001, on_error=pytest.fail)
    loop.start()
    with pytest.raises(InferenceLoopError, match="did not stop"):
        loop.stop(timeout_s=0.05)
    release.set()
    loop.stop()
    with pytest.raises(InferenceLoopError, match="period_s"):
        InferenceLoop(lambda: None, 0.0, on_error=pytest.fail)
