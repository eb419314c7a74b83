"""Action head: H learned queries (one per chunk step) cross-attend to the trunk tokens and the
embedded reasoning tokens; FFNs dense or AdaMoE-style MoE.

Export unit (tensors only, static shapes):

    trunk_tokens [B, S, D], state [B, J], reasoning_ids [B, R] int64, reasoning_mask [B, R]
        -> actions [B, H, J]  (+ router telemetry of the head's MoE layers)

Output meaning: ABSOLUTE joint-position targets, z-scored with the contract's action stats
(`action = actions * action_std + action_mean` gives radians); chunk step k is the target
(k + 1) control periods after the observation. With `residual_to_state` the network predicts
the offset from the current pose and the head adds the pose itself (state converted from
state-normalised to action-normalised units), so an untrained head holds the current pose.

Reasoning tokens are what the decoder generated (no BOS/EOS), masked where absent; an all-zero
mask means "no reasoning" and the head attends to the trunk tokens only.

Shape legend: B batch, S trunk tokens, R reasoning tokens, H chunk length, J joints, D d_model,
M MoE layers, N = B * H routed tokens, E experts.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from moe_vla_ros.model.blocks import TELEMETRY_FIELDS, LearnedQueries, MoEBlockStack
from moe_vla_ros.model.config import ModelConfig

ActionHeadOutput = NamedTuple("ActionHeadOutput", [("actions", Tensor), *TELEMETRY_FIELDS])  # actions [B, H, J], MoETelemetry


class ActionHead(MoEBlockStack):
    """Chunk predictor; see the module docstring. Built as MoEBlockStack says, from `cfg.action_head`."""

    def __init__(self, cfg: ModelConfig, use_moe: bool = True) -> None:
        super().__init__()
        d = cfg.d_model
        contract = cfg.contract
        num_joints = contract.sensors.num_joints
        self.queries = LearnedQueries(contract.chunk_length, d)
        self.state_proj = nn.Linear(num_joints, d)
        self.reasoning_embed = nn.Embedding(cfg.vocab_size, d)
        self.reasoning_pos = nn.Parameter(torch.randn(contract.max_reasoning_tokens, d) * 0.02)  # [R, D]
        self.build_blocks(cfg.action_head, d, use_moe, cross_attention=True)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, num_joints)
        nn.init.normal_(self.out.weight, std=0.01)
        nn.init.zeros_(self.out.bias)
        # action_norm = state_norm * scale + offset: the current pose in action-normalised units.
        norm = contract.normalization
        state_std, state_mean = torch.tensor(norm.state_std), torch.tensor(norm.state_mean)  # [J]
        action_std, action_mean = torch.tensor(norm.action_std), torch.tensor(norm.action_mean)  # [J]
        self.register_buffer("state_to_action_scale", (state_std / action_std).float(), persistent=False)
        self.register_buffer("state_to_action_offset", ((state_mean - action_mean) / action_std).float(), persistent=False)

    def forward(self, trunk_tokens: Tensor, state: Tensor, reasoning_ids: Tensor, reasoning_mask: Tensor) -> ActionHeadOutput:
        """See the module docstring for shapes."""
        b, num_trunk, _ = trunk_tokens.shape
        reasoning = self.reasoning_embed(reasoning_ids) + self.reasoning_pos  # [B, R, D]
        context = torch.cat([trunk_tokens, reasoning], dim=1)  # [B, S + R, D]
        trunk_valid = torch.ones(b, num_trunk, dtype=torch.bool, device=trunk_tokens.device)  # [B, S]
        context_mask = torch.cat([trunk_valid, reasoning_mask != 0], dim=1)  # [B, S + R]
        x = self.queries(trunk_tokens) + self.state_proj(state).unsqueeze(1)  # [B, H, D]
        x, telemetry = self.run_blocks(x, context=context, context_mask=context_mask)  # [B, H, D]
        actions = self.out(self.norm(x))  # [B, H, J]
        if self.cfg.residual_to_state:
            pose = state * self.state_to_action_scale + self.state_to_action_offset  # [B, J]
            actions = actions + pose.unsqueeze(1)  # [B, H, J]
        return ActionHeadOutput(actions, *telemetry)
