"""The report (JSON, table) and its figures from hand-made records and expert results."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest

from moe_vla_ros.evaluation.seams import SeamLimits
from moe_vla_ros.evaluation.sim.plots import write_plots
from moe_vla_ros.evaluation.sim.records import ExpertResult
from moe_vla_ros.evaluation.sim.report import build_report, format_table, write_report

EXPERT = [ExpertResult(0, 10_000, "reach", True, 1.5, 15), ExpertResult(1, 10_001, "push", True, 4.0, 40),
          ExpertResult(2, 10_002, "reach", False, 6.0, 60)]
LIMITS = SeamLimits((2.0, 0.2), (8.0, 2.0), 0.1)


def test_report_aggregates_policy_and_expert(records):
    report = build_report(records, EXPERT, LIMITS, {"model_id": "m"})
    assert report["run"] == {"model_id": "m"}
    assert report["success"]["policy"]["reach"] == {"episodes": 2, "successes": 1, "rate": 0.5}
    assert report["success"]["policy"]["overall"]["rate"] == pytest.approx(1 / 3)
    assert report["success"]["expert"]["push"]["rate"] == 1.0
    assert report["episode_time_s"]["policy"]["reach"] == pytest.approx(3.75)
    assert report["control_steps"]["expert"]["overall"] == pytest.approx(115 / 3)
    assert report["expert_usage"]["divergence"]["reach vs push"]["head.0"]["tv"] == pytest.approx(1.0)
    assert report["chunk_seams"]["count"] == 3 and report["chunk_seams"]["limits"]["within_bounds"] == 1.0
    rows = report["episodes"]
    assert [r["expert_success"] for r in rows] == [True, True, False]
    assert rows[1]["first_trace"] == "the red cube is ahead (push)" and rows[0]["chunks"] == 2
    assert rows[1]["last_trace"] == rows[1]["first_trace"] and rows[1]["last_phase"] == "unreadable"
    assert report["failures"]["by_last_phase"] == {"push": {"unreadable": 1}, "reach": {"unreadable": 1}}
    assert report["failures"]["shortfall_m"] == {}  # the records measured none
    assert [r["shortfall_m"] for r in rows] == [None, None, None]

    lines = {line.split()[0]: line.split() for line in format_table(report).splitlines()[2:5]}
    assert lines["reach"] == ["reach", "1/2", "50%", "1/2", "50%", "3.75", "37.5"]
    assert lines["push"] == ["push", "0/1", "0%", "1/1", "100%", "6.00", "60.0"]
    assert lines["overall"][1:5] == ["1/3", "33%", "2/3", "67%"]
    table = format_table(report)
    assert "over 6 inferences" in table and "chunk seams: 3 (0 starved)" in table and "100% within" in table
    assert "expert usage reach vs push: trunk.1 TV 1.000 JS 1.000" in table
    assert "failed push episodes by their last trace's phase: unreadable 1" in table
    records[1].shortfall_m = 0.025
    table = format_table(build_report(records))
    assert "failed push episodes ended 2.5 cm short of success (median of 1, max 2.5 cm)" in table


def test_report_without_expert_or_limits(records):
    report = build_report(records[:1])
    assert "expert" not in report["success"] and "limits" not in report["chunk_seams"]
    reach_row = format_table(report).splitlines()[2].split()
    assert reach_row[:4] == ["reach", "1/1", "100%", "-"]  # no expert column values


def test_report_and_figures_are_written(records, tmp_path):
    report = build_report(records, EXPERT, LIMITS)
    showcase = records[0]
    showcase.frames = [np.full((24, 32, 3), 40 * i, np.uint8) for i in range(5)]
    paths = write_plots(report, showcase, tmp_path)
    paths.update(write_report(report, records, tmp_path))
    assert json.loads(paths["report"].read_text())["success"]["policy"]["overall"]["episodes"] == 3
    assert sorted(p.name for p in (tmp_path / "episodes").iterdir()) == [f"episode_00{i}.json" for i in range(3)]
    for key in ("success_plot", "expert_usage_plot", "failure_phases_plot", "joint_trajectory_plot", "frame_strip"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", key
        assert iio.imread(paths[key]).shape[0] > 20
    assert iio.imread(paths["gif"]).shape == (5, 24, 32, 3)
    assert iio.imread(paths["frame_strip"]).shape[:2] == (24, 5 * 32)


def test_no_gif_without_frames_or_when_disabled(records, tmp_path):
    report = build_report(records)
    assert "gif" not in write_plots(report, records[0], tmp_path / "a")  # no frames recorded
    records[0].frames = [np.zeros((8, 8, 3), np.uint8)]
    paths = write_plots(report, records[0], tmp_path / "b", gif=False)
    assert "gif" not in paths and "joint_trajectory_plot" in paths
    assert set(write_plots(report, None, tmp_path / "c")) == {"success_plot", "expert_usage_plot", "failure_phases_plot"}
    all_succeeded = build_report(records[:1])
    assert "failure_phases_plot" not in write_plots(all_succeeded, None, tmp_path / "d")
