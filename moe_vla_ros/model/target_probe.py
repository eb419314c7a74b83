"""Target probe: where is the object the instruction names? Vision tokens + instruction -> position.

Behaviour cloning from joint states lets a policy copy the motion already under way instead of
looking at the scene: mid-episode the arm's pose gives the target away, and only the few
samples at an episode's start need the image, so the policy learns to turn towards a generic
pose and stalls there in closed loop. The probe gives the vision encoder a dense, direct signal
on every sample that the joint state cannot answer: the instruction's words form a query that
attends over the vision tokens ONLY (no state), and an MLP regresses the target object's
position in the robot base frame (recorded by the simulator, `Episode.target_position`). The
encoder must then produce tokens that say where each object is, in a form the instruction can
pick from.

    vision tokens [B, Nv, D], instruction embeddings [B, L, D], mask [B, L]
        -> position [B, 3] in units of TARGET_SCALE_M, base frame

The probe lives in the trunk. With `TrunkConfig.target_input` its estimate is also added to
the state tokens (and is part of the exported trunk graph); otherwise it only shapes training.
Samples without a recorded target (bags from a real robot) are masked out of the loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from moe_vla_ros.model.blocks import Attention

TARGET_SCALE_M = 0.1  # the probe predicts positions in decimetres: O(1) regression targets


class TargetProbe(nn.Module):
    """The mean instruction embedding forms one query over the vision tokens; an MLP maps the result to a position."""

    def __init__(self, d_model: int, num_heads: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)  # [1, 1, D]
        self.query_proj = nn.Linear(d_model, d_model)
        self.attention = Attention(d_model, num_heads)
        self.mlp = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, 3))

    def forward(self, vision_tokens: Tensor, words: Tensor, word_mask: Tensor) -> Tensor:
        """vision_tokens [B, Nv, D], words [B, L, D], word_mask [B, L] -> position [B, 3] (TARGET_SCALE_M units)."""
        weight = (word_mask != 0).unsqueeze(-1).to(words.dtype)  # [B, L, 1]
        sentence = (words * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1.0)  # [B, D]
        query = self.query + self.query_proj(sentence).unsqueeze(1)  # [B, 1, D]
        pooled = self.attention(query, context=vision_tokens)  # [B, 1, D]
        return self.mlp(pooled[:, 0])  # [B, 3]


def target_loss(predicted: Tensor, target_position_m: Tensor, valid: Tensor) -> Tensor:
    """Smooth-L1 on positions in TARGET_SCALE_M units over the valid samples; 0 when none.

    predicted [B, 3], target_position_m [B, 3] metres, valid [B] (1 = recorded) -> [].
    """
    per_sample = F.smooth_l1_loss(predicted, target_position_m / TARGET_SCALE_M, reduction="none").sum(-1)  # [B]
    weight = valid.to(per_sample.dtype)  # [B]
    return (per_sample * weight).sum() / weight.sum().clamp(min=1.0)


def target_error_m(predicted: Tensor, target_position_m: Tensor) -> Tensor:
    """Euclidean error in metres per sample: [B, 3] x2 -> [B]."""
    return (predicted * TARGET_SCALE_M - target_position_m).norm(dim=-1)
