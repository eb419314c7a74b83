"""Seeded random checkpoints: deterministic, loadable, with decisive routers."""

import pytest

from moe_vla_ros.export.demo_checkpoint import random_model, write_random_checkpoint
from moe_vla_ros.export.pipeline import weights_digest
from moe_vla_ros.model.checkpoint import load_checkpoint, load_tokenizer


def test_same_seed_same_weights(tmp_path):
    a = write_random_checkpoint(tmp_path / "a", "tiny", seed=3)
    b = write_random_checkpoint(tmp_path / "b", "tiny", seed=3)
    c = write_random_checkpoint(tmp_path / "c", "tiny", seed=4)
    assert weights_digest(a / "model.safetensors") == weights_digest(b / "model.safetensors")
    assert weights_digest(a / "model.safetensors") != weights_digest(c / "model.safetensors")
    model = load_checkpoint(a)
    assert model.is_fully_moe and load_tokenizer(a).vocab_size == model.cfg.vocab_size
    norm = model.cfg.contract.normalization
    assert norm.state_std != (1.0,) * len(norm.state_std), "normalisation is not the identity"


def test_routers_are_decisive():
    model, _ = random_model("tiny", seed=0)
    router = model.trunk.blocks[1].ffn.router.weight
    assert router.std().item() == pytest.approx(1.0, rel=0.2)


def test_unknown_preset():
    with pytest.raises(ValueError, match="'huge'"):
        random_model("huge")
