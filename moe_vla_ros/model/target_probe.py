"""Target probe: a training-only auxiliary head that reads where the instructed object is.

Behaviour cloning from joint states lets a policy copy the motion already under way instead of
looking at the scene: mid-episode the arm's pose gives the direction away, and only the few
samples at an episode's start need the image. The policy then turns towards a generic pose in
closed loop. The probe gives the vision encoder and trunk a dense, direct signal on every
sample: from the trunk tokens it regresses the target object's position in the robot base
frame (recorded by the simulator, `Episode.target_position`), so the tokens the action head
attends to must encode which object the instruction names and where it is.

    trunk tokens [B, S, D] -> position [B, 3] in units of TARGET_SCALE_M, base frame

The probe lives in the action head. By default it only trains (the exported graph never runs
it); with `ActionHeadConfig.target_input` the head's queries also get its estimate, a
three-number summary of where to go, and the exported action head computes it. Samples
without a recorded target (bags from a real robot) are masked out of the loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from moe_vla_ros.model.blocks import Attention

TARGET_SCALE_M = 0.1  # the probe predicts positions in decimetres: O(1) regression targets


class TargetProbe(nn.Module):
    """One learned query attends over the trunk tokens; an MLP maps it to a position."""

    def __init__(self, d_model: int, num_heads: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)  # [1, 1, D]
        self.attention = Attention(d_model, num_heads)
        self.mlp = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, 3))

    def forward(self, trunk_tokens: Tensor) -> Tensor:
        """trunk_tokens [B, S, D] -> predicted target position [B, 3] (units of TARGET_SCALE_M)."""
        query = self.query.expand(trunk_tokens.shape[0], -1, -1)  # [B, 1, D]
        pooled = self.attention(query, context=trunk_tokens)  # [B, 1, D]
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
