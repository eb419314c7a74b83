"""Tests of moe_vla_ros/control/blending.py: seam weights and chunk resampling."""

import numpy as np
import pytest

from moe_vla_ros.control.blending import BLEND_MODES, blend_weights, resample_chunk


@pytest.mark.parametrize("mode", [m for m in BLEND_MODES if m != "none"])
@pytest.mark.parametrize("count", [1, 2, 5, 12])
def test_weights_rise_strictly_inside_zero_one(mode, count):
    w = blend_weights(mode, count)
    assert w.shape == (count,)
    assert (w > 0).all() and (w < 1).all()
    assert (np.diff(w) > 0).all()


def test_weight_shapes():
    np.testing.assert_allclose(blend_weights("linear", 3), [0.25, 0.5, 0.75])
    np.testing.assert_allclose(blend_weights("smoothstep", 1), [0.5])  # symmetric around the middle
    smooth = blend_weights("smoothstep", 9)
    np.testing.assert_allclose(smooth + smooth[::-1], 1.0)
    assert smooth[0] < blend_weights("linear", 9)[0]  # gentler start than a linear fade
    fast, slow = blend_weights("exponential", 4, 6.0), blend_weights("exponential", 4, 0.5)
    assert (fast > slow).all()  # a larger rate hands over sooner
    np.testing.assert_allclose(blend_weights("exponential", 4, 1e-6), blend_weights("linear", 4), atol=1e-5)


def test_none_and_empty_give_no_weights():
    assert blend_weights("none", 5).shape == (0,)
    assert blend_weights("linear", 0).shape == (0,)


@pytest.mark.parametrize(
    "args, message",
    [
        (("cubic", 3), "blend mode must be one of"),
        (("linear", -1), "count must be >= 0"),
        (("exponential", 3, 0.0), "exponential_rate must be > 0"),
    ],
)
def test_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        blend_weights(*args)


def test_resample_is_exact_for_a_linear_path():
    times = 1.0 + 0.1 * np.arange(1, 9)  # [8]
    chunk = np.stack([2.0 * times, -times], axis=1)  # [8, 2]
    query = np.array([1.13, 1.5, 1.77])
    np.testing.assert_allclose(resample_chunk(chunk, times, query), np.stack([2.0 * query, -query], axis=1))


def test_resample_holds_the_ends():
    times = np.array([1.0, 1.1, 1.2])
    chunk = np.array([[0.0], [1.0], [2.0]])
    np.testing.assert_allclose(resample_chunk(chunk, times, np.array([0.5, 1.2, 9.0])), [[0.0], [2.0], [2.0]])
    np.testing.assert_allclose(resample_chunk(chunk[:1], times[:1], np.array([0.0, 5.0])), [[0.0], [0.0]])
