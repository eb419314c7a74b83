"""A frozen vision backbone's features, computed once per dataset instead of at every step.

With `VisionConfig.freeze_backbone` the backbone (EfficientNet-Lite0 with ImageNet BatchNorm
statistics, or a ViT / keypoint net without dropout) maps an image to the same features at every
step of a run, and without image shifts (`TrainConfig.image_shift_pixels == 0`) every sample
shows the same image every time it is drawn. Its forward pass was ~60 % of a training step on
CPU (bundled recipe, batch 32): computing it once per frame and training on the stored features
gives the same training (up to float summation order) in less than half the time.

    backbone_features(vision, images [N, C, 3, H, W] uint8) -> features [N, C, P, W] float32

`dataset_features` adds a folder cache keyed by content, one file per episode:
<cache_dir>/<backbone key>/<episode key>.npy, where the backbone key is the SHA-256 of the
backbone's weights and buffers and its pixel normalisation, and the episode key that of the
backbone key and the episode's frames. Runs on the same episodes with the same backbone (the arms
of a comparison, a rerun, another training seed whose train/held-out split differs, a dataset
that adds episodes) load those files instead of computing them; a process that finds another one
computing with the same backbone waits for it (file lock). Anything else (other frames, other
weights) has another key and never matches. The features of a dataset are assembled in memory
(N x C x P x W float32, ~0.9 GB for the bundled recipe's 1144 episodes).

Shape legend: N frames, C cameras, P tokens per camera, W backbone width.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from moe_vla_ros.model.config import ModelConfig
from moe_vla_ros.model.vision import VisionEncoder

FEATURE_BATCH = 64  # images per backbone forward while computing
GROUP_FRAMES = 2048  # frames computed between two saves of episode files


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
def backbone_features(vision: VisionEncoder, images: torch.Tensor, progress: bool = False,
                      rows: torch.Tensor | None = None) -> np.ndarray:
    """images [N, C, 3, H, W] uint8 -> the backbone's features [N, C, P, W] float32, in eval mode
    (what a frozen backbone computes in training), FEATURE_BATCH frames at a time; with `rows`
    [M] only those frames, in that order ([M, C, P, W])."""
    was_training = vision.training
    vision.eval()
    # channels-last convolution weights: ~1.5x faster on CPU for EfficientNet-Lite0 (same features
    # to ~1e-11); the backbone gets its contiguous weights back afterwards
    vision.backbone.to(memory_format=torch.channels_last)
    device = next(vision.parameters()).device
    rows = torch.arange(images.shape[0]) if rows is None else rows
    try:
        parts = []
        for start in tqdm(range(0, rows.shape[0], FEATURE_BATCH), disable=not progress, desc="backbone features",
                          unit="batch"):
            batch = images[rows[start : start + FEATURE_BATCH]].to(device)  # [b, C, 3, H, W]
            parts.append(vision.backbone_features(batch).float().cpu().numpy())  # [b, C, P, W]
    finally:
        vision.backbone.to(memory_format=torch.contiguous_format)
        vision.train(was_training)
    return np.concatenate(parts)


def _digest(digest: hashlib._Hash, name: str, tensor: torch.Tensor) -> None:
    t = tensor.detach().cpu().contiguous()
    digest.update(f"{name}:{t.dtype}:{list(t.shape)}".encode())
    digest.update(t.reshape(-1).view(torch.uint8).numpy())  # the raw bytes, no copy


def backbone_key(vision: VisionEncoder) -> str:
    """SHA-256 of what the features depend on besides the frames: backbone weights and buffers, pixel normalisation."""
    digest = hashlib.sha256()
    tensors = {f"backbone.{k}": v for k, v in vision.backbone.state_dict().items()}
    tensors.update(pixel_mean=vision.pixel_mean, pixel_std=vision.pixel_std)
    for name in sorted(tensors):
        _digest(digest, name, tensors[name])
    return digest.hexdigest()


def episode_key(backbone: str, frames: torch.Tensor) -> str:
    """SHA-256 of the backbone key and one episode's frames [T, C, 3, H, W]."""
    digest = hashlib.sha256(backbone.encode())
    _digest(digest, "images", frames)
    return digest.hexdigest()


def _episode_bounds(num_frames: int, episode_starts: Sequence[int] | np.ndarray | None) -> list[tuple[int, int]]:
    starts = [0] if episode_starts is None else sorted({int(s) for s in episode_starts})
    if not starts or starts[0] != 0 or starts[-1] >= num_frames:
        raise ValueError(f"episode starts must begin at 0 and lie below {num_frames} frames, got {starts[:3]}...{starts[-3:]}")
    return list(zip(starts, starts[1:] + [num_frames]))


def _groups(episodes: list[int], bounds: list[tuple[int, int]]) -> list[list[int]]:
    """`episodes` in runs of about GROUP_FRAMES frames (at least one episode each)."""
    groups: list[list[int]] = [[]]
    frames = 0
    for i in episodes:
        if groups[-1] and frames + bounds[i][1] - bounds[i][0] > GROUP_FRAMES:
            groups.append([])
            frames = 0
        groups[-1].append(i)
        frames += bounds[i][1] - bounds[i][0]
    return [g for g in groups if g]


def dataset_features(vision: VisionEncoder, images: torch.Tensor, cache_dir: str | os.PathLike | None = None,
                     progress: bool = False, episode_starts: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """The backbone features [N, C, P, W] of `images` [N, C, 3, H, W]: computed, or with
    `cache_dir` read from one file per episode (`episode_starts`: each episode's first row;
    None: the frames are one episode) and written there for the episodes that have none."""
    if cache_dir is None:
        return backbone_features(vision, images, progress)
    bounds = _episode_bounds(images.shape[0], episode_starts)
    backbone = backbone_key(vision)
    folder = Path(cache_dir) / backbone
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{episode_key(backbone, images[a:b])}.npy" for a, b in bounds]
    with open(folder / "compute.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run computing with this backbone: wait for its files
        missing = [i for i, path in enumerate(paths) if not path.exists()]
        if progress:
            print(f"backbone features: {len(bounds) - len(missing)} of {len(bounds)} episodes cached in {folder}")
        done = tqdm(total=sum(bounds[i][1] - bounds[i][0] for i in missing), disable=not progress or not missing,
                    desc="backbone features", unit="frame")
        for group in _groups(missing, bounds):  # saved group by group: an interrupted run keeps what it computed
            rows = torch.cat([torch.arange(*bounds[i]) for i in group])  # [M] frames of these episodes
            computed = backbone_features(vision, images, rows=rows)  # [M, C, P, W]
            offset = 0
            for i in group:
                length = bounds[i][1] - bounds[i][0]
                partial = paths[i].with_suffix(".npy.partial")
                with open(partial, "wb") as f:
                    np.save(f, computed[offset : offset + length])
                os.replace(partial, paths[i])
                offset += length
            done.update(rows.shape[0])
        done.close()
    parts = [np.load(path) for path in paths]  # [T, C, P, W] each
    for part, path, (a, b) in zip(parts, paths, bounds):
        if part.shape[0] != b - a:
            raise ValueError(f"{path} holds {part.shape[0]} frames, its episode has {b - a}: remove it")
    return np.concatenate(parts)  # [N, C, P, W]
