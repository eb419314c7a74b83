"""Tests of moe_vla_ros/control/watchdog.py: staleness, grace period, enable."""

import pytest

from moe_vla_ros.control.watchdog import InputWatchdog, WatchdogConfig, WatchdogError


def make(grace=2.0, start_enabled=True):
    timeouts = {"camera": 0.2, "joints": 0.1}
    return InputWatchdog(WatchdogConfig(timeouts, startup_grace_s=grace, start_enabled=start_enabled))


def test_inactive_holds():
    dog = make()
    dog.feed("camera", 0.0)
    dog.feed("joints", 0.0)
    assert dog.hold_reason(0.05) == "inactive"


def test_grace_period_waits_then_counts_stale():
    dog = make(grace=2.0)
    dog.activate(10.0)
    report = dog.check(10.5)
    assert report.stale == () and report.waiting == ("camera", "joints")
    assert report.hold_reason == "waiting for camera, joints"
    dog.feed("camera", 11.0)
    assert dog.hold_reason(11.1) == "waiting for joints"
    report = dog.check(12.0)  # grace over: never-seen joints and a camera 1 s old are stale
    assert report.stale == ("camera", "joints")
    assert report.hold_reason == "stale camera, joints"
    assert dog.total_stale_events == 2


def test_fresh_inputs_command_and_staleness_recovers():
    dog = make(grace=0.0)
    dog.activate(0.0)
    for t in (0.0, 0.05, 0.1):
        dog.feed("camera", t)
        dog.feed("joints", t)
    assert dog.check(0.15).ok
    assert dog.hold_reason(0.15) == ""
    assert dog.hold_reason(0.25) == "stale joints"  # 0.15 s > 0.1 s timeout
    assert dog.hold_reason(0.26) == "stale joints"
    assert dog.stale_event_counts() == {"camera": 0, "joints": 1}  # one event, not one per check
    dog.feed("joints", 0.27)
    assert dog.hold_reason(0.28) == ""
    assert dog.hold_reason(0.5) == "stale camera, joints"
    assert dog.stale_event_counts() == {"camera": 1, "joints": 2}


def test_inputs_received_before_activation_count():
    dog = make(grace=5.0)
    dog.feed("camera", 0.95)
    dog.feed("joints", 0.98)
    dog.activate(1.0)
    assert dog.hold_reason(1.01) == ""


def test_timeout_is_inclusive():
    dog = make(grace=0.0)
    dog.activate(0.0)
    dog.feed("camera", 0.0)
    dog.feed("joints", 0.0)
    assert dog.hold_reason(0.1) == ""
    assert dog.hold_reason(0.1001) == "stale joints"


def test_disable_overrides_fresh_inputs_and_staleness():
    dog = make(grace=0.0, start_enabled=False)
    dog.activate(0.0)
    dog.feed("camera", 0.0)
    dog.feed("joints", 0.0)
    assert dog.hold_reason(0.01) == "disabled"
    dog.set_enabled(True)
    assert dog.hold_reason(0.01) == ""
    dog.set_enabled(False)
    assert not dog.enabled and dog.hold_reason(0.01) == "disabled"
    assert dog.hold_reason(5.0) == "disabled"  # disabled (the operator's e-stop) outranks staleness
    dog.set_enabled(True)
    assert dog.hold_reason(0.01) == ""
    dog.deactivate()
    assert dog.hold_reason(0.01) == "inactive"


def test_age_and_unknown_input():
    dog = make()
    assert dog.age("camera", 3.0) == float("inf")
    dog.feed("camera", 1.0)
    assert dog.age("camera", 3.0) == pytest.approx(2.0)
    with pytest.raises(WatchdogError, match="unknown input 'lidar'"):
        dog.feed("lidar", 0.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"timeouts_s": {}}, "at least one input"),
        ({"timeouts_s": {"camera": 0.0}}, r"finite and > 0, got \{'camera': 0.0\}"),
        ({"timeouts_s": {"camera": 0.1}, "startup_grace_s": -1.0}, "startup_grace_s"),
    ],
)
def test_config_validation_names_the_bad_value(kwargs, message):
    with pytest.raises(WatchdogError, match=message):
        WatchdogConfig(**kwargs)
