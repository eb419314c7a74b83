"""Helpers for merging a new action chunk into the one being executed.

* :func:`blend_weights`: weight of the new chunk over the first steps where the two chunks
  overlap. Every mode starts near 0 (the first merged step stays next to where the executing
  chunk was going, so there is no position jump) and reaches 1 once the window is over (the
  new chunk takes over without a second jump).
* :func:`resample_chunk`: a chunk predicted on its own time grid (observation time + (k+1)*dt)
  sampled on the executor's control grid by linear interpolation.

Pure numpy: no rclpy.
"""

from __future__ import annotations

import math

import numpy as np

BLEND_MODES = ("smoothstep", "linear", "exponential", "none")
"""How the new chunk replaces the executing one over the overlap window:

smoothstep   weight 3s^2 - 2s^3: zero slope at both ends of the window, so the blend adds no
             velocity step where it starts or ends (recommended).
linear       weight s: a linear cross-fade.
exponential  weight (1 - exp(-rate*s)) / (1 - exp(-rate)): exponentially weighted, hands over
             to the newer prediction early in the window (larger rate, sooner).
none         the new chunk replaces the old one at once (the safety filter still limits the step).

with s = (j + 1) / (m + 1) for the j-th of m blended steps.
"""


def blend_weights(mode: str, count: int, exponential_rate: float = 3.0) -> np.ndarray:
    """Weights of the new chunk for `count` overlapping steps: float64 [count], in (0, 1).

    Raises:
        ValueError: unknown `mode`, negative `count`, or `exponential_rate` <= 0.
    """
    if mode not in BLEND_MODES:
        raise ValueError(f"blend mode must be one of {BLEND_MODES}, got {mode!r}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count!r}")
    if mode == "none" or count == 0:
        return np.zeros(0)
    s = np.arange(1, count + 1, dtype=np.float64) / (count + 1)  # [count] in (0, 1)
    if mode == "linear":
        return s
    if mode == "smoothstep":
        return s * s * (3.0 - 2.0 * s)
    if not (math.isfinite(exponential_rate) and exponential_rate > 0.0):
        raise ValueError(f"exponential_rate must be > 0, got {exponential_rate!r}")
    return -np.expm1(-exponential_rate * s) / -math.expm1(-exponential_rate)


def resample_chunk(chunk: np.ndarray, chunk_times: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Linearly interpolate `chunk` [H, J] (at `chunk_times` [H], uniformly spaced) at `times` [M].

    Times outside the chunk's span take the nearest end step. Returns float64 [M, J].
    """
    horizon = chunk.shape[0]
    if horizon == 1:
        return np.repeat(chunk.astype(np.float64), len(times), axis=0)
    spacing = (chunk_times[-1] - chunk_times[0]) / (horizon - 1)
    position = np.clip((np.asarray(times) - chunk_times[0]) / spacing, 0.0, horizon - 1)  # [M]
    below = np.minimum(np.floor(position).astype(np.int64), horizon - 2)  # [M]
    frac = (position - below)[:, None]  # [M, 1]
    return chunk[below] * (1.0 - frac) + chunk[below + 1] * frac  # [M, J]
