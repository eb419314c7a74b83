"""Tests of moe_vla_ros/training/train_config.py: validation and round trip."""

import pytest

from moe_vla_ros.training.train_config import TrainConfig


def test_round_trip():
    cfg = TrainConfig(preset="tiny", dense_steps=3, moe_lr=1e-4, model_overrides={"loss": {"action_loss": "mse"}})
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg and cfg.stage3_lr == 1e-4
    varied = TrainConfig(instruction_variants=0.3, variants_per_instruction=5, seed=7)
    assert (varied.variants.probability, varied.variants.per_instruction, varied.variants.seed) == (0.3, 5, 7)
    assert varied.variants.enabled and not cfg.variants.enabled


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(preset="huge"), "'huge'"),
        (dict(batch_size=0), "batch_size"),
        (dict(dense_steps=0, moe_steps=0), "dense_steps"),
        (dict(lr=-1.0), "-1.0"),
        (dict(val_fraction=1.0), "val_fraction"),
        (dict(device="tpu"), "'tpu'"),
        (dict(dense_steps=2.5), "2.5"),
        (dict(state_dropout=1.0), "state_dropout"),
        (dict(image_shift_pixels=-1), "image_shift_pixels"),
        (dict(instruction_variants=1.5), "instruction_variants"),
        (dict(variants_per_instruction=0), "variants_per_instruction"),
        (dict(dense_baseline="half"), "dense_baseline must be one of"),
        (dict(dense_baseline="active", init_checkpoint="ckpt", dense_steps=0), "cannot fine-tune"),
    ],
)
def test_invalid_values_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(dense_steps=100), "dense_steps must be 0"),
        (dict(dense_steps=0, moe_steps=0), "moe_steps"),
        (dict(dense_steps=0, model_overrides={"loss": {"action_loss": "mse"}}), "model_overrides"),
        (dict(dense_steps=0, chunk_length=8), "chunk_length"),
        (dict(dense_steps=0, init_checkpoint=""), "init_checkpoint"),
    ],
)
def test_fine_tuning_settings_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{"init_checkpoint": "ckpt", **kwargs})
    assert TrainConfig(init_checkpoint="ckpt", dense_steps=0, moe_steps=5).init_checkpoint == "ckpt"


def test_dense_baseline_trains_every_step_densely():
    recipe = TrainConfig(dense_steps=300, moe_steps=100)
    baseline = TrainConfig(dense_steps=300, moe_steps=100, dense_baseline="total")
    assert (recipe.dense_stage_steps, baseline.dense_stage_steps) == (300, 400)
    assert TrainConfig.from_dict(baseline.to_dict()) == baseline


def test_unknown_fields_are_rejected():
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig.from_dict({"epochs": 3})


def test_model_overrides_are_checked_against_the_preset():
    with pytest.raises(ValueError, match="num_layer"):
        TrainConfig(preset="tiny", model_overrides={"trunk": {"num_layer": 2}})
    with pytest.raises(ValueError, match="d_model"):
        TrainConfig(preset="tiny", model_overrides={"d_model": 48})  # MoE widths no longer match
