"""Tests of moe_vla_ros/control/latency.py: rolling statistics without cold start."""

import numpy as np
import pytest

from moe_vla_ros.control.latency import LatencyEstimator, LatencyEstimatorConfig


def test_cold_start_samples_are_ignored():
    estimator = LatencyEstimator(LatencyEstimatorConfig(window=100, cold_start_samples=3))
    assert [estimator.add(s) for s in (2.0, 1.5, 1.0)] == [False, False, False]
    assert estimator.summary().count == 0
    assert estimator.expected(default_s=0.2) == 0.2
    samples = np.linspace(0.05, 0.15, 41)
    assert all(estimator.add(s) for s in samples)
    summary = estimator.summary()
    assert summary.count == 41
    assert summary.max_s == pytest.approx(0.15)  # the 2 s cold start is not in it
    assert summary.mean_s == pytest.approx(0.10)
    assert summary.p50_s == pytest.approx(0.10)
    assert summary.p95_s == pytest.approx(np.percentile(samples, 95))
    assert summary.p99_s == pytest.approx(np.percentile(samples, 99))
    assert estimator.total_samples == 44


def test_window_keeps_only_recent_samples():
    estimator = LatencyEstimator(LatencyEstimatorConfig(window=10, cold_start_samples=0))
    for s in [1.0] * 10 + [0.1] * 10:
        estimator.add(s)
    assert estimator.summary().max_s == pytest.approx(0.1)


def test_reset_restarts_cold_start():
    estimator = LatencyEstimator(LatencyEstimatorConfig(window=10, cold_start_samples=1))
    estimator.add(5.0)
    estimator.add(0.1)
    estimator.reset()
    assert not estimator.add(3.0)  # a new model's first inference is ignored again
    assert estimator.add(0.2)
    assert estimator.summary().max_s == pytest.approx(0.2)


def test_milliseconds_for_the_status_message():
    estimator = LatencyEstimator(LatencyEstimatorConfig(cold_start_samples=0))
    estimator.add(0.02)
    ms = estimator.summary().as_milliseconds()
    assert ms["count"] == 1
    assert ms["p95_ms"] == pytest.approx(20.0) and ms["max_ms"] == pytest.approx(20.0)


@pytest.mark.parametrize("latency, steps", [(0.0, 0), (0.05, 0), (0.1, 1), (0.25, 2), (0.31, 3)])
def test_steps_skipped_from_latency(latency, steps):
    estimator = LatencyEstimator(LatencyEstimatorConfig(cold_start_samples=0))
    estimator.add(latency)
    assert estimator.steps_skipped(0.1) == steps


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_samples_are_refused(bad):
    with pytest.raises(ValueError, match="latency must be a finite number"):
        LatencyEstimator().add(bad)


@pytest.mark.parametrize("field, value", [("window", 0), ("cold_start_samples", -1), ("window", 2.5)])
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        LatencyEstimatorConfig(**{field: value})
