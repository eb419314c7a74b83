"""The chunk-seam metric both evaluators share (evaluation/seams.py), on hand-made trajectories."""

import numpy as np
import pytest

from moe_vla_ros.evaluation.records import CommandRecord
from moe_vla_ros.evaluation.seams import SeamJumps, SeamLimits, command_path, seam_jumps, seam_metrics, summarize_seams
from moe_vla_ros.evaluation.stats import summary_stats

DT = 0.1


def trajectory(received: float, start: float, values, n: int = 8) -> CommandRecord:
    """Points every DT from start + DT; `values(t)` -> [J]."""
    times = start + DT * np.arange(1, n + 1)
    return CommandRecord(received, start, times, np.array([values(t) for t in times]), start, 0)


def hold(t: float) -> CommandRecord:
    return CommandRecord(t, t, np.zeros(0), np.zeros((0, 2)))


def test_command_path_has_controller_semantics():
    first = trajectory(1.0, 1.0, lambda t: np.array([1.0, 1.0]), n=2)  # points at 1.1, 1.2
    path, valid = command_path([first, hold(1.5)], np.array([0.9, 1.0, 1.05, 1.1, 1.6]), initial=np.zeros(2))
    assert valid.tolist() == [False, True, True, True, True]
    np.testing.assert_allclose(path[1:, 0], [0.0, 0.5, 1.0, 1.0])  # from the start state, then held


def test_known_seam_jump():
    old = trajectory(0.0, 0.0, lambda t: np.zeros(2), n=20)
    new = trajectory(0.5, 0.5, lambda t: np.array([0.1, 0.0]), n=10)  # a 0.1 step on joint a
    m = seam_metrics([old, new], DT, window=2, initial=np.zeros(2))
    assert m["count"] == 1 and m["starved"]["count"] == 0 and "limits" not in m
    assert m["position_jump"]["max"] == pytest.approx(0.1)
    assert m["velocity_jump"]["max"] == pytest.approx(0.1 / DT)
    assert m["acceleration_jump"]["max"] == pytest.approx(2 * 0.1 / DT**2)
    assert m["baseline_velocity_change"]["max"] == pytest.approx(0.0, abs=1e-9)


def test_continuing_trajectory_has_no_seam_jump_and_late_one_is_starved():
    line = lambda t: np.array([t, 2 * t])
    smooth = seam_metrics([trajectory(0.0, 0.0, line), trajectory(0.4, 0.4, line)], DT, 2, initial=np.zeros(2))
    assert smooth["position_jump"]["max"] == pytest.approx(0.0, abs=1e-9)
    assert smooth["velocity_jump"]["max"] == pytest.approx(0.0, abs=1e-6)
    late = seam_metrics([trajectory(0.0, 0.0, line, n=4), trajectory(0.7, 0.7, line)], DT, 2, initial=np.zeros(2))
    assert late["starved"] == {"count": 1, "total_s": pytest.approx(0.3)}


def test_jumps_against_limits_per_joint():
    limits = SeamLimits((1.0, 4.0), (5.0, 20.0), DT)  # bounds: 0.1 / 0.4 rad, 0.5 / 2.0 rad/s
    line = lambda t: np.array([0.5 * t, 0.5 * t])
    smooth = seam_jumps([trajectory(0.0, 0.0, line), trajectory(0.4, 0.4, line)], DT, initial=np.zeros(2))
    jumped = seam_jumps([trajectory(0.0, 0.0, line), trajectory(0.4, 0.4, lambda t: line(t) + [0.2, 0.2])], DT,
                        initial=np.zeros(2))
    assert jumped.position.shape == (1, 2)
    np.testing.assert_allclose(jumped.position[0], [0.2, 0.2])  # 2x joint a's bound, half joint b's
    m = summarize_seams(SeamJumps.pooled([smooth, jumped]), limits)
    assert m["count"] == 2 and m["limits"]["position_bound"] == pytest.approx([0.1, 0.4])
    assert m["limits"]["max_position_ratio"] == pytest.approx(2.0)
    assert m["limits"]["max_velocity_ratio"] == pytest.approx(0.2 / DT / 0.5)
    assert m["limits"]["within_bounds"] == 0.5
    assert summarize_seams(smooth, limits)["limits"]["within_bounds"] == 1.0
    none = summarize_seams(SeamJumps.pooled([]), limits)
    assert none["count"] == 0 and none["limits"]["within_bounds"] is None and none["position_jump"]["max"] is None
    with pytest.raises(ValueError, match="joints"):
        summarize_seams(jumped, SeamLimits((1.0,), (1.0,), DT))


def test_seam_limits_are_validated():
    with pytest.raises(ValueError, match="positive vectors"):
        SeamLimits((1.0,), (1.0, 2.0), 0.1)
    with pytest.raises(ValueError, match="dt"):
        SeamLimits((1.0,), (1.0,), 0.0)


def test_empty_inputs_give_empty_statistics():
    assert summary_stats([]) == {"count": 0, "mean": None, "p50": None, "p95": None, "max": None}
    assert seam_metrics([], DT)["count"] == 0 and seam_metrics([hold(1.0)], DT)["position_jump"]["count"] == 0
