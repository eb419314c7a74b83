"""Tests of moe_vla_ros/training/resume.py through train_policy: an interrupted run that is
resumed ends with the same model and logs as an uninterrupted one."""

import dataclasses

import pytest
import torch
from safetensors.torch import load_file
from training_helpers import interrupt_at, quick

from moe_vla_ros.errors import BadInputError
from moe_vla_ros.training.resume import STATE_FILE
from moe_vla_ros.training.train import main, train_policy

torch.set_num_threads(1)


def _comparable(records):
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in records]


@pytest.mark.parametrize("stop_at", [5, 11])  # in the dense stage (steps 0-7), in the MoE stage (8-15)
def test_an_interrupted_run_resumes_to_the_same_model_and_logs(dataset_dir, tmp_path, monkeypatch, stop_at):
    whole = train_policy(dataset_dir, tmp_path / "whole", quick(seed=3, instruction_variants=0.5))
    cfg = quick(seed=3, instruction_variants=0.5, save_every=3)
    with monkeypatch.context() as patch:
        interrupt_at(patch, stop_at)
        with pytest.raises(KeyboardInterrupt):
            train_policy(dataset_dir, tmp_path / "cut", cfg)
    assert (tmp_path / "cut" / STATE_FILE).exists() and not (tmp_path / "cut" / "model.safetensors").exists()

    resumed = train_policy(dataset_dir, tmp_path / "cut", dataclasses.replace(cfg, resume=True))
    expected, got = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)
    assert resumed.final_train_loss == whole.final_train_loss
    assert _comparable(resumed.records) == _comparable(whole.records)  # logs cut back to the save, then continued
    on_disk = (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()
    assert len(on_disk) == len(whole.records)
    assert not (tmp_path / "cut" / STATE_FILE).exists()  # finished: nothing left to resume


def test_resume_refuses_other_settings_and_starts_fresh_without_a_state(dataset_dir, tmp_path, monkeypatch, capsys):
    cfg = quick(seed=3, save_every=2)
    with monkeypatch.context() as patch:
        interrupt_at(patch, 4)
        with pytest.raises(KeyboardInterrupt):
            train_policy(dataset_dir, tmp_path / "cut", cfg)
    with pytest.raises(BadInputError, match=r"other settings \(seed: saved 3, now 4\)"):
        train_policy(dataset_dir, tmp_path / "cut", dataclasses.replace(cfg, seed=4, resume=True))
    # runtime settings may change: here how often it saves
    train_policy(dataset_dir, tmp_path / "cut", dataclasses.replace(cfg, save_every=5, resume=True))

    fresh = tmp_path / "fresh"
    code = main(["--dataset", str(dataset_dir), "--out", str(fresh), "--preset", "tiny", "--dense-steps", "2",
                 "--moe-steps", "2", "--batch-size", "4", "--eval-every", "2", "--resume", "--save-every", "1"])
    assert code == 0 and "nothing to resume" in capsys.readouterr().out
    assert (fresh / "model.safetensors").exists() and not (fresh / STATE_FILE).exists()
