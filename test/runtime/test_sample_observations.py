"""Seeded sample observations are deterministic and valid for their contract."""

import numpy as np

from moe_vla_ros.model.config import tiny_contract
from moe_vla_ros.runtime.sample_observations import INSTRUCTIONS, random_observation, random_observations


def test_deterministic_and_valid():
    contract = tiny_contract()
    a, b = random_observation(contract, 3), random_observation(contract, 3)
    a.validate(contract)
    np.testing.assert_array_equal(a.images["front"], b.images["front"])
    np.testing.assert_array_equal(a.joint_positions, b.joint_positions)
    assert not np.array_equal(a.images["front"], random_observation(contract, 4).images["front"])


def test_sequence_covers_every_instruction():
    observations = random_observations(tiny_contract(), 4, seed=0)
    assert [o.instruction for o in observations] == list(INSTRUCTIONS)
    assert len({o.stamp for o in observations}) == 4
