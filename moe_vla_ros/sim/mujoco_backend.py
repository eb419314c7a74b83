"""The one import point of `mujoco` inside moe_vla_ros.sim: picks a headless GL backend first.

MuJoCo picks its OpenGL backend once, when `mujoco` is first imported, from the MUJOCO_GL
environment variable (glfw when unset, which needs a display). Every sim module therefore
imports mujoco as `from moe_vla_ros.sim.mujoco_backend import mujoco`, which runs
`select_gl_backend()` before the real import.

Backend choice, in order:
  1. MUJOCO_GL as set by the user (never overridden);
  2. a display is available (DISPLAY / WAYLAND_DISPLAY set) or not Linux: MuJoCo's default;
  3. "egl" when libEGL can be loaded (Mesa renders on the CPU without a GPU);
  4. "osmesa" when libOSMesa can be loaded (Debian: `apt-get install -y libosmesa6`).
If mujoco was already imported (by other code) while MUJOCO_GL was unset, the renderer
context class is switched to the selected headless backend so that rendering still works.
"""

from __future__ import annotations

import ctypes.util
import importlib
import os
import sys

_HEADLESS_BACKENDS = (("egl", "EGL"), ("osmesa", "OSMesa"))


def select_gl_backend() -> str:
    """Choose MuJoCo's OpenGL backend (see module docstring) and export it as MUJOCO_GL.

    Returns the backend name ("" for MuJoCo's default). Must run before `import mujoco` to
    take effect; it is a no-op when MUJOCO_GL is already set.
    """
    chosen = os.environ.get("MUJOCO_GL")
    if chosen is not None:
        return chosen
    if not sys.platform.startswith("linux") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return ""
    for backend, library in _HEADLESS_BACKENDS:
        if ctypes.util.find_library(library):
            os.environ["MUJOCO_GL"] = backend
            os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            return backend
    return ""


def _switch_context_class(backend: str) -> None:
    """Point an already imported mujoco's renderer at `backend`'s GLContext (best effort)."""
    try:
        context_module = importlib.import_module(f"mujoco.{backend}")
        gl_context = importlib.import_module("mujoco.gl_context")
    except ImportError:
        return
    gl_context.GLContext = context_module.GLContext


_imported_before = "mujoco" in sys.modules and "MUJOCO_GL" not in os.environ
_backend = select_gl_backend()
if _imported_before and _backend in ("egl", "osmesa"):
    _switch_context_class(_backend)

import mujoco  # noqa: E402 - after MUJOCO_GL is chosen above

__all__ = ["mujoco", "select_gl_backend"]
