"""Evaluation metrics on hand-made runs with known answers (evaluation/bag/metrics.py, report.score)."""

import math

import numpy as np
import pytest

from moe_vla_ros.bags.resample import TrajectoryCommand
from moe_vla_ros.contract import PolicyContract, SensorContract
from moe_vla_ros.evaluation.bag.config import EvaluationConfig
from moe_vla_ros.evaluation.bag.metrics import (
    error_stats,
    executed_points,
    reasoning_metrics,
    staleness,
    usage_drift,
)
from moe_vla_ros.evaluation.bag.records import Reference, RunRecords
from moe_vla_ros.evaluation.bag.report import score
from moe_vla_ros.evaluation.records import CommandRecord, TraceRecord, UsageRecord
from moe_vla_ros.runtime.usage_distance import jensen_shannon

DT = 0.1
NAMES = ("a", "b")
CONTRACT = PolicyContract(SensorContract(("cam",), 16, 16, NAMES, 1.0 / DT), chunk_length=8)


def ramp_reference(commands: tuple[TrajectoryCommand, ...] = ()) -> Reference:
    """Joint states q(t) = (t, -t) sampled at 100 Hz over [0, 10] s."""
    t = np.arange(0.0, 10.0 + 1e-9, 0.01)
    return Reference("joint states /js", t, np.stack([t, -t], axis=1), commands, max_gap_s=0.25)


def trajectory(received: float, obs: float, values, start: float | None = None, n: int = 8) -> CommandRecord:
    """A trajectory with points every DT from `start` (default obs) + DT; `values(t)` -> [J]."""
    start = obs if start is None else start
    times = start + DT * np.arange(1, n + 1)
    return CommandRecord(received, start, times, np.array([values(t) for t in times]), obs, 0)


def hold(t: float) -> CommandRecord:
    return CommandRecord(t, t, np.zeros(0), np.zeros((0, 2)))


def test_known_offsets_give_known_error_per_joint_and_step():
    offset = np.array([0.1, -0.3])
    cmd = trajectory(1.02, 1.0, lambda t: np.array([t, -t]) + offset)
    records = RunRecords(NAMES, DT, 0.0, 10.0, [cmd])
    m = score(records, ramp_reference(), CONTRACT, EvaluationConfig()).metrics
    err = m["action_error"]
    assert err["samples"] == 8
    assert err["per_joint"]["a"]["mae"] == pytest.approx(0.1) and err["per_joint"]["b"]["mae"] == pytest.approx(0.3)
    assert err["mae"] == pytest.approx(0.2)
    assert err["rmse"] == pytest.approx(math.sqrt((0.01 + 0.09) / 2))
    assert err["per_step_mae"] == [pytest.approx(0.2)] * 8
    assert m["staleness_s"]["p50"] == pytest.approx(0.02)
    assert m["error_over_time"]["mae"] == [pytest.approx(0.2)] * 8


def test_command_reference_follows_the_controller_not_the_joint_states():
    """Recorded commands (a constant target 0.5) are the reference where present."""
    commands = (TrajectoryCommand(int(1e9), np.array([int(0.1e9)]), np.array([[0.5, 0.5]])),)
    reference = ramp_reference(commands)
    targets, valid = reference.targets(np.array([1.1, 1.2, 1.35, 1.5, 0.5]))
    np.testing.assert_allclose(targets[:3], 0.5)
    assert valid.tolist() == [True, True, True, False, False]  # 0.25 s after the command's end: no reference


def test_only_points_not_replaced_by_the_next_trajectory_count():
    first = trajectory(1.02, 1.0, lambda t: np.array([t, -t]))
    second = trajectory(1.45, 1.4, lambda t: np.array([t, -t]) + 1.0)  # takes over at 1.45
    ex = executed_points([first, second], DT, 2)
    np.testing.assert_allclose(ex.times_s, [1.1, 1.2, 1.3, 1.4, *(1.4 + DT * np.arange(1, 9))])
    assert ex.steps.tolist() == [0, 1, 2, 3, *range(8)]
    assert ex.command.tolist() == [0] * 4 + [1] * 8


def test_known_expert_usage_drift():
    usage = [UsageRecord(t, {"moe": np.array([1.0, 0.0]) if t < 10 else np.array([0.0, 1.0]),
                             "steady": np.array([0.25, 0.75])}) for t in np.arange(0.0, 20.0, 0.5)]
    drift = usage_drift(usage, window_s=5.0)
    assert drift["moe"]["windows"][0] == (pytest.approx(2.5), 0.0)
    assert drift["moe"]["drift_max_bits"] == pytest.approx(1.0)
    assert drift["moe"]["drift_final_bits"] == pytest.approx(1.0)
    assert drift["moe"]["mean_load"] == [pytest.approx(0.5), pytest.approx(0.5)]
    assert drift["steady"]["drift_max_bits"] == pytest.approx(0.0)
    assert jensen_shannon(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0


def test_reasoning_changes_and_staleness():
    traces = [TraceRecord(t, text) for t, text in enumerate(["a", "a", "b", "b", "a"])]
    expected = {"traces": 5, "distinct": 2, "changes": 2, "changes_per_minute": 2.0}
    assert reasoning_metrics(traces, duration_s=60.0) == expected
    cmds = [trajectory(1.1, 1.0, lambda t: np.zeros(2)), hold(2.0), trajectory(3.3, 3.0, lambda t: np.zeros(2))]
    assert staleness(cmds)["max"] == pytest.approx(0.3) and staleness(cmds)["count"] == 2


def test_empty_inputs_give_empty_statistics():
    assert error_stats(np.full((3, 2), np.nan), NAMES)["samples"] == 0
    m = score(RunRecords(NAMES, DT, 0.0, 1.0), ramp_reference(), CONTRACT, EvaluationConfig()).metrics
    assert m["action_error"]["mae"] is None and m["seams"]["count"] == 0 and m["expert_usage"] == {}
