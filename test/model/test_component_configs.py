"""Tests of moe_vla_ros/model/component_configs.py: per-component validation."""

import pytest

from moe_vla_ros.model.component_configs import ActionHeadConfig, LossConfig, TrunkConfig, VisionConfig
from moe_vla_ros.model.moe import MoEConfig


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: VisionConfig(backbone="resnet"), "'resnet'"),
        (lambda: VisionConfig(width=30, num_heads=4), "num_heads=4"),
        (lambda: VisionConfig(efficientnet_stride=8), "efficientnet_stride"),
        (lambda: TrunkConfig(moe_layers=(0, 7)), "[0, 7]"),
        (lambda: TrunkConfig(moe_layers=(1,)), "needs trunk.moe"),
        (lambda: TrunkConfig(dropout=1.5), "1.5"),
        (lambda: ActionHeadConfig(activation="relu"), "'relu'"),
        (lambda: LossConfig(action_loss="huber"), "'huber'"),
        (lambda: TrunkConfig(ffn_hidden_at=((4, 64),)), "trunk.ffn_hidden_at block index"),
        (lambda: TrunkConfig(ffn_hidden_at=((1, 0),)), "width of block 1 must be an integer >= 1, got 0"),
        (lambda: TrunkConfig(ffn_hidden_at=((1, 64), (1, 32))), "names a block twice"),
        (lambda: TrunkConfig(ffn_hidden_at=(1, 64)), "FFN width"),
        (lambda: ActionHeadConfig(moe_layers=(0,), moe=MoEConfig(128, 256, activation="geglu", top_k=1,
                                                                   normalize_top_k=False),
                                  ffn_hidden_at=((0, 512),)), "sets the width of MoE layer"),
    ],
)
def test_invalid_fields_name_the_bad_value(make, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make()


def test_component_round_trip_with_moe():
    trunk = TrunkConfig(num_layers=3, moe_layers=(2, 0), moe=MoEConfig(32, 64))
    assert trunk.moe_layers == (0, 2)
    assert TrunkConfig.from_dict(trunk.to_dict()) == trunk
    with pytest.raises(ValueError, match="top_kk"):
        TrunkConfig.from_dict({**trunk.to_dict(), "moe": {"d_model": 32, "d_hidden": 64, "top_kk": 1}})


def test_ffn_hidden_at_widths_and_round_trip():
    trunk = TrunkConfig(num_layers=3, ffn_hidden=64, ffn_hidden_at=[[2, 256], [0, 128]])
    assert trunk.ffn_hidden_at == ((0, 128), (2, 256))
    assert [trunk.ffn_width(i) for i in range(3)] == [128, 64, 256]
    assert trunk.to_dict()["ffn_hidden_at"] == [[0, 128], [2, 256]]
    assert TrunkConfig.from_dict(trunk.to_dict()) == trunk
    assert TrunkConfig().ffn_hidden_at == () and ActionHeadConfig().ffn_width(1) == 256


def test_token_counts_for_efficientnet_backbone():
    vision = VisionConfig(backbone="efficientnet_lite0", efficientnet_stride=32, pretrained=False)
    assert vision.num_tokens_per_camera(96, 96) == 9
    assert vision.num_tokens_per_camera(100, 100) == 16  # SAME padding rounds up
