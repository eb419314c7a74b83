"""Observation -> graph inputs and graph outputs -> contract units (numpy only).

    stack_images(images, cameras)      camera -> [H, W, 3] uint8  ->  [1, C, 3, H, W] uint8
    normalize_state(q, stats)          [J] rad                    ->  [1, J] float32 z-scores
    denormalize_actions(a, stats)      [1, H, J] action z-scores  ->  [H, J] float64 rad

Pixel normalisation happens inside the vision graph; images enter as raw uint8.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from moe_vla_ros.contract import NormalizationStats


def stack_images(images: Mapping[str, np.ndarray], camera_names: Sequence[str]) -> np.ndarray:
    """Images in contract camera order, HWC -> CHW, batch of 1: [1, C, 3, H, W] uint8."""
    stacked = np.stack([images[name] for name in camera_names])  # [C, H, W, 3]
    return np.ascontiguousarray(stacked.transpose(0, 3, 1, 2)[None])  # [1, C, 3, H, W]


def normalize_state(joint_positions: np.ndarray, stats: NormalizationStats) -> np.ndarray:
    """(q - state_mean) / state_std as [1, J] float32."""
    q = np.asarray(joint_positions, dtype=np.float64)  # [J]
    z = (q - np.asarray(stats.state_mean)) / np.asarray(stats.state_std)  # [J]
    return z.astype(np.float32)[None]  # [1, J]


def denormalize_actions(actions: np.ndarray, stats: NormalizationStats) -> np.ndarray:
    """Action z-scores [1, H, J] (or [H, J]) -> absolute joint targets [H, J] float64."""
    a = np.asarray(actions, dtype=np.float64).reshape(-1, len(stats.action_mean))  # [H, J]
    return a * np.asarray(stats.action_std) + np.asarray(stats.action_mean)  # [H, J]
