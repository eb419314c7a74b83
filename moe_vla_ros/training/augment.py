"""Image augmentation for training: random shifts (pad with edge pixels, crop back at a random offset).

Random shifts of a few pixels are the standard regulariser of visuomotor policies trained on a
few hundred demonstrations (DrQ, Diffusion Policy's random crop): the policy has to read object
positions relative to what it sees instead of memorising pixels. Applied in training only; the
exported graphs never see it.

Shape legend: B batch, C cameras, H x W image size, N = B * C.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def random_shift(images: Tensor, max_shift: int, generator: torch.Generator | None = None) -> Tensor:
    """images [B, C, 3, H, W] uint8 -> the same shape, each image shifted independently by up to
    `max_shift` pixels in x and y (edges replicated). `max_shift=0` returns the input."""
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift!r}")
    if max_shift == 0:
        return images
    b, c, ch, h, w = images.shape
    n = b * c
    padded = F.pad(images.reshape(n, ch, h, w).float(), (max_shift,) * 4, mode="replicate")  # [N, 3, H+2s, W+2s]
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator, device=images.device)  # [N]
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator, device=images.device)  # [N]
    rows = dy[:, None] + torch.arange(h, device=images.device)[None]  # [N, H]
    cols = dx[:, None] + torch.arange(w, device=images.device)[None]  # [N, W]
    idx_n = torch.arange(n, device=images.device)[:, None, None, None]  # [N, 1, 1, 1]
    idx_c = torch.arange(ch, device=images.device)[None, :, None, None]  # [1, 3, 1, 1]
    shifted = padded[idx_n, idx_c, rows[:, None, :, None], cols[:, None, None, :]]  # [N, 3, H, W]
    return shifted.to(images.dtype).reshape(b, c, ch, h, w)


def drop_state(state: Tensor, mean_state: Tensor, probability: float, generator: torch.Generator | None = None) -> Tensor:
    """state [B, J] -> [B, J] with each sample's joint state replaced by `mean_state` [J] with
    `probability`: the policy cannot lean on proprioception alone and has to read the scene (and
    the arm) from the cameras. A proprioception shortcut is the classic failure of behaviour
    cloning: the first move of every episode starts from the same home pose, so only the image
    says where to go. `probability=0` returns the input."""
    if not 0.0 <= probability < 1.0:
        raise ValueError(f"probability must be in [0, 1), got {probability!r}")
    if probability == 0.0:
        return state
    drop = torch.rand(state.shape[0], generator=generator, device=state.device) < probability  # [B]
    return torch.where(drop[:, None], mean_state.to(state.dtype)[None, :], state)  # [B, J]
