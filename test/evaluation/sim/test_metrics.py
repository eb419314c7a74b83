"""Evaluation metrics on hand-made inputs: success, latency, expert-usage divergence, chunk seams."""

from __future__ import annotations

import math

import numpy as np
import pytest
from eval_records import chunk, make_record

from moe_vla_ros.evaluation.records import TraceRecord
from moe_vla_ros.evaluation.seams import SeamLimits
from moe_vla_ros.evaluation.sim import metrics
from moe_vla_ros.evaluation.sim.records import TrajectoryRecord


def test_success_summary_per_family_and_overall_last():
    summary = metrics.success_summary([("reach", True), ("push", False), ("reach", False), ("reach", True)])
    assert list(summary) == ["reach", "push", "overall"]
    assert summary["reach"] == {"episodes": 3, "successes": 2, "rate": pytest.approx(2 / 3)}
    assert summary["push"]["rate"] == 0.0
    assert summary["overall"] == {"episodes": 4, "successes": 2, "rate": 0.5}
    assert math.isnan(metrics.success_summary([])["overall"]["rate"])


def test_mean_by_family():
    means = metrics.mean_by_family([("reach", 1.0), ("push", 4.0), ("reach", 3.0)])
    assert means == {"reach": 2.0, "push": 4.0, "overall": pytest.approx(8 / 3)}
    assert metrics.mean_by_family([]) == {}


def test_failures_are_counted_by_the_phase_of_their_last_trace(records):
    done = make_record(3, "push", False, {"head.0": [[1.0, 0.0]]})
    done.traces.append(TraceRecord(101.0, "red cube moved 12 cm left. task done.", chunk_id=2))
    silent = make_record(4, "push", False, {"head.0": [[1.0, 0.0]]})
    silent.traces = []
    also_done = make_record(5, "push", False, {"head.0": [[1.0, 0.0]]})
    also_done.traces = [TraceRecord(100.0, "blue cube moved 3 cm right. task done.", chunk_id=1)]
    table = metrics.failure_phases([*records, done, silent, also_done])
    assert list(table) == ["push", "reach"]  # first-seen order of failures: records[1] is a failed push
    assert table["push"] == {"pushed": 2, "no trace": 1, "unreadable": 1}  # most common first
    assert list(table["push"]) == ["pushed", "no trace", "unreadable"]
    assert table["reach"] == {"unreadable": 1}  # records[0] succeeded and is not counted
    assert metrics.failure_phases(records[:1]) == {}


def test_failure_shortfalls_summarise_how_far_failed_episodes_ended_from_success(records):
    records[1].shortfall_m = 0.03  # the failed push
    unmeasured = make_record(3, "push", False, {"head.0": [[1.0, 0.0]]})  # shortfall None: left out
    further = make_record(4, "push", False, {"head.0": [[1.0, 0.0]]})
    further.shortfall_m = 0.07
    records[2].shortfall_m = 0.01  # the failed reach
    records[0].shortfall_m = 0.0  # a success is not a failure
    table = metrics.failure_shortfalls([*records, unmeasured, further])
    assert list(table) == ["push", "reach"]
    assert table["push"] == {"count": 2, "median_m": pytest.approx(0.05), "max_m": pytest.approx(0.07)}
    assert table["reach"] == {"count": 1, "median_m": pytest.approx(0.01), "max_m": pytest.approx(0.01)}
    assert metrics.failure_shortfalls(records[:1]) == {}


def test_latency_uses_the_last_status_report_and_observation_ages(records):
    records[1].latency[0].stamp_s = 200.0  # the push episode's report is the last of the run
    inference = metrics.inference_latency(records)
    assert inference["count"] == 5 and inference["p50_ms"] == 5.0 and inference["p95_ms"] == 10.0
    age = metrics.observation_to_command(records)
    assert age["count"] == 5 and age["p50_ms"] == pytest.approx(50.0)
    assert metrics.inference_latency([])["count"] == 0


def test_mean_expert_load_per_task_and_divergence_between_tasks(records):
    loads = metrics.mean_expert_load(records)
    assert list(loads) == ["reach", "push"]
    np.testing.assert_allclose(loads["reach"]["trunk.1"], [0.6, 0.4, 0.0, 0.0])  # 4 chunks over 2 episodes
    np.testing.assert_allclose(loads["push"]["head.0"], [0.0, 1.0])
    div = metrics.usage_divergence(loads)
    assert list(div) == ["reach vs push"]
    assert div["reach vs push"]["trunk.1"]["tv"] == pytest.approx(1.0)  # disjoint experts
    assert div["reach vs push"]["head.0"] == {"tv": pytest.approx(1.0), "js_bits": pytest.approx(1.0)}
    same = metrics.usage_divergence({"reach": loads["reach"], "push": loads["reach"]})
    assert same["reach vs push"]["trunk.1"] == {"tv": 0.0, "js_bits": 0.0}


def test_sample_trajectory_follows_the_points():
    traj = chunk(10.0, 1.0, 0.5)  # points at 10.1 .. 10.4, position 1.0 + 0.5 * (t - 10.1)
    position, velocity = metrics.sample_trajectory(traj, 10.25)
    np.testing.assert_allclose(position, [1.075, 1.075])
    np.testing.assert_allclose(velocity, [0.5, 0.5])
    assert metrics.sample_trajectory(traj, 10.05) is None and metrics.sample_trajectory(traj, 10.5) is None
    linear = TrajectoryRecord(10.0, 10.0, [0.1, 0.3], [[0.0], [1.0]], [[], []])  # no velocities: linear
    np.testing.assert_allclose(metrics.sample_trajectory(linear, 10.2)[0], [0.5])
    # A zero stamp starts on receipt.
    assert TrajectoryRecord(3.0, 0.0, [0.1], [[0.0]], [[]]).point_times()[0] == pytest.approx(3.1)


def test_seams_of_every_episode_are_pooled_against_limits():
    limits = SeamLimits((1.0, 4.0), (5.0, 20.0), 0.1)  # bounds: 0.1/0.4 rad, 0.5/2.0 rad/s
    smooth = make_record(0, "reach", False, {"l": [[1.0]]})  # two chunks, the second continues the first
    jumped = make_record(1, "reach", False, {"l": [[1.0]]})
    jumped.trajectories = [chunk(100.0, 0.0, 0.5), chunk(100.2, 0.3, 0.5)]  # +0.2 rad at the seam
    late = make_record(2, "reach", False, {"l": [[1.0]]})
    late.trajectories = [chunk(100.0, 0.0, 0.5), chunk(101.0, 0.15, 0.3)]  # starts from where the first one stopped
    assert metrics.control_period([smooth]) == pytest.approx(0.1)
    summary = metrics.seam_summary([smooth, jumped, late], 0.1, limits)
    assert summary["count"] == 3 and summary["starved"]["count"] == 1
    assert summary["position_jump"]["max"] == pytest.approx(0.2)
    assert summary["limits"]["max_position_ratio"] == pytest.approx(2.0)
    assert summary["limits"]["within_bounds"] == pytest.approx(2 / 3)
    assert metrics.seam_summary([smooth], None, limits)["limits"]["within_bounds"] == 1.0  # period from the points
    assert metrics.seam_summary([smooth], 0.1)["position_jump"]["max"] == pytest.approx(0.0, abs=1e-9)
