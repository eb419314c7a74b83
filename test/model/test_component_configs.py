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


def test_token_counts_for_efficientnet_backbone():
    vision = VisionConfig(backbone="efficientnet_lite0", efficientnet_stride=32, pretrained=False)
    assert vision.num_tokens_per_camera(96, 96) == 9
    assert vision.num_tokens_per_camera(100, 100) == 16  # SAME padding rounds up
