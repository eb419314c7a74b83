"""Distances between expert-load distributions (numpy only): how differently two tasks, or two
stretches of a bag, use the experts of one MoE layer.

Both take load vectors over the same E experts (normalised here) and return a value in [0, 1]:
total variation 1/2 sum |p - q| and the Jensen-Shannon divergence in bits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def load_distribution(p: Sequence[float]) -> np.ndarray:
    """A non-negative load vector normalised to sum 1; ValueError for an empty or all-zero one."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, None)
    total = p.sum()
    if p.ndim != 1 or p.size == 0 or not total > 0:
        raise ValueError(f"expected a non-negative vector with a positive sum, got {p.tolist()}")
    return p / total


def _pair(p: Sequence[float], q: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    p, q = load_distribution(p), load_distribution(q)
    if p.shape != q.shape:
        raise ValueError(f"distributions over different numbers of experts: {p.size} and {q.size}")
    return p, q


def total_variation(p: Sequence[float], q: Sequence[float]) -> float:
    """Total variation distance 1/2 sum |p - q| of two distributions (normalised first), in [0, 1]."""
    p, q = _pair(p, q)
    return float(0.5 * np.abs(p - q).sum())


def jensen_shannon(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon divergence in bits (normalised first), in [0, 1]."""
    p, q = _pair(p, q)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return float(min(max(0.5 * kl(p) + 0.5 * kl(q), 0.0), 1.0))
