"""Shared fixtures of the simulation tests: small, quickly rendered simulations."""

from __future__ import annotations

import pytest

from moe_vla_ros.sim.arm_sim import ArmSim
from moe_vla_ros.sim.config import SimConfig


@pytest.fixture
def small_config() -> SimConfig:
    """Small images so that rendering costs little."""
    return SimConfig(image_height=48, image_width=64, camera_names=("front", "wrist"))


@pytest.fixture
def sim(small_config):
    with ArmSim(small_config) as arm:
        yield arm
