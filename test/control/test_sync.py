"""Tests of moe_vla_ros/control/sync.py: approximate-time pairing by stamp."""

import pytest

from moe_vla_ros.control.sync import ApproximateTimeSync, SyncConfig, SyncError


def make(slop=0.02, queue_size=10, inputs=("camera", "joints")):
    return ApproximateTimeSync(SyncConfig(tuple(inputs), slop_s=slop, queue_size=queue_size))


def test_matching_stamps_within_slop_are_paired():
    sync = make()
    assert sync.add("camera", 1.000, "img") is None
    out = sync.add("joints", 1.015, "js")
    assert out is not None
    assert out.items == {"camera": "img", "joints": "js"}
    assert out.stamps == {"camera": 1.000, "joints": 1.015}
    assert out.spread_s == pytest.approx(0.015)
    assert (out.oldest_stamp, out.newest_stamp) == (1.000, 1.015)


def test_out_of_slop_is_not_paired_and_eventually_overflows():
    sync = make(slop=0.02, queue_size=3)
    sync.add("camera", 1.0, "img")
    for k in range(5):
        assert sync.add("joints", 1.05 + 0.01 * k, k) is None
    assert sync.counters["joints"].overflowed == 2
    assert sync.queued("joints") == 3
    assert sync.counters["camera"].matched == 0


def test_nearest_partner_wins_and_older_ones_are_superseded():
    sync = make(slop=0.02)
    for k, stamp in enumerate((0.985, 0.995, 1.004, 1.012)):
        sync.add("joints", stamp, k)
    out = sync.add("camera", 1.0, "img")
    assert out.stamps["joints"] == 1.004 and out.items["joints"] == 2
    assert sync.counters["joints"].superseded == 2  # 0.985 and 0.995
    assert sync.queued("joints") == 1  # 1.012 waits for the next camera frame


def test_newest_complete_set_wins():
    sync = make(slop=0.01)
    sync.add("camera", 1.0, "old")
    sync.add("camera", 1.1, "new")
    out = sync.add("joints", 1.1, "js")
    assert out.items["camera"] == "new"
    assert sync.counters["camera"].superseded == 1
    # A joint state for the old frame that arrives now is late: dropped, nothing emitted.
    assert sync.add("joints", 1.0, "late") is None
    assert sync.counters["joints"].late == 1
    assert sync.dropped == 2


def test_stream_pairs_every_camera_frame():
    sync = make(slop=0.006)
    emitted = []
    # joints at 100 Hz, camera at 25 Hz stamped 2 ms off the joint grid, arriving 20 ms late
    events = [(k * 0.01, "joints") for k in range(100)] + [(k * 0.04 + 0.002, "camera") for k in range(24)]
    arrival = sorted(events, key=lambda e: e[0] + (0.02 if e[1] == "camera" else 0.0))
    for stamp, name in arrival:
        out = sync.add(name, stamp, stamp)
        if out is not None:
            emitted.append(out)
    assert len(emitted) == 24
    assert all(s.spread_s == pytest.approx(0.002) for s in emitted)
    assert [s.stamps["camera"] for s in emitted] == sorted(s.stamps["camera"] for s in emitted)


def test_three_inputs_use_a_window_that_fits_all():
    sync = make(slop=0.1, inputs=("a", "b", "c"))
    sync.add("b", 0.93, "b_old")  # nearest to the pivot, but cannot share a window with c
    sync.add("b", 1.08, "b_new")
    sync.add("c", 1.095, "c")
    out = sync.add("a", 1.0, "a")
    assert out.items == {"a": "a", "b": "b_new", "c": "c"}
    assert out.spread_s <= 0.1


def test_single_input_passes_through():
    sync = make(inputs=("camera",))
    assert sync.add("camera", 3.0, "x").items == {"camera": "x"}


def test_reset_clears_queues_but_keeps_counters():
    sync = make()
    sync.add("camera", 1.0, "img")
    sync.reset()
    assert sync.add("joints", 1.0, "js") is None
    assert sync.counters["camera"].received == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_names": ("a", "a")}, "duplicates"),
        ({"input_names": ()}, "non-empty"),
        ({"input_names": "camera"}, "the string 'camera'"),
        ({"input_names": ("a",), "slop_s": -0.1}, "slop_s must be"),
        ({"input_names": ("a",), "queue_size": 0}, "queue_size must be"),
    ],
)
def test_config_validation_names_the_bad_value(kwargs, message):
    with pytest.raises(SyncError, match=message):
        SyncConfig(**kwargs)


def test_unknown_input_and_bad_stamp_are_refused():
    sync = make()
    with pytest.raises(SyncError, match="unknown input 'lidar'"):
        sync.add("lidar", 1.0, None)
    with pytest.raises(SyncError, match="must be finite"):
        sync.add("camera", float("nan"), None)
