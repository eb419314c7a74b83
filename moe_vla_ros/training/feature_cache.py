"""A frozen vision backbone's features, computed once per dataset instead of at every step.

With `VisionConfig.freeze_backbone` the backbone (EfficientNet-Lite0 with ImageNet BatchNorm
statistics, or a ViT / keypoint net without dropout) maps an image to the same features at every
step of a run, and without image shifts (`TrainConfig.image_shift_pixels == 0`) every sample
shows the same image every time it is drawn. Its forward pass was ~60 % of a training step on
CPU (bundled recipe, batch 32): computing it once per frame and training on the stored features
gives the same training (up to float summation order) in less than half the time.

    backbone_features(vision, images [N, C, 3, H, W] uint8) -> features [N, C, P, W] float32

`dataset_features` adds a folder cache keyed by content: the SHA-256 of the backbone's
weights and pixel normalisation, the image tensor and the features' shape. Runs on the same
frames with the same backbone (the arms of a comparison, a rerun) load the file instead of
computing it; a process that finds another one computing the same key waits for it (file lock).
Anything else (other images, other weights) has another key and never matches.

Shape legend: N frames, C cameras, P tokens per camera, W backbone width.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from moe_vla_ros.model.config import ModelConfig
from moe_vla_ros.model.vision import VisionEncoder

FEATURE_BATCH = 64  # images per backbone forward while computing


def not_cacheable_reason(model_cfg: ModelConfig, image_shift_pixels: int) -> str | None:
    """Why the backbone's features of a dataset change from step to step (None: they do not)."""
    vision = model_cfg.vision
    if not vision.freeze_backbone:
        return "the vision backbone is trained (vision.freeze_backbone is false)"
    if image_shift_pixels:
        return f"training images are shifted (image_shift_pixels={image_shift_pixels})"
    if vision.backbone == "vit" and vision.dropout > 0:
        return f"the ViT backbone uses dropout ({vision.dropout})"
    return None


@torch.no_grad()
def backbone_features(vision: VisionEncoder, images: torch.Tensor, progress: bool = False) -> np.ndarray:
    """images [N, C, 3, H, W] uint8 -> the backbone's features [N, C, P, W] float32, in eval mode
    (what a frozen backbone computes in training), FEATURE_BATCH frames at a time."""
    was_training = vision.training
    vision.eval()
    device = next(vision.parameters()).device
    try:
        parts = []
        for start in tqdm(range(0, images.shape[0], FEATURE_BATCH), disable=not progress, desc="backbone features",
                          unit="batch"):
            batch = images[start : start + FEATURE_BATCH].to(device)  # [b, C, 3, H, W]
            parts.append(vision.backbone_features(batch).float().cpu().numpy())  # [b, C, P, W]
    finally:
        vision.train(was_training)
    return np.concatenate(parts)


def cache_key(vision: VisionEncoder, images: torch.Tensor) -> str:
    """SHA-256 of what the features depend on: backbone weights and buffers, pixel normalisation, images."""
    digest = hashlib.sha256()
    tensors = {f"backbone.{k}": v for k, v in vision.backbone.state_dict().items()}
    tensors.update(pixel_mean=vision.pixel_mean, pixel_std=vision.pixel_std, images=images)
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{list(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy())  # the raw bytes, no copy
    return digest.hexdigest()


def dataset_features(vision: VisionEncoder, images: torch.Tensor, cache_dir: str | os.PathLike | None = None,
                     progress: bool = False) -> np.ndarray:
    """The backbone features [N, C, P, W] of `images`: computed, or with `cache_dir` read from
    <cache_dir>/<key>.npy (memory-mapped, shared by processes) and written there when missing."""
    if cache_dir is None:
        return backbone_features(vision, images, progress)
    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    key = cache_key(vision, images)
    path = folder / f"{key}.npy"
    with open(folder / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run computing this key: wait for its file
        if not path.exists():
            features = backbone_features(vision, images, progress)
            partial = path.with_suffix(".npy.partial")
            with open(partial, "wb") as f:
                np.save(f, features)
            os.replace(partial, path)
        elif progress:
            print(f"backbone features: reusing {path}")
    features = np.load(path, mmap_mode="r")
    if features.shape[0] != images.shape[0]:
        raise ValueError(f"{path} holds {features.shape[0]} frames, the dataset has {images.shape[0]}: remove it")
    return features
