"""Tests of moe_vla_ros/evaluation/compare_experts.py: statistics, the report, step reuse, the CLI
and one tiny end-to-end run through the real tools (demos, three trainings, export, closed loop)."""

import json
from pathlib import Path

import pytest

from moe_vla_ros.errors import BadInputError
from moe_vla_ros.evaluation import compare_experts as ce
from moe_vla_ros.evaluation.compare_experts import (
    ARMS,
    CompareConfig,
    Runner,
    build_report,
    compare,
    fisher_exact,
    main,
    markdown,
    wilson_interval,
    write_plots,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_wilson_interval():
    lo, hi = wilson_interval(0, 40)
    assert lo == 0.0 and hi == pytest.approx(0.0876, abs=1e-4)
    lo, hi = wilson_interval(20, 40)
    assert (lo, hi) == (pytest.approx(0.3520, abs=1e-4), pytest.approx(0.6480, abs=1e-4))
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_fisher_exact():
    assert fisher_exact(4, 40, 0, 40) == pytest.approx(0.1156, abs=1e-4)  # models/lerobot_parity.md: 0.12
    assert fisher_exact(0, 40, 4, 40) == pytest.approx(fisher_exact(4, 40, 0, 40))
    assert fisher_exact(7, 20, 7, 20) == pytest.approx(1.0)
    assert fisher_exact(10, 10, 0, 10) == pytest.approx(2 / 184756)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(episodes=0), "episodes must be an integer >= 1"),
        (dict(seed_blocks=(10000, 10020)), "overlap"),
        (dict(seed_blocks=()), "must not be empty"),
        (dict(parallel_trainings=0), "parallel_trainings"),
        (dict(max_duration=0.0), "max_duration"),
        (dict(arms=("dense_active", "dense_total")), "including 'moe'"),
        (dict(arms=("moe", "sparse")), "arms must be"),
        (dict(arms=("moe", "moe")), "distinct"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CompareConfig(**kwargs)


def test_arms_run_in_reference_order():
    assert CompareConfig(arms=("dense_active", "moe")).arms == ("moe", "dense_active")
    assert CompareConfig(arms="moe").arms == ("moe",)


def test_train_settings_follow_the_arm():
    cfg = CompareConfig(dense_steps=30, moe_steps=10)
    assert [cfg.train_settings(a)["dense_baseline"] for a in ARMS] == [None, "active", "total"]
    shared = Path("features")
    moe = cfg.train_args("moe", shared)
    assert "--dense-baseline" not in moe
    assert cfg.train_args("dense_total", shared)[-2:] == ["--dense-baseline", "total"]
    assert moe[moe.index("--dense-steps") + 1] == "30"
    for arm in ARMS:  # the arms train on the same frames with the same frozen backbone: one feature cache
        args = cfg.train_args(arm, shared)
        assert args[args.index("--feature-cache") + 1] == "features"


def _eval_report(successes: int, episodes: int, usage: dict | None = None) -> dict:
    """An evaluation of reach (all but two episodes) and push (two, one a success)."""
    return {"success": {"policy": {"reach": {"episodes": episodes - 2, "successes": successes - 1},
                                   "push": {"episodes": 2, "successes": 1},
                                   "overall": {"episodes": episodes, "successes": successes}}},
            "latency": {"inference": {"p50_ms": 20.0}},
            "expert_usage": {"per_task": {"reach": usage}} if usage else {}}


def _parts() -> dict:
    usage = {"trunk.blocks.1.ffn": [0.5, 0.25, 0.25, 0.0], "action_head.blocks.0.ffn": [0.25] * 4}
    meta = {
        "moe": {"parameters": {"total": 1000, "active": 600}},
        "dense_active": {"parameters": {"total": 598, "active": 598}},
        "dense_total": {"parameters": {"total": 996, "active": 996}},
    }
    wins = {"moe": (6, 3), "dense_active": (2, 1), "dense_total": (5, 5)}
    return {arm: {"checkpoint_meta": {"training": {**meta[arm], "final_eval": {"action_l1_rad_episode_start": 0.1},
                                                   "steps": 7}},
                  "evals": {10000: _eval_report(wins[arm][0], 10, usage if arm == "moe" else None),
                            20000: _eval_report(wins[arm][1], 10, usage if arm == "moe" else None)}}
            for arm in ARMS}


def _latency(scale: float) -> dict:
    return {mode: {s: {"p50": scale * (i + 1), "p90": scale * (i + 2)} for i, s in enumerate(ce.STAGES)}
            for mode in ("cached", "fresh")}


def test_report_table_and_plots(tmp_path):
    cfg = CompareConfig(episodes=10, tasks=("reach", "push"))
    latency = {"moe": _latency(2.0), "dense_active": _latency(1.0), "dense_total": _latency(4.0)}
    report = build_report(cfg, _parts(), latency, {"train_moe": 1.0})
    moe, active, total = (report["arms"][a] for a in ARMS)
    assert (moe["success"]["successes"], moe["success"]["episodes"]) == (9, 20)
    assert moe["success"]["per_task"]["reach"] == {"successes": 7, "episodes": 16, "rate": 7 / 16,
                                                   "wilson95": list(wilson_interval(7, 16))}
    assert (active["success"]["per_task"]["push"]["successes"], active["success"]["per_task"]["push"]["episodes"]) == (2, 4)
    assert active["vs_moe"]["per_task_fisher_exact_p"]["reach"] == pytest.approx(fisher_exact(7, 16, 1, 16))
    assert active["vs_moe"]["per_task_fisher_exact_p"]["push"] == pytest.approx(1.0)
    assert moe["success"]["blocks"]["10000"]["rate"] == 0.6
    assert moe["success"]["wilson95"] == list(wilson_interval(9, 20))
    assert active["vs_moe"]["success_difference"] == pytest.approx(3 / 20 - 9 / 20)
    assert active["vs_moe"]["fisher_exact_p"] == pytest.approx(fisher_exact(9, 20, 3, 20))
    assert active["vs_moe"]["latency_ratio"]["cached"]["total"] == pytest.approx(0.5)
    assert total["vs_moe"]["parameter_ratio"]["total"] == pytest.approx(0.996)
    summary = moe["expert_usage"]["summary"]
    assert summary["action_head.blocks.0.ffn"]["normalised_entropy"] == pytest.approx(1.0)
    assert summary["trunk.blocks.1.ffn"]["max_share"] == 0.5 and summary["trunk.blocks.1.ffn"]["min_share"] == 0.0
    assert not active["expert_usage"]["per_layer"]
    table = markdown(report)
    assert "| (a) MoE recipe | 0.001 / 0.001 | 6/10 | 3/10 | 9/20 (45 %, 26 %-66 %) |" in table
    assert "| (b) dense, equal active |" in table and "trunk.blocks.1.ffn | 0.75 |" in table
    assert "| arm | reach | push |" in table
    assert f"| (b) dense, equal active | 1/16 (6 %, 1 %-28 %), p {fisher_exact(7, 16, 1, 16):.2f} | 2/4 (50 %," in table
    paths = write_plots(report, tmp_path)
    assert set(paths) == {"success", "latency", "expert_usage"}
    assert all((tmp_path / f"{name}.png").read_bytes()[:8] == PNG_MAGIC for name in paths)
    json.dumps(report)  # serialisable


def test_trained_arm_is_reused_only_with_the_same_settings(tmp_path, monkeypatch):
    cfg = CompareConfig(dense_steps=30, moe_steps=10)
    runner = Runner(tmp_path, cfg, progress=False)
    ran = []
    monkeypatch.setattr(runner, "tools", lambda jobs: ran.extend(log for _, log, _ in jobs))
    for arm in ARMS:
        ckpt = tmp_path / arm / "checkpoint"
        ckpt.mkdir(parents=True)
        (ckpt / "model.safetensors").write_bytes(b"")
        settings = {**cfg.train_settings(arm), "progress": False, "lr": 1e-3}
        (ckpt / "train_config.json").write_text(json.dumps(settings))
    runner.train(ARMS)
    assert ran == []
    (tmp_path / "dense_total" / "checkpoint" / "model.safetensors").unlink()
    runner.train(ARMS)
    assert ran == ["train_dense_total"]
    other = {**cfg.train_settings("moe"), "moe_steps": 11}
    (tmp_path / "moe" / "checkpoint" / "train_config.json").write_text(json.dumps(other))
    with pytest.raises(BadInputError, match="moe_steps"):
        runner.train(ARMS)


def test_demonstrations_cut_short_are_generated_again(tmp_path, monkeypatch):
    from moe_vla_ros.data.dataset import DatasetWriter
    from moe_vla_ros.model.config import tiny_contract

    runner = Runner(tmp_path, CompareConfig(), progress=False)
    ran = []
    monkeypatch.setattr(runner, "tools", lambda jobs: ran.extend(log for _, log, _ in jobs))
    writer = DatasetWriter(runner.demos, tiny_contract().sensors)  # a generation killed mid-way
    writer.close(complete=False)
    runner.make_demos()
    assert ran == ["demos"] and not runner.demos.exists()  # removed, then the tool writes it anew
    DatasetWriter(runner.demos, tiny_contract().sensors).close()
    runner.make_demos()
    assert ran == ["demos"]  # a finished one is reused


def test_cli_refuses_bad_values(tmp_path, capsys):
    assert main(["-o", str(tmp_path / "c"), "--episodes", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{ce.PROG}: error: ") and "episodes" in err
    assert main(["-o", str(tmp_path / "c"), "--config", "{bad json"]) == 2
    assert not (tmp_path / "c").exists()


@pytest.mark.ros
@pytest.mark.slow
def test_end_to_end_tiny(tmp_path):
    """The real tools on a tiny preset: 3 demos, 3 training steps per arm (trained at once), export,
    1 closed-loop episode per seed block and arm (0.5 s), one latency round; first two arms, then
    a second run that adds the third."""
    settings = dict(demos=3, image_size=32, preset="tiny", model_overrides={}, dense_steps=2, moe_steps=1,
                    eval_every=10, episodes=1, seed_blocks=(10000, 20000), max_duration=0.5,
                    latency_rounds=1, latency_iterations=1, parallel_trainings=3)
    first = compare(tmp_path, CompareConfig(**settings, arms=("moe", "dense_active")), progress=False)
    assert list(first["arms"]) == ["moe", "dense_active"] and not (tmp_path / "dense_total").exists()
    moe_eval = (tmp_path / "moe" / "eval_10000" / "report.json").stat().st_mtime_ns
    cfg = CompareConfig(**settings)  # every arm: the two done are reused, dense_total is added
    report = compare(tmp_path, cfg, progress=False)
    assert (tmp_path / "moe" / "eval_10000" / "report.json").stat().st_mtime_ns == moe_eval
    assert list(report["arms"]) == list(ARMS)
    for arm, entry in report["arms"].items():
        assert entry["success"]["episodes"] == 2 and set(entry["success"]["blocks"]) == {"10000", "20000"}
        assert entry["training"]["steps"] == 3
        assert entry["latency_ms"]["cached"]["total"]["p50"] > 0
        assert (tmp_path / arm / "model" / "manifest.json").is_file()
    params = {arm: report["arms"][arm]["parameters"] for arm in ARMS}
    assert params["dense_active"]["total"] == params["dense_active"]["active"]
    assert abs(params["dense_active"]["active"] - params["moe"]["active"]) < 0.01 * params["moe"]["active"]
    assert abs(params["dense_total"]["total"] - params["moe"]["total"]) < 0.01 * params["moe"]["total"]
    assert report["arms"]["moe"]["expert_usage"]["per_layer"]  # the node's ExpertUsage of the MoE arm
    assert not report["arms"]["dense_active"]["expert_usage"]["per_layer"]
    for name in ("report.json", "report.md", "success.png", "latency.png", "expert_usage.png"):
        assert (tmp_path / name).is_file(), name
    assert json.loads((tmp_path / "report.json").read_text())["config"]["episodes"] == 1
