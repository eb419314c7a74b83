"""Every console entry point of the package starts and answers --help."""

import subprocess
from importlib.metadata import distribution
from pathlib import Path
import sys

import pytest

from moe_vla_ros.ros.testing import isolated_ros_env


def _declared_scripts() -> list[str]:
    source = (Path(__file__).resolve().parents[1] / "setup.py").read_text()
    namespace: dict = {}
    start = source.index("CONSOLE_SCRIPTS = [")
    exec(source[start : source.index("]", start) + 1], namespace)
    return [spec.split("=")[0].strip() for spec in namespace["CONSOLE_SCRIPTS"]]


def _installed_scripts() -> dict[str, str]:
    eps = distribution("moe_vla_ros").entry_points
    return {ep.name: ep.value for ep in eps if ep.group == "console_scripts"}


def test_declared_entry_points_are_installed():
    declared = _declared_scripts()
    assert declared, "setup.py declares no console scripts"
    missing = sorted(set(declared) - set(_installed_scripts()))
    assert not missing, f"declared but not installed (re-run scripts/setup.sh): {missing}"


@pytest.mark.parametrize("name", _declared_scripts())
def test_entry_point_answers_help(name):
    """Runs the installed executable itself (as `ros2 run` or a shell would)."""
    exe = Path(sys.executable).with_name(name)
    assert exe.is_file(), f"{exe} is not installed (re-run scripts/setup.sh)"
    run = subprocess.run([str(exe), "--help"], env=isolated_ros_env(), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"{name} --help failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
    assert "usage:" in run.stdout.lower(), f"{name} --help printed no usage:\n{run.stdout[-2000:]}"
