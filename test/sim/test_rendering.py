"""CameraRenderer: sizes, errors, closing."""

from __future__ import annotations

import numpy as np
import pytest

from moe_vla_ros.sim import rendering
from moe_vla_ros.sim.rendering import CameraRenderer, RenderingError


def test_renders_every_camera_of_the_model(sim):
    with CameraRenderer(sim.model, 16, 24) as renderer:
        assert set(renderer.camera_names) == {"front", "wrist", "top"}
        for camera in renderer.camera_names:
            image = renderer.render(sim.data, camera)
            assert image.shape == (16, 24, 3) and image.dtype == np.uint8


def test_closed_renderer_and_bad_sizes_are_errors(sim):
    renderer = CameraRenderer(sim.model, 16, 16)
    renderer.close()
    with pytest.raises(RenderingError, match="closed"):
        renderer.render(sim.data, "front")
    with pytest.raises(RenderingError, match="height=0"):
        CameraRenderer(sim.model, 0, 16)


def test_context_failure_explains_how_to_fix_it(sim, monkeypatch):
    def no_context(*args, **kwargs):
        raise RuntimeError("no display")

    monkeypatch.setattr(rendering.mujoco, "Renderer", no_context)
    with pytest.raises(RenderingError, match="no display.*MUJOCO_GL=osmesa .*libosmesa6"):
        CameraRenderer(sim.model, 16, 16)
