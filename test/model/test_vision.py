"""Tests of moe_vla_ros/model/vision.py: token shapes, uint8 input, camera embedding."""

import dataclasses

import pytest
import torch

from moe_vla_ros.export.examples import example_batch
from moe_vla_ros.model.config import ModelConfig, VisionConfig
from moe_vla_ros.model.vision import VisionEncoder

torch.set_num_threads(1)


def test_vit_tokens_have_one_block_per_camera():
    torch.manual_seed(0)
    cfg = ModelConfig.tiny()
    encoder = VisionEncoder(cfg).eval()
    images = example_batch(cfg, batch_size=3)["images"]
    assert images.dtype == torch.uint8
    tokens = encoder(images).tokens
    per_camera = (32 // 8) ** 2
    assert tokens.shape == (3, 2 * per_camera, cfg.d_model) and tokens.dtype == torch.float32
    assert cfg.num_vision_tokens == tokens.shape[1]


def test_normalisation_happens_inside_and_cameras_are_tagged():
    torch.manual_seed(0)
    cfg = ModelConfig.tiny()
    encoder = VisionEncoder(cfg).eval()
    same = torch.full((1, 2, 3, 32, 32), 128, dtype=torch.uint8)  # both cameras show the same image
    with torch.no_grad():
        tokens = encoder(same).tokens.reshape(1, 2, -1, cfg.d_model)  # [B, C, P, D]
        brighter = encoder(same + 50).tokens.reshape(1, 2, -1, cfg.d_model)
    assert not torch.allclose(tokens[:, 0], tokens[:, 1])  # camera embeddings differ
    assert torch.allclose(tokens[:, 0] - tokens[:, 1], brighter[:, 0] - brighter[:, 1], atol=1e-5)
    assert not torch.allclose(tokens, brighter)


def test_wrong_image_layout_is_rejected():
    encoder = VisionEncoder(ModelConfig.tiny())
    with pytest.raises(ValueError, match=r"\[B, 2, 3, 32, 32\]"):
        encoder(torch.zeros(1, 2, 32, 32, 3, dtype=torch.uint8))


@pytest.mark.parametrize("stride, per_camera", [(16, 4), (32, 1)])
def test_efficientnet_backbone_shapes(stride, per_camera):
    torch.manual_seed(0)
    base = ModelConfig.tiny()
    vision = VisionConfig(backbone="efficientnet_lite0", efficientnet_stride=stride, pretrained=False)
    cfg = dataclasses.replace(base, vision=vision)
    encoder = VisionEncoder(cfg).eval()
    with torch.no_grad():
        tokens = encoder(example_batch(cfg, batch_size=2)["images"]).tokens
    assert tokens.shape == (2, 2 * per_camera, cfg.d_model) == (2, cfg.num_vision_tokens, cfg.d_model)


def test_frozen_backbone_has_no_trainable_weights():
    cfg = dataclasses.replace(ModelConfig.tiny(), vision=VisionConfig(patch_size=8, width=32, depth=1, num_heads=2,
                                                                       freeze_backbone=True))
    encoder = VisionEncoder(cfg)
    assert not any(p.requires_grad for p in encoder.backbone.parameters())
    assert encoder.proj.weight.requires_grad


def test_keypoints_backbone_finds_a_bright_spot():
    """Spatial softmax: one token per keypoint whose (x, y) follows where the image content is."""
    torch.manual_seed(0)
    vision = VisionConfig(backbone="keypoints", width=16, depth=1, num_keypoints=6)
    cfg = dataclasses.replace(ModelConfig.tiny(), vision=vision)
    encoder = VisionEncoder(cfg).eval()
    images = example_batch(cfg, batch_size=2)["images"]
    with torch.no_grad():
        tokens = encoder(images).tokens
    assert tokens.shape == (2, 2 * 6, cfg.d_model) == (2, cfg.num_vision_tokens, cfg.d_model)

    keypoints = encoder.backbone
    with torch.no_grad():
        keypoints.heatmaps.weight.zero_()
        keypoints.heatmaps.bias.zero_()
        keypoints.heatmaps.weight[:, 0] = 1.0  # every heatmap = feature channel 0
        keypoints.log_temperature.fill_(3.0)
        xs = []
        for spot_x in (4, 27):
            img = torch.zeros(1, 3, 32, 32)
            img[:, :, 12:16, spot_x:spot_x + 4] = 1.0  # a bright 4x4 square
            xy = keypoints(img)[0, :, :2]  # [K, 2]
            feats = keypoints.features(img)[0, 0]  # [8, 8]
            peak = divmod(int(feats.argmax()), feats.shape[1])  # the keypoint sits at the strongest response
            expected_x = -1.0 + 2.0 * peak[1] / (feats.shape[1] - 1)
            assert abs(float(xy[0, 0]) - expected_x) < 0.35
            xs.append(float(xy[0, 0]))
    assert xs[1] > xs[0] + 0.8  # the keypoint moved right with the spot
    assert float(xy.min()) >= -1.0 and float(xy.max()) <= 1.0


def test_keypoints_config_is_validated():
    with pytest.raises(ValueError, match="num_keypoints"):
        VisionConfig(backbone="keypoints", num_keypoints=0)
    assert VisionConfig(backbone="keypoints", num_keypoints=5).num_tokens_per_camera(96, 96) == 5
