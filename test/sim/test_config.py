"""SimConfig validation and the bundled model path."""

from __future__ import annotations

import pytest

from moe_vla_ros.sim.config import SimConfig, SimConfigError, default_model_path


def test_defaults_are_valid_and_derived_values_consistent():
    cfg = SimConfig()
    assert cfg.control_period_s == pytest.approx(0.1)
    assert cfg.physics_steps_per_control == 50
    assert default_model_path().is_file()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"image_height": 4}, "image_height must be an integer in \\[8, 2048\\], got 4"),
        ({"image_width": 10.5}, "image_width"),
        ({"camera_names": "front"}, "got the string 'front'"),
        ({"camera_names": ("front", "side")}, "'side'"),
        ({"camera_names": ("front", "front")}, "distinct"),
        ({"control_rate_hz": 0.0}, "control_rate_hz must be in \\[0.5, 100\\], got 0.0"),
        ({"physics_timestep_s": 0.05}, "physics_timestep_s must be in"),
        ({"physics_timestep_s": 0.003}, "whole number of steps"),
        ({"cube_spawn_x": (0.5, 0.3)}, "cube_spawn_x"),
        ({"cube_spawn_y": (0.0,)}, "cube_spawn_y must be a \\(min, max\\) pair"),
        ({"min_cube_separation": 0.01}, "min_cube_separation"),
        ({"model_path": "/nonexistent.xml"}, "/nonexistent.xml"),
    ],
)
def test_invalid_values_are_named_in_the_error(kwargs, message):
    with pytest.raises(SimConfigError, match=message):
        SimConfig(**kwargs)
