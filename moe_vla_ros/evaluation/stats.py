"""Summary statistics shared by the evaluation metrics (pure numpy)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def summary_stats(values: Sequence[float] | np.ndarray) -> dict:
    """count, mean, p50, p95, max of `values` (non-finite ones ignored; None when empty)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"count": 0, "mean": None, "p50": None, "p95": None, "max": None}
    p50, p95 = np.percentile(v, (50.0, 95.0))
    return {"count": int(v.size), "mean": float(v.mean()), "p50": float(p50), "p95": float(p95), "max": float(v.max())}
