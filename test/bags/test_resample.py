"""Tests of moe_vla_ros/bags/resample.py (pure time alignment)."""

import numpy as np
import pytest

from moe_vla_ros.bags.resample import (
    TrajectoryCommand,
    interpolate_joint_positions,
    latest_at_or_before,
    nearest_within,
    sample_trajectories,
    valid_runs,
)

MS = 1_000_000


def test_interpolation_is_linear_and_stops_at_gaps_and_ends():
    times = np.array([0, 10, 20, 100, 110]) * MS
    q = np.stack([np.array([0.0, 1.0, 2.0, 10.0, 11.0]), -np.array([0.0, 1.0, 2.0, 10.0, 11.0])], axis=1)  # [5, 2]
    query = np.array([-1, 0, 5, 20, 50, 105, 110, 111]) * MS
    values, valid = interpolate_joint_positions(times, q, query, max_gap_ns=15 * MS)
    assert valid.tolist() == [False, True, True, True, False, True, True, False]
    np.testing.assert_allclose(values[valid][:, 0], [0.0, 0.5, 2.0, 10.5, 11.0])
    np.testing.assert_allclose(values[valid][:, 1], [-0.0, -0.5, -2.0, -10.5, -11.0])
    assert np.isnan(values[~valid]).all()


def test_interpolation_rejects_unsorted_times():
    with pytest.raises(ValueError, match="sorted"):
        interpolate_joint_positions(np.array([2, 1]), np.zeros((2, 1)), np.array([1]), 10)


def test_nearest_within_slop():
    times = np.array([0, 50, 100]) * MS
    got = nearest_within(times, np.array([-20, 10, 30, 74, 76, 120, 200]) * MS, slop_ns=25 * MS)
    assert got.tolist() == [0, 0, 1, 1, 2, 2, -1]
    assert nearest_within(np.array([], dtype=np.int64), np.array([1]), 5).tolist() == [-1]


def test_latest_at_or_before():
    assert latest_at_or_before(np.array([10, 20, 30]), np.array([5, 10, 25, 99])).tolist() == [-1, 0, 1, 2]


def test_trajectory_sampling_follows_controller_semantics():
    first = TrajectoryCommand(start_ns=0, offsets_ns=np.array([100, 200]) * MS, positions=np.array([[1.0], [2.0]]))
    second = TrajectoryCommand(start_ns=150 * MS, offsets_ns=np.array([0, 100]) * MS, positions=np.array([[5.0], [6.0]]))

    def state_at(t_ns):
        return np.array([0.0]) if t_ns == 0 else None

    query = np.array([-1, 0, 50, 100, 149, 150, 200, 250, 400]) * MS
    values, valid = sample_trajectories([second, first], query, state_at)
    assert valid.tolist() == [False] + [True] * 8
    # before the first point: from the state at the start (0.0) towards point 1 (1.0 at 100 ms)
    np.testing.assert_allclose(values[1:, 0], [0.0, 0.5, 1.0, 1.49, 5.0, 5.5, 6.0, 6.0])


def test_valid_runs():
    assert valid_runs(np.array([True, True, False, True, False, False, True])) == [(0, 2), (3, 4), (6, 7)]
    assert valid_runs(np.array([], dtype=bool)) == []
