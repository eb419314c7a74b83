"""Tests of moe_vla_ros/model/checkpoint.py: safetensors + JSON round trip and contract checks."""

import dataclasses
import json

import pytest
import torch

from moe_vla_ros.contract import ContractError
from moe_vla_ros.export.examples import example_batch
from moe_vla_ros.model.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_tokenizer,
    read_checkpoint_config,
    save_checkpoint,
)
from moe_vla_ros.model.config import ModelConfig
from moe_vla_ros.model.vla import MoEVLA
from moe_vla_ros.runtime.tokenization import InstructionTokenizer

torch.set_num_threads(1)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    tokenizer = InstructionTokenizer.train(["reach the red square", "moving there"], 8, 10)
    cfg = dataclasses.replace(ModelConfig.tiny(), vocab_size=tokenizer.vocab_size)
    model = MoEVLA(cfg).eval()
    save_checkpoint(model, tmp_path / "ckpt", tokenizer, metadata={"note": "test"})
    return model, tmp_path / "ckpt"


def predictions(model, batch):
    with torch.no_grad():
        trunk = model.encode(batch["images"], batch["instruction_ids"], batch["instruction_mask"], batch["state"])
        head = model.action_head(trunk.tokens, batch["state"], batch["reasoning_ids"], batch["reasoning_mask"])
    return trunk.tokens, trunk.router_logits, head.actions


def test_round_trip_gives_identical_outputs(saved):
    model, path = saved
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
    ]
    loaded = load_checkpoint(path, expected_contract=model.cfg.contract.sensors)
    assert loaded.cfg == model.cfg and not loaded.training
    batch = example_batch(model.cfg, batch_size=2)
    for a, b in zip(predictions(model, batch), predictions(loaded, batch)):
        assert torch.equal(a, b)
    cfg, metadata = read_checkpoint_config(path)
    assert cfg == model.cfg and metadata == {"note": "test"}
    assert load_tokenizer(path).encode("reach the red square")[1].sum() == 4


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(joint_names=("joint_1", "joint_2", "finger")), "joint_names"),
        (dict(image_height=64, image_width=64), "image_height"),
        (dict(camera_names=("front",)), "camera_names"),
    ],
)
def test_contract_mismatch_raises_a_clear_error(saved, change, field):
    model, path = saved
    expected = dataclasses.replace(model.cfg.contract.sensors, **change)
    with pytest.raises(ContractError, match=field) as info:
        load_checkpoint(path, expected_contract=expected)
    assert "checkpoint" in str(info.value) and "expected contract" in str(info.value)


def test_refuses_models_that_are_not_upcycled(tmp_path):
    model = MoEVLA(ModelConfig.tiny(), use_moe=False)
    with pytest.raises(CheckpointError, match="upcycle"):
        save_checkpoint(model, tmp_path / "dense")


def test_weights_that_do_not_fit_the_config_are_rejected(saved):
    _, path = saved
    raw = json.loads((path / "config.json").read_text())
    raw["model"]["trunk"]["ffn_hidden"] = 48
    raw["model"]["trunk"]["moe"]["d_hidden"] = 48
    (path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(path)


def test_missing_or_foreign_files(tmp_path, saved):
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(tmp_path / "nothing")
    _, path = saved
    raw = json.loads((path / "config.json").read_text())
    raw["format"] = "pickle"
    (path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="format"):
        load_checkpoint(path)


def test_tokenizer_must_match_the_model(tmp_path):
    tokenizer = InstructionTokenizer.train(["a b c"], 8, 10)
    model = MoEVLA(ModelConfig.tiny(vocab_size=tokenizer.vocab_size + 1))
    with pytest.raises(CheckpointError, match="tokens"):
        save_checkpoint(model, tmp_path / "x", tokenizer)
