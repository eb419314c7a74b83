"""Offscreen camera rendering for the MuJoCo sim (uint8 RGB arrays, no display needed).

The OpenGL backend is chosen by `moe_vla_ros.sim.mujoco_backend` (MUJOCO_GL if set, else
EGL, else OSMesa when no display is available).
"""

from __future__ import annotations

import os
from typing import Self

import numpy as np

from moe_vla_ros.errors import FailedError
from moe_vla_ros.sim.mujoco_backend import mujoco


class RenderingError(FailedError):
    """No offscreen OpenGL context could be created, or a render request is invalid."""


def _fix_hint() -> str:
    backend = os.environ.get("MUJOCO_GL", "<unset>")
    return (
        f"MUJOCO_GL={backend}. Headless rendering needs MUJOCO_GL=egl (Mesa's libEGL) or "
        "MUJOCO_GL=osmesa (Debian: apt-get install -y libosmesa6), set before mujoco is imported."
    )


class OwnsRenderer:
    """Closes the renderer it holds in `_renderer` (None once closed) on `close()` or at the end of
    a `with` block; closing twice is harmless."""

    _renderer: CameraRenderer | mujoco.Renderer | None = None

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CameraRenderer(OwnsRenderer):
    """Renders named cameras of one model into uint8 RGB arrays of a fixed size.

    Owns an OpenGL context: call `close()` (or use it as a context manager) when done.
    The model's offscreen buffer is enlarged if the requested size needs it.
    """

    def __init__(self, model, height: int, width: int) -> None:
        if int(height) < 1 or int(width) < 1:
            raise RenderingError(f"image size must be positive, got height={height!r} width={width!r}")
        self.height, self.width = int(height), int(width)
        model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), self.width)
        model.vis.global_.offheight = max(int(model.vis.global_.offheight), self.height)
        self._camera_ids = {
            mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i): i for i in range(model.ncam)
        }
        try:
            self._renderer = mujoco.Renderer(model, self.height, self.width)
        except Exception as e:  # the GL backends raise several unrelated exception types
            raise RenderingError(f"cannot create an offscreen OpenGL context ({e}). {_fix_hint()}") from e

    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(self._camera_ids)

    def render(self, data, camera: str) -> np.ndarray:
        """Return the view of `camera` for the (forward-computed) state `data`: uint8 [H, W, 3]."""
        if self._renderer is None:
            raise RenderingError("renderer is closed")
        if camera not in self._camera_ids:
            raise RenderingError(f"unknown camera {camera!r}; the model has {sorted(self._camera_ids)}")
        self._renderer.update_scene(data, camera=self._camera_ids[camera])
        return self._renderer.render()
