"""Rolling inference-latency statistics that ignore cold start.

The first inferences after a model is loaded are slow (lazy allocation, kernel selection,
engine warm-up) and would dominate a mean or a p99 for minutes. :class:`LatencyEstimator`
drops the first ``cold_start_samples`` and summarises the most recent ``window`` samples:
mean, p50, p95, p99 and max (moe_vla_msgs/LatencyStats), and how many control steps a chunk
loses to latency (:meth:`LatencyEstimator.steps_skipped`).

Pure numpy: no rclpy.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyEstimatorConfig:
    """Settings of a :class:`LatencyEstimator`.

    Attributes:
        window: most recent samples summarised (older ones fall out); >= 1.
        cold_start_samples: samples ignored after construction or :meth:`LatencyEstimator.reset`
            (model load); >= 0.
    """

    window: int = 200
    cold_start_samples: int = 3

    def __post_init__(self) -> None:
        if int(self.window) != self.window or self.window < 1:
            raise ValueError(f"window must be an integer >= 1, got {self.window!r}")
        if int(self.cold_start_samples) != self.cold_start_samples or self.cold_start_samples < 0:
            raise ValueError(f"cold_start_samples must be an integer >= 0, got {self.cold_start_samples!r}")


@dataclass(frozen=True)
class LatencySummary:
    """Latency distribution over the window, in seconds (count 0: all zeros)."""

    count: int
    mean_s: float
    p50_s: float
    p95_s: float
    p99_s: float
    max_s: float

    def as_milliseconds(self) -> dict[str, float | int]:
        """Fields of moe_vla_msgs/LatencyStats: count, mean_ms, p50_ms, p95_ms, p99_ms, max_ms."""
        return {
            "count": self.count,
            "mean_ms": self.mean_s * 1e3,
            "p50_ms": self.p50_s * 1e3,
            "p95_ms": self.p95_s * 1e3,
            "p99_ms": self.p99_s * 1e3,
            "max_ms": self.max_s * 1e3,
        }


class LatencyEstimator:
    """Collects latency samples (seconds) and summarises the recent ones."""

    def __init__(self, config: LatencyEstimatorConfig | None = None) -> None:
        self.config = config or LatencyEstimatorConfig()
        self._samples: deque[float] = deque(maxlen=self.config.window)
        self._ignored = 0
        self.total_samples = 0

    def reset(self) -> None:
        """Forget all samples and ignore the next cold-start samples again (new model loaded)."""
        self._samples.clear()
        self._ignored = 0

    @property
    def warmed_up(self) -> bool:
        """True once the cold-start samples have been seen."""
        return self._ignored >= self.config.cold_start_samples

    def add(self, latency_s: float) -> bool:
        """Record one latency; returns False when it was ignored as cold start.

        Raises:
            ValueError: a negative or non-finite latency (a clock problem, not a sample).
        """
        value = float(latency_s)
        if not math.isfinite(value) or value < 0.0:
            raise ValueError(f"latency must be a finite number of seconds >= 0, got {latency_s!r}")
        self.total_samples += 1
        if not self.warmed_up:
            self._ignored += 1
            return False
        self._samples.append(value)
        return True

    def summary(self) -> LatencySummary:
        """Mean, p50, p95, p99 and max of the window (linear-interpolated percentiles)."""
        if not self._samples:
            return LatencySummary(0, 0.0, 0.0, 0.0, 0.0, 0.0)
        values = np.fromiter(self._samples, dtype=np.float64, count=len(self._samples))  # [N]
        p50, p95, p99 = np.percentile(values, (50.0, 95.0, 99.0))
        return LatencySummary(
            len(values), float(values.mean()), float(p50), float(p95), float(p99), float(values.max())
        )

    def expected(self, percentile: float = 95.0, default_s: float = 0.0) -> float:
        """The `percentile` of the window in seconds, or `default_s` while there are no samples."""
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], got {percentile!r}")
        if not self._samples:
            return float(default_s)
        return float(np.percentile(np.fromiter(self._samples, dtype=np.float64), percentile))

    def steps_skipped(self, control_period_s: float, percentile: float = 95.0, default_s: float = 0.0) -> int:
        """Chunk steps already in the past when a chunk arrives, at the `percentile` latency.

        Step k of a chunk targets obs_time + (k+1)*period, so with latency L the first
        floor(L / period) steps are late and skipped on accept. A refill threshold should keep
        more than this many steps of the current chunk in reserve.
        """
        if not (math.isfinite(control_period_s) and control_period_s > 0.0):
            raise ValueError(f"control_period_s must be > 0, got {control_period_s!r}")
        latency = self.expected(percentile, default_s)
        return int(math.floor(latency / control_period_s + 1e-9))
