"""Tests of moe_vla_ros/control/chunk_config.py: executor settings and their validation."""

import pytest

from moe_vla_ros.contract import PolicyContract, SensorContract
from moe_vla_ros.control.chunk_config import ChunkExecutorConfig


def test_from_contract_takes_joints_period_and_length():
    sensors = SensorContract(("wrist",), 96, 96, ("a", "b", "c"), control_rate_hz=20.0)
    config = ChunkExecutorConfig.from_contract(PolicyContract(sensors, chunk_length=8), blend="linear")
    assert (config.num_joints, config.chunk_length, config.blend) == (3, 8, "linear")
    assert config.control_period_s == pytest.approx(0.05)


def test_refill_threshold_defaults_to_half_a_chunk_and_accepts_steps_or_seconds():
    base = {"num_joints": 2, "control_period_s": 0.1, "chunk_length": 16}
    assert ChunkExecutorConfig(**base).refill_threshold == pytest.approx(0.8)
    assert ChunkExecutorConfig(**base, refill_threshold_steps=5).refill_threshold == pytest.approx(0.5)
    assert ChunkExecutorConfig(**base, refill_threshold_s=0.35).refill_threshold == pytest.approx(0.35)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"num_joints": 0}, "num_joints must be an integer >= 1, got 0"),
        ({"control_period_s": 0.0}, "control_period_s must be > 0, got 0.0"),
        ({"chunk_length": 0}, "chunk_length must be an integer >= 1"),
        ({"refill_threshold_steps": 16}, r"refill_threshold_steps must be an integer in \[0, 16\), got 16"),
        ({"refill_threshold_s": 1.6}, "refill_threshold_s must be shorter than a chunk"),
        ({"refill_threshold_steps": 4, "refill_threshold_s": 0.4}, "not both"),
        ({"blend": "cubic"}, "blend must be one of"),
        ({"blend_steps": 0}, "blend_steps must be an integer >= 1, got 0"),
        ({"exponential_rate": -1.0}, "exponential_rate must be > 0"),
        ({"max_observation_age_s": 0.0}, "max_observation_age_s must be > 0"),
        ({"max_clock_skew_s": -0.1}, "max_clock_skew_s must be >= 0"),
        ({"execution_lead_s": float("nan")}, "execution_lead_s must be >= 0, got nan"),
        ({"max_tracking_error_rad": 0.0}, "max_tracking_error_rad must be > 0"),
        ({"hold_rest_s": -0.5}, "hold_rest_s must be >= 0, got -0.5"),
        ({"allow_nonzero_end_velocity": "no"}, "allow_nonzero_end_velocity must be a bool, got 'no'"),
    ],
)
def test_validation_names_the_bad_value(change, message):
    with pytest.raises(ValueError, match=message):
        ChunkExecutorConfig(**{"num_joints": 2, "control_period_s": 0.1, "chunk_length": 16, **change})
