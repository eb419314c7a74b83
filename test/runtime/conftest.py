"""Fixtures of the runtime tests (the exported demo model comes from test/conftest.py)."""

from pathlib import Path

import pytest


@pytest.fixture
def model_copy(demo_export, tmp_path) -> Path:
    """A private copy of the exported model folder, for tests that damage it."""
    import shutil

    return Path(shutil.copytree(demo_export.model, tmp_path / "model"))
