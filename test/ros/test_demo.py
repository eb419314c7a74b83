"""The README's main job, `moe_vla_demo`, on the bundled model: a short closed-loop run in CI.

The simulator runs in this process, the installed policy node as its own process with the
bundled model (models/default), the scripted expert on the same held-out scenes beside it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from moe_vla_ros.paths import bundled_model_dir
from moe_vla_ros.ros import demo
from moe_vla_ros.runtime.manifest import read_manifest

pytestmark = pytest.mark.ros


def test_demo_runs_the_bundled_model_closed_loop(tmp_path, capsys):
    out = tmp_path / "demo"
    assert demo.main(["--episodes", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "reach" in printed and "push" in printed and "report:" in printed

    report = json.loads((out / "report.json").read_text())
    policy, expert = report["success"]["policy"], report["success"]["expert"]
    assert policy["overall"]["episodes"] == 2 and set(policy) == {"reach", "push", "overall"}
    assert expert["overall"]["rate"] == 1.0  # the scripted expert solves the same scenes
    assert report["latency"]["inference"]["count"] >= 2
    manifest = read_manifest(bundled_model_dir())
    assert report["run"]["model_id"] == manifest.model_id
    for name in ("episodes/episode_000.json", "episodes/episode_001.json", "success_per_task.png",
                 "expert_usage.png", "episode_front.gif"):
        assert (out / name).is_file(), name
    for name in ("episodes/episode_000.json", "episodes/episode_001.json"):
        episode = json.loads((out / name).read_text())
        assert len(episode["trajectories"]) >= 2, f"{name}: the bundled model published no chunks"
        q = np.asarray(episode["joint_positions"])
        assert np.abs(q - q[0]).max() > 0.05, f"{name}: the arm did not move"


def test_demo_names_an_unknown_task_before_running(capsys):
    assert demo.main(["--tasks", "reach,fly", "--episodes", "1"]) == 2
    assert "fly" in capsys.readouterr().err
