"""Trunk: transformer encoder over [vision tokens; instruction tokens; state tokens].

Every block's FFN is a DenseFFN or (for the layers in `TrunkConfig.moe_layers`, once the
model is built with MoE or upcycled) a MoELayer. The forward returns the trunk tokens plus
the router telemetry of its MoE layers, tensors only, so it exports as one graph:

    vision_tokens [B, Nv, D], instruction_ids [B, L] int64, instruction_mask [B, L],
    state [B, J] (z-scored with the contract's state stats)
        -> tokens [B, S, D], S = Nv + L + Ns   (+ MoE telemetry, see MoETelemetry)

Padded instruction positions are masked as attention keys inside the trunk; their output
tokens are still returned (a deterministic function of the real tokens) and consumers attend
to all S tokens, which keeps the downstream graphs' inputs to the trunk tokens alone.

Shape legend: B batch, Nv vision tokens, L instruction tokens, Ns state tokens, J joints,
S trunk tokens, D d_model, M MoE layers, N = B * S routed tokens, E experts.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from moe_vla_ros.model.blocks import TELEMETRY_FIELDS, MoEBlockStack
from moe_vla_ros.model.config import ModelConfig
from moe_vla_ros.model.target_probe import TargetProbe


class StateEmbedding(nn.Module):
    """Normalised joint state [B, J] -> Ns tokens [B, Ns, D] (a two-layer MLP)."""

    def __init__(self, num_joints: int, d_model: int, num_tokens: int) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.mlp = nn.Sequential(nn.Linear(num_joints, d_model), nn.GELU(), nn.Linear(d_model, num_tokens * d_model))

    def forward(self, state: Tensor) -> Tensor:
        """state [B, J] -> [B, Ns, D]."""
        return self.mlp(state).reshape(state.shape[0], self.num_tokens, -1)  # [B, Ns, D]


TrunkOutput = NamedTuple("TrunkOutput", [("tokens", Tensor), *TELEMETRY_FIELDS])  # tokens [B, S, D], MoETelemetry


class Trunk(MoEBlockStack):
    """Instruction + state embeddings and the (partly MoE) transformer encoder. Built as MoEBlockStack says, from `cfg.trunk`."""

    def __init__(self, cfg: ModelConfig, use_moe: bool = True) -> None:
        super().__init__()
        d = cfg.d_model
        self.instruction_embed = nn.Embedding(cfg.vocab_size, d)
        self.instruction_pos = nn.Parameter(torch.randn(cfg.contract.max_instruction_tokens, d) * 0.02)  # [L, D]
        self.state_embed = StateEmbedding(cfg.contract.sensors.num_joints, d, cfg.trunk.num_state_tokens)
        self.build_blocks(cfg.trunk, d, use_moe)
        self.norm = nn.LayerNorm(d)
        self.target_probe = TargetProbe(d, cfg.trunk.num_heads)
        self.target_proj = nn.Linear(3, d) if cfg.trunk.target_input else None

    def estimate_target(self, vision_tokens: Tensor, instruction_ids: Tensor, instruction_mask: Tensor) -> Tensor:
        """The target probe: vision tokens [B, Nv, D], ids/mask [B, L] -> position [B, 3] (see target_probe.py)."""
        return self.target_probe(vision_tokens, self.instruction_embed(instruction_ids), instruction_mask)

    def forward(
        self,
        vision_tokens: Tensor,
        instruction_ids: Tensor,
        instruction_mask: Tensor,
        state: Tensor,
        target: Tensor | None = None,
    ) -> TrunkOutput:
        """See the module docstring for shapes. With `target_input`, `target` [B, 3] is the
        `estimate_target` of these inputs when the caller already has it (None: computed here)."""
        b, num_vision, _ = vision_tokens.shape
        words = self.instruction_embed(instruction_ids) + self.instruction_pos  # [B, L, D]
        state_tokens = self.state_embed(state)  # [B, Ns, D]
        if self.target_proj is not None:
            if target is None:
                target = self.estimate_target(vision_tokens, instruction_ids, instruction_mask)  # [B, 3]
            state_tokens = state_tokens + self.target_proj(target).unsqueeze(1)  # [B, Ns, D]
        x = torch.cat([vision_tokens, words, state_tokens], dim=1)  # [B, S, D]
        always = torch.ones(b, num_vision, dtype=torch.bool, device=x.device)  # [B, Nv]
        state_valid = torch.ones(b, state_tokens.shape[1], dtype=torch.bool, device=x.device)  # [B, Ns]
        key_mask = torch.cat([always, instruction_mask != 0, state_valid], dim=1)  # [B, S]
        x, telemetry = self.run_blocks(x, self_mask=key_mask)  # [B, S, D]
        return TrunkOutput(self.norm(x), *telemetry)
