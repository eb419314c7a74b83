"""Warm-up inferences (control/warm_up.py), as the node and the offline evaluator run them."""

import numpy as np

from moe_vla_ros.contract import PolicyContract, SensorContract
from moe_vla_ros.control.safety import SafetyLimits
from moe_vla_ros.control.warm_up import warm_up
from moe_vla_ros.runtime.types import Policy, PolicyMetadata

CONTRACT = PolicyContract(SensorContract(("front",), 16, 24, ("a", "b"), control_rate_hz=10.0), chunk_length=4)


class Recorder(Policy):
    contract = CONTRACT

    def __init__(self):
        self.observations, self.resets = [], 0

    @property
    def metadata(self):
        return PolicyMetadata("recorder", "test", (), False)

    def infer(self, observation, generate_reasoning=True):
        self.observations.append(observation)

    def reset(self):
        self.resets += 1


def test_neutral_observations_then_a_reset():
    policy = Recorder()
    warm_up(policy, 2)
    assert len(policy.observations) == 2 and policy.resets == 1
    obs = policy.observations[0]
    assert obs.images["front"].shape == (16, 24, 3) and not obs.images["front"].any()
    np.testing.assert_allclose(obs.joint_positions, CONTRACT.normalization.state_mean)
    limits = SafetyLimits(("a", "b"), (-1.0, 0.0), (1.0, 2.0), (1.0, 1.0), (5.0, 5.0))
    warm_up(policy, 1, limits)
    np.testing.assert_allclose(policy.observations[-1].joint_positions, [0.0, 1.0])  # middle of the limits


def test_no_runs_touch_nothing():
    policy = Recorder()
    warm_up(policy, 0)
    assert policy.observations == [] and policy.resets == 0
