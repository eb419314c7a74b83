"""Vision encoder: uint8 camera images -> tokens of width d_model, one block per camera.

Pixel normalisation happens inside the module, so an exported graph takes the raw uint8
images the runtime receives (after resizing to the contract size and HWC -> CHW):

    images [B, C, 3, H, W] uint8  ->  tokens [B, C * P, D]

P tokens per camera come from the backbone (ViT patches, an EfficientNet-Lite0 feature map or
the learned keypoints of a conv net with a spatial softmax); every token gets a learned
per-camera embedding and a learned per-position embedding.

Shape legend: B batch, C cameras, N = B * C images, P tokens per camera, W backbone width,
D d_model.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from moe_vla_ros.model.blocks import TransformerBlock
from moe_vla_ros.model.config import ModelConfig, VisionConfig
from moe_vla_ros.model.efficientnet import PIXEL_MEAN, PIXEL_STD, EfficientNetLite0Features
from moe_vla_ros.model.moe import DenseFFN

VIT_PIXEL_MEAN = (0.5, 0.5, 0.5)
VIT_PIXEL_STD = (0.5, 0.5, 0.5)


class PatchViT(nn.Module):
    """Small ViT: non-overlapping patch embedding (a strided conv) + pre-norm transformer blocks."""

    def __init__(self, cfg: VisionConfig, image_height: int, image_width: int) -> None:
        super().__init__()
        grid_h, grid_w = image_height // cfg.patch_size, image_width // cfg.patch_size
        self.out_width = cfg.width
        self.patch_embed = nn.Conv2d(3, cfg.width, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.pos_embed = nn.Parameter(torch.randn(1, grid_h * grid_w, cfg.width) * 0.02)  # [1, P, W]
        hidden = int(cfg.width * cfg.mlp_ratio)
        self.blocks = nn.ModuleList(
            TransformerBlock(cfg.width, cfg.num_heads, DenseFFN(cfg.width, hidden, "gelu"), dropout=cfg.dropout)
            for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.width)

    def forward(self, x: Tensor) -> Tensor:
        """x [N, 3, H, W] normalised -> [N, P, W]."""
        h = self.patch_embed(x)  # [N, W, H/p, W/p]
        h = h.flatten(2).transpose(1, 2) + self.pos_embed  # [N, P, W]
        for block in self.blocks:
            h = block(h).hidden  # [N, P, W]
        return self.norm(h)


class EfficientNetTokens(nn.Module):
    """EfficientNet-Lite0 feature map as a token sequence: [N, 3, H, W] -> [N, P, Ch]."""

    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.features = EfficientNetLite0Features(output_stride=cfg.efficientnet_stride)
        if cfg.pretrained:
            self.features.load_imagenet_weights()
        self.out_width = self.features.out_channels

    def forward(self, x: Tensor) -> Tensor:
        """x [N, 3, H, W] normalised -> [N, P, Ch]."""
        return self.features(x).flatten(2).transpose(1, 2)  # [N, Ch, h, w] -> [N, h*w, Ch]


class SpatialSoftmaxKeypoints(nn.Module):
    """Conv net -> K keypoint heatmaps -> spatial softmax -> per keypoint (x, y, activation).

    The expected image position of each learned heatmap is a direct, differentiable object
    location, the inductive bias that lets visuomotor policies learn where things are from a
    few hundred demonstrations (Levine et al. 2016; robomimic / Diffusion Policy encoders).
    Plain Conv/Softmax/MatMul ops: exports to ONNX and TensorRT as is.
    """

    out_width = 3  # (x, y) in [-1, 1] and the heatmap's mean activation

    def __init__(self, cfg: VisionConfig, image_height: int, image_width: int) -> None:
        super().__init__()
        w = cfg.width
        groups = 8 if w % 8 == 0 else 1  # GroupNorm groups
        layers: list[nn.Module] = [nn.Conv2d(3, w, 5, stride=2, padding=2), nn.GroupNorm(groups, w), nn.ReLU()]
        for i in range(cfg.depth):  # the first one halves the resolution again: H/4 x W/4 heatmaps
            layers += [nn.Conv2d(w, w, 3, stride=2 if i == 0 else 1, padding=1), nn.GroupNorm(groups, w), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.heatmaps = nn.Conv2d(w, cfg.num_keypoints, 1)
        self.log_temperature = nn.Parameter(torch.zeros(()))  # softmax sharpness, learned
        h, wd = -(-image_height // 4), -(-image_width // 4)
        ys, xs = torch.meshgrid(torch.linspace(-1.0, 1.0, h), torch.linspace(-1.0, 1.0, wd), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.flatten(), ys.flatten()], dim=-1), persistent=False)  # [h*w, 2]

    def forward(self, x: Tensor) -> Tensor:
        """x [N, 3, H, W] normalised -> [N, K, 3]."""
        maps = self.heatmaps(self.features(x))  # [N, K, h, w]
        logits = maps.flatten(2)  # [N, K, h*w]
        attention = torch.softmax(logits * torch.exp(self.log_temperature), dim=-1)  # [N, K, h*w]
        xy = attention @ self.grid  # [N, K, 2]
        activation = logits.mean(dim=-1, keepdim=True)  # [N, K, 1]
        return torch.cat([xy, activation], dim=-1)  # [N, K, 3]


class VisionOutput(NamedTuple):
    tokens: Tensor  # [B, C * P, D]


class VisionEncoder(nn.Module):
    """All cameras through one shared backbone, projected to d_model, tagged per camera."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        vcfg, sensors = cfg.vision, cfg.contract.sensors
        self.num_cameras = cfg.num_cameras
        self.image_size = (sensors.image_height, sensors.image_width)
        if vcfg.backbone == "vit":
            self.backbone: nn.Module = PatchViT(vcfg, *self.image_size)
            mean, std = VIT_PIXEL_MEAN, VIT_PIXEL_STD
        elif vcfg.backbone == "keypoints":
            self.backbone = SpatialSoftmaxKeypoints(vcfg, *self.image_size)
            mean, std = VIT_PIXEL_MEAN, VIT_PIXEL_STD
        else:
            self.backbone = EfficientNetTokens(vcfg)
            mean, std = PIXEL_MEAN, PIXEL_STD
        if vcfg.freeze_backbone:
            self.backbone.requires_grad_(False)
        tokens_per_camera = vcfg.num_tokens_per_camera(*self.image_size)
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.proj = nn.Linear(self.backbone.out_width, cfg.d_model)
        self.camera_embed = nn.Parameter(torch.randn(self.num_cameras, cfg.d_model) * 0.02)  # [C, D]
        self.position_embed = nn.Parameter(torch.randn(tokens_per_camera, cfg.d_model) * 0.02)  # [P, D]

    def backbone_features(self, images: Tensor) -> Tensor:
        """images [B, C, 3, H, W] uint8 (RGB) -> backbone features [B, C, P, W] (before the projection).

        With a frozen backbone (`VisionConfig.freeze_backbone`, deterministic in training) these
        depend on the images alone: training may compute them once per dataset
        (training/feature_cache.py) and pass them to `tokens_from_features`."""
        b, c, _, h, w = images.shape
        if (c, h, w) != (self.num_cameras, *self.image_size):
            raise ValueError(
                f"images must be [B, {self.num_cameras}, 3, {self.image_size[0]}, {self.image_size[1]}], "
                f"got {list(images.shape)}"
            )
        x = images.reshape(b * c, 3, h, w).float() / 255.0  # [N, 3, H, W] in [0, 1]
        x = (x - self.pixel_mean) / self.pixel_std  # [N, 3, H, W]
        features = self.backbone(x)  # [N, P, W]
        return features.reshape(b, c, *features.shape[1:])  # [B, C, P, W]

    def tokens_from_features(self, features: Tensor) -> VisionOutput:
        """Backbone features [B, C, P, W] -> VisionOutput(tokens [B, C * P, D])."""
        tokens = self.proj(features)  # [B, C, P, D]
        tokens = tokens + self.camera_embed[None, :, None, :] + self.position_embed[None, None]  # [B, C, P, D]
        return VisionOutput(tokens.reshape(tokens.shape[0], -1, tokens.shape[-1]))  # [B, C * P, D]

    def forward(self, images: Tensor) -> VisionOutput:
        """images [B, C, 3, H, W] uint8 (RGB) -> VisionOutput(tokens [B, C * P, D])."""
        return self.tokens_from_features(self.backbone_features(images))
