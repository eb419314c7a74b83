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

from moe_vla_ros.model.blocks import TransformerBlock, collect_telemetry, make_ffn, upcycle_blocks
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


class TrunkOutput(NamedTuple):
    tokens: Tensor  # [B, S, D]
    router_logits: Tensor  # [M, N, E]
    expert_load: Tensor  # [M, E]
    router_entropy: Tensor  # [M]
    aux_loss: Tensor  # [] weighted MoE aux losses, summed over layers
    dropped_tokens: Tensor  # [M] int64 token slots dropped by expert capacity, per layer


class Trunk(nn.Module):
    """Instruction + state embeddings and the (partly MoE) transformer encoder.

    Args:
        cfg: the model config.
        use_moe: build MoE layers at `trunk.moe_layers` now (False: dense FFNs everywhere, for
            the dense warm-up; `upcycle` converts them later).
    """

    def __init__(self, cfg: ModelConfig, use_moe: bool = True) -> None:
        super().__init__()
        tcfg = cfg.trunk
        self.cfg = tcfg
        d = cfg.d_model
        self.instruction_embed = nn.Embedding(cfg.vocab_size, d)
        self.instruction_pos = nn.Parameter(torch.randn(cfg.contract.max_instruction_tokens, d) * 0.02)  # [L, D]
        self.state_embed = StateEmbedding(cfg.contract.sensors.num_joints, d, tcfg.num_state_tokens)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                d,
                tcfg.num_heads,
                make_ffn(d, tcfg.ffn_hidden, tcfg.activation, tcfg.moe if use_moe and i in tcfg.moe_layers else None),
                dropout=tcfg.dropout,
            )
            for i in range(tcfg.num_layers)
        )
        self.norm = nn.LayerNorm(d)
        self.target_probe = TargetProbe(d, tcfg.num_heads)
        self.target_proj = nn.Linear(3, d) if tcfg.target_input else None

    @property
    def num_moe_layers(self) -> int:
        return sum(block.is_moe for block in self.blocks)

    def upcycle(self, noise_std: float = 0.0, seed: int | None = None) -> int:
        """Turn the dense FFNs of the configured MoE layers into MoE layers; returns how many."""
        if not self.cfg.moe_layers:
            return 0
        return upcycle_blocks(self.blocks, self.cfg.moe_layers, self.cfg.moe, noise_std, seed)

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
        moe_outputs = []
        for block in self.blocks:
            x, moe = block(x, self_mask=key_mask)  # [B, S, D]
            if moe is not None:
                moe_outputs.append(moe)
        x = self.norm(x)  # [B, S, D]
        telemetry = collect_telemetry(moe_outputs, [self.cfg.moe] * len(moe_outputs), x)
        return TrunkOutput(x, *telemetry)
