"""Tests of moe_vla_ros/runtime/usage_distance.py: distances between expert-load distributions."""

import math

import pytest

from moe_vla_ros.runtime.usage_distance import jensen_shannon, total_variation


@pytest.mark.parametrize("p, q, tv, js", [
    ([0.5, 0.5], [0.5, 0.5], 0.0, 0.0),
    ([1.0, 0.0], [0.0, 1.0], 1.0, 1.0),
    # m = (0.75, 0.25): JS = 0.5 * log2(4/3) + 0.5 * (0.5 * log2(2/3) + 0.5 * log2(2))
    ([1.0, 0.0], [0.5, 0.5], 0.5, 0.5 * math.log2(4 / 3) + 0.25 * math.log2(2 / 3) + 0.25),
    ([2.0, 2.0, 0.0], [1.0, 0.0, 1.0], 0.5, None),  # unnormalised input is normalised
])
def test_total_variation_and_jensen_shannon(p, q, tv, js):
    assert total_variation(p, q) == pytest.approx(tv)
    assert total_variation(q, p) == pytest.approx(tv)
    value = jensen_shannon(p, q)
    assert 0.0 <= value <= 1.0 and value == pytest.approx(jensen_shannon(q, p))
    if js is not None:
        assert value == pytest.approx(js)


def test_divergence_rejects_bad_distributions():
    with pytest.raises(ValueError, match="different numbers of experts"):
        total_variation([0.5, 0.5], [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="positive sum"):
        jensen_shannon([0.0, 0.0], [1.0, 0.0])
