"""Observation -> graph inputs and graph outputs -> contract units."""

import numpy as np

from moe_vla_ros.contract import NormalizationStats
from moe_vla_ros.runtime.preprocessing import denormalize_actions, normalize_state, stack_images

STATS = NormalizationStats(state_mean=(0.1, -0.2), state_std=(0.5, 2.0), action_mean=(1.0, 0.0), action_std=(0.25, 4.0))


def test_stack_images_in_contract_order_chw():
    rng = np.random.default_rng(0)
    images = {name: rng.integers(0, 256, (4, 6, 3), dtype=np.uint8) for name in ("wrist", "front")}
    stacked = stack_images(images, ("front", "wrist"))
    assert stacked.shape == (1, 2, 3, 4, 6) and stacked.dtype == np.uint8 and stacked.flags.c_contiguous
    np.testing.assert_array_equal(stacked[0, 0], images["front"].transpose(2, 0, 1))
    np.testing.assert_array_equal(stacked[0, 1, 2], images["wrist"][..., 2])


def test_state_is_z_scored():
    z = normalize_state(np.array([0.6, 1.8]), STATS)
    assert z.shape == (1, 2) and z.dtype == np.float32
    np.testing.assert_allclose(z, [[1.0, 1.0]])


def test_actions_are_denormalised_to_float64():
    actions = denormalize_actions(np.array([[[0.0, 0.0], [4.0, -0.25]]], dtype=np.float32), STATS)
    assert actions.shape == (2, 2) and actions.dtype == np.float64
    np.testing.assert_allclose(actions, [[1.0, 0.0], [2.0, -1.0]])
