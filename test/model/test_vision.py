"""Tests of moe_vla_ros/model/vision.py: token shapes, uint8 input, camera embedding."""

import dataclasses

import pytest
import torch

from moe_vla_ros.model.config import ModelConfig, VisionConfig
from moe_vla_ros.model.examples import example_batch
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
