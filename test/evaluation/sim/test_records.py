"""Episode plans (held-out seeds, deterministic tasks) and the JSON round trip of episode records."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eval_records import sample_records

from moe_vla_ros.evaluation.records import EvaluationError, write_json
from moe_vla_ros.evaluation.sim.records import (
    DEFAULT_SEED_START,
    EpisodeRecord,
    EpisodeTermination,
    keep_showcase,
    plan_sim_episodes,
)


def test_plans_cycle_families_on_consecutive_held_out_seeds():
    plans = plan_sim_episodes(5, ("reach", "push"))
    assert [p.family for p in plans] == ["reach", "push", "reach", "push", "reach"]
    assert [p.seed for p in plans] == list(range(DEFAULT_SEED_START, DEFAULT_SEED_START + 5))
    assert [p.index for p in plans] == list(range(5))
    assert all(p.task.max_duration_s == {"reach": 6.0, "push": 10.0}[p.family] for p in plans)
    assert plan_sim_episodes(5, ("reach", "push")) == plans  # deterministic
    assert {p.task.direction for p in plans if p.family == "push"} <= {"left", "right"}
    assert len({p.task.color for p in plan_sim_episodes(12, ("reach",))}) > 1  # the seed picks the cube


def test_plans_take_a_time_limit_override_and_validate():
    assert {p.task.max_duration_s for p in plan_sim_episodes(3, ("reach", "push"), 0, 2.5)} == {2.5}
    with pytest.raises(EvaluationError, match="task families"):
        plan_sim_episodes(2, ("reach", "fly"))
    with pytest.raises(EvaluationError, match="episodes"):
        plan_sim_episodes(0, ("reach",))
    with pytest.raises(EvaluationError, match="seed_start"):
        plan_sim_episodes(2, ("reach",), -1)


def test_record_json_round_trip_leaves_frames_out(tmp_path):
    record = sample_records()[0]
    record.frames = [np.zeros((4, 4, 3), np.uint8)]
    path = write_json(tmp_path / "sub" / "episode.json", record.to_dict())
    data = json.loads(path.read_text())
    assert "frames" not in data and data["trajectories"][0]["time_from_start"] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    back = EpisodeRecord.from_dict(data)
    assert back.frames == [] and back.trajectories == record.trajectories and back.usage == record.usage
    assert back.to_dict() == record.to_dict()
    write_json(tmp_path / "np.json", {"a": np.float32(1.5), "b": np.arange(2)})
    assert json.loads((tmp_path / "np.json").read_text()) == {"a": 1.5, "b": [0, 1]}


def test_episode_ends_on_a_confirmed_success_or_at_the_time_limit():
    end = EpisodeTermination(t0=10.0, max_duration_s=2.0, confirm_s=0.3)
    assert not end.update(10.5, True) and not end.update(10.7, False)  # success lost before confirmation
    assert not end.update(10.9, True) and not end.update(11.1, True)
    assert end.update(11.2, True) and end.success and end.duration_s == pytest.approx(1.2)
    assert end.update(13.0, False) and end.success  # stays ended
    timeout = EpisodeTermination(t0=10.0, max_duration_s=2.0, confirm_s=0.3)
    assert not timeout.update(11.99, True)
    assert timeout.update(12.05, True) and not timeout.success and timeout.duration_s == 2.0
    assert EpisodeTermination(0.0, 1.0, 0.0).update(0.1, True)  # no confirmation period


def test_showcase_is_the_first_success_else_the_first_episode():
    first, second, _ = sample_records()  # success: True, False
    for r in (first, second):
        r.frames = [np.zeros((2, 2, 3), np.uint8)]
    failed_first = sample_records()[1]
    failed_first.frames = [np.zeros((2, 2, 3), np.uint8)]
    kept = keep_showcase(None, failed_first)
    assert kept is failed_first
    kept = keep_showcase(kept, first)  # a success replaces a failure; the failure's frames are dropped
    assert kept is first and failed_first.frames == [] and first.frames
    assert keep_showcase(kept, second) is first and second.frames == []
