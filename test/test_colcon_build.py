"""The repository builds the usual ROS 2 way: `colcon build` in a workspace (both packages)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from moe_vla_ros.ros.testing import REPO_ROOT, isolated_ros_env

pytestmark = pytest.mark.slow


def _copy_source_tree(dst: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO_ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    for rel in files:
        src = REPO_ROOT / rel
        if src.is_file() and not rel.startswith("models/"):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)


def test_colcon_builds_messages_and_package(tmp_path):
    colcon = Path(sys.executable).with_name("colcon")
    if not colcon.exists():
        pytest.fail(f"colcon is not installed next to {sys.executable}: scripts/setup.sh installs it")
    src = tmp_path / "src" / "moe_vla_ros"
    _copy_source_tree(src)
    env = isolated_ros_env()
    venv = str(Path(sys.executable).parents[1])
    env["AMENT_PREFIX_PATH"] = venv
    env["PATH"] = f"{venv}/bin:{env['PATH']}"
    build = subprocess.run(
        [str(colcon), "build", "--base-paths", "src/moe_vla_ros", "src/moe_vla_ros/moe_vla_msgs",
         "--event-handlers", "console_direct-"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert "Finished <<< moe_vla_msgs" in build.stdout + build.stderr
    assert "Finished <<< moe_vla_ros" in build.stdout + build.stderr

    # The workspace's own build of the messages must be what a sourced workspace imports.
    probe = (
        "import moe_vla_msgs, moe_vla_ros; from moe_vla_msgs.msg import ReasoningTrace, PolicyStatus, ExpertUsage; "
        "print(moe_vla_msgs.__file__); print(moe_vla_ros.__file__)"
    )
    run = subprocess.run(
        ["bash", "-c", f". install/setup.sh && {sys.executable} -c '{probe}'"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    msgs_file, pkg_file = run.stdout.split()
    assert msgs_file.startswith(str(tmp_path / "install" / "moe_vla_msgs")), msgs_file
    assert pkg_file.startswith(str(tmp_path / "install" / "moe_vla_ros")), pkg_file
    share = tmp_path / "install" / "moe_vla_ros" / "share" / "moe_vla_ros"
    assert (share / "package.xml").is_file()
    for folder in ("launch", "config"):
        if (REPO_ROOT / folder).is_dir() and any((REPO_ROOT / folder).iterdir()):
            assert any((share / folder).iterdir()), f"{folder}/ not installed into share/"
