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

from moe_vla_ros.model.blocks import LearnedQueries, TransformerBlock, collect_telemetry, make_ffn, upcycle_blocks
from moe_vla_ros.model.config import ModelConfig


class ActionHeadOutput(NamedTuple):
    actions: Tensor  # [B, H, J] action-normalised absolute joint targets
    router_logits: Tensor  # [M, N, E]
    expert_load: Tensor  # [M, E]
    router_entropy: Tensor  # [M]
    aux_loss: Tensor  # [] weighted MoE aux losses, summed over layers
    dropped_tokens: Tensor  # [M] int64 token slots dropped by expert capacity, per layer


class ActionHead(nn.Module):
    """Chunk predictor; see the module docstring.

    Args:
        cfg: the model config.
        use_moe: build MoE layers at `action_head.moe_layers` now (False: dense, for warm-up).
    """

    def __init__(self, cfg: ModelConfig, use_moe: bool = True) -> None:
        super().__init__()
        acfg, d = cfg.action_head, cfg.d_model
        self.cfg = acfg
        contract = cfg.contract
        num_joints = contract.sensors.num_joints
        self.queries = LearnedQueries(contract.chunk_length, d)
        self.state_proj = nn.Linear(num_joints, d)
        self.reasoning_embed = nn.Embedding(cfg.vocab_size, d)
        self.reasoning_pos = nn.Parameter(torch.randn(contract.max_reasoning_tokens, d) * 0.02)  # [R, D]
        self.blocks = nn.ModuleList(
            TransformerBlock(
                d,
                acfg.num_heads,
                make_ffn(d, acfg.ffn_hidden, acfg.activation, acfg.moe if use_moe and i in acfg.moe_layers else None),
                cross_attention=True,
                dropout=acfg.dropout,
            )
            for i in range(acfg.num_layers)
        )
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

    @property
    def num_moe_layers(self) -> int:
        return sum(block.is_moe for block in self.blocks)

    def upcycle(self, noise_std: float = 0.0, seed: int | None = None) -> int:
        """Turn the dense FFNs of the configured MoE layers into MoE layers; returns how many."""
        if not self.cfg.moe_layers:
            return 0
        return upcycle_blocks(self.blocks, self.cfg.moe_layers, self.cfg.moe, noise_std, seed)

    def forward(self, trunk_tokens: Tensor, state: Tensor, reasoning_ids: Tensor, reasoning_mask: Tensor) -> ActionHeadOutput:
        """See the module docstring for shapes."""
        b, num_trunk, _ = trunk_tokens.shape
        reasoning = self.reasoning_embed(reasoning_ids) + self.reasoning_pos  # [B, R, D]
        context = torch.cat([trunk_tokens, reasoning], dim=1)  # [B, S + R, D]
        trunk_valid = torch.ones(b, num_trunk, dtype=torch.bool, device=trunk_tokens.device)  # [B, S]
        context_mask = torch.cat([trunk_valid, reasoning_mask != 0], dim=1)  # [B, S + R]
        x = self.queries(trunk_tokens) + self.state_proj(state).unsqueeze(1)  # [B, H, D]
        moe_outputs = []
        for block in self.blocks:
            x, moe = block(x, context=context, context_mask=context_mask)  # [B, H, D]
            if moe is not None:
                moe_outputs.append(moe)
        actions = self.out(self.norm(x))  # [B, H, J]
        if self.cfg.residual_to_state:
            pose = state * self.state_to_action_scale + self.state_to_action_offset  # [B, J]
            actions = actions + pose.unsqueeze(1)  # [B, H, J]
        telemetry = collect_telemetry(moe_outputs, [self.cfg.moe] * len(moe_outputs), actions)
        return ActionHeadOutput(actions, *telemetry)
