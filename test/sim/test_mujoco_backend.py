"""Headless OpenGL backend selection."""

from __future__ import annotations

import pytest

from moe_vla_ros.sim import mujoco_backend
from moe_vla_ros.sim.mujoco_backend import select_gl_backend


@pytest.fixture
def headless(monkeypatch):
    for name in ("MUJOCO_GL", "PYOPENGL_PLATFORM"):
        monkeypatch.setenv(name, "placeholder")  # so that monkeypatch restores the original state,
        monkeypatch.delenv(name)  # including variables select_gl_backend sets itself
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(mujoco_backend.sys, "platform", "linux")
    return monkeypatch


def test_user_choice_is_respected(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    assert select_gl_backend() == "osmesa"


def test_headless_prefers_egl_then_osmesa(headless):
    headless.setattr(mujoco_backend.ctypes.util, "find_library", lambda name: f"lib{name}.so")
    assert select_gl_backend() == "egl"
    assert mujoco_backend.os.environ["MUJOCO_GL"] == "egl"
    assert mujoco_backend.os.environ["PYOPENGL_PLATFORM"] == "egl"


def test_headless_falls_back_to_osmesa(headless):
    headless.setattr(mujoco_backend.ctypes.util, "find_library", lambda name: "libOSMesa.so" if name == "OSMesa" else None)
    assert select_gl_backend() == "osmesa"


def test_with_a_display_or_no_library_mujoco_default_is_kept(headless):
    headless.setattr(mujoco_backend.ctypes.util, "find_library", lambda name: None)
    assert select_gl_backend() == ""
    headless.setenv("DISPLAY", ":0")
    headless.setattr(mujoco_backend.ctypes.util, "find_library", lambda name: f"lib{name}.so")
    assert select_gl_backend() == ""
    assert "MUJOCO_GL" not in mujoco_backend.os.environ
