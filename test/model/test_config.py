"""Tests of moe_vla_ros/model/config.py: ModelConfig validation, presets and JSON round trip."""

import json

import pytest

from moe_vla_ros.model.config import ModelConfig, TrunkConfig, VisionConfig, default_contract, tiny_contract
from moe_vla_ros.model.moe import MoEConfig


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_json_round_trip(preset):
    cfg = getattr(ModelConfig, preset)()
    restored = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert restored == cfg
    assert restored.trunk.moe == cfg.trunk.moe and isinstance(restored.trunk.moe, MoEConfig)
    assert restored.trunk.moe_layers == cfg.trunk.moe_layers


def test_small_preset_matches_the_demo_setup():
    cfg = ModelConfig.small()
    sensors = cfg.contract.sensors
    assert sensors.camera_names == ("front", "wrist")
    assert (sensors.image_height, sensors.image_width) == (96, 96)
    assert sensors.num_joints == 7 and sensors.control_rate_hz == 10.0
    assert cfg.contract.chunk_length == 16
    assert cfg.trunk.num_layers == 4 and len(cfg.trunk.moe_layers) == 2
    assert (cfg.trunk.moe.num_experts, cfg.trunk.moe.top_k) == (8, 2)
    head = cfg.action_head.moe
    assert (head.num_experts, head.top_k, head.num_shared_experts, head.scale_adapter) == (4, 1, 1, True)
    assert cfg.num_trunk_tokens == 2 * 36 + 16 + 1


def test_patch_size_must_divide_the_image():
    with pytest.raises(ValueError, match="patch_size=7"):
        ModelConfig(default_contract(), vision=VisionConfig(patch_size=7))


def test_moe_width_must_match_the_ffn_it_is_upcycled_from():
    bad = TrunkConfig(num_layers=2, ffn_hidden=64, moe_layers=(1,), moe=MoEConfig(32, 128))
    with pytest.raises(ValueError, match="trunk.moe"):
        ModelConfig(tiny_contract(), d_model=32, trunk=bad)


def test_unknown_keys_are_rejected():
    d = ModelConfig.tiny().to_dict()
    d["trunk"]["num_layer"] = 3
    with pytest.raises(ValueError, match="num_layer"):
        ModelConfig.from_dict(d)


def test_overrides_merge_into_nested_configs():
    cfg = ModelConfig.small().with_overrides({"trunk": {"moe": {"num_experts": 4}}, "loss": {"action_loss": "mse"}})
    assert cfg.trunk.moe.num_experts == 4 and cfg.trunk.moe.top_k == 2
    assert cfg.loss.action_loss == "mse" and cfg.d_model == 128


def test_vocab_size_is_validated():
    with pytest.raises(ValueError, match="vocab_size"):
        ModelConfig(tiny_contract(), vocab_size=3)
