"""Reasoning decoder: a small causal transformer that writes a short text trace, conditioned
on the trunk tokens through cross-attention.

Export unit: the pure step function (static lengths, no KV cache, no Python control flow)

    forward(trunk_tokens [B, S, D], tokens [B, R] int64) -> ReasoningStepOutput(logits [B, R, V])

`tokens[:, 0]` is BOS, the rest generated tokens right-padded with PAD; logits at position i
predict token i + 1. The greedy loop (`moe_vla_ros.runtime.decoding.greedy_decode`) calls it at
most R - 1 times and stops once every row produced EOS. Generation is optional: the action
head takes whatever reasoning tokens it is given (the latest trace, or none at all), so the
runtime can produce reasoning at a lower rate than actions.

Shape legend: B batch, S trunk tokens, R reasoning buffer length, D d_model, V vocabulary.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from moe_vla_ros.model.blocks import TransformerBlock
from moe_vla_ros.model.config import ModelConfig
from moe_vla_ros.model.moe import DenseFFN
from moe_vla_ros.runtime.decoding import GreedyResult, greedy_decode
from moe_vla_ros.runtime.tokenization import BOS_ID, EOS_ID, PAD_ID

IGNORE_INDEX = -100


class ReasoningStepOutput(NamedTuple):
    logits: Tensor  # [B, R, V]


class ReasoningDecoder(nn.Module):
    """Causal decoder with cross-attention to the trunk tokens and an LM head."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        rcfg, d = cfg.reasoning, cfg.d_model
        self.max_tokens = cfg.contract.max_reasoning_tokens
        self.token_embed = nn.Embedding(cfg.vocab_size, d)
        self.position_embed = nn.Parameter(torch.randn(self.max_tokens, d) * 0.02)  # [R, D]
        self.blocks = nn.ModuleList(
            TransformerBlock(
                d,
                rcfg.num_heads,
                DenseFFN(d, rcfg.ffn_hidden, rcfg.activation),
                cross_attention=True,
                causal=True,
                dropout=rcfg.dropout,
            )
            for _ in range(rcfg.num_layers)
        )
        self.norm = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, cfg.vocab_size)

    def forward(self, trunk_tokens: Tensor, tokens: Tensor) -> ReasoningStepOutput:
        """trunk_tokens [B, S, D], tokens [B, R] int64 -> logits [B, R, V]."""
        x = self.token_embed(tokens) + self.position_embed  # [B, R, D]
        for block in self.blocks:
            x = block(x, context=trunk_tokens).hidden  # [B, R, D]
        return ReasoningStepOutput(self.lm_head(self.norm(x)))  # [B, R, V]

    @torch.no_grad()
    def generate(self, trunk_tokens: Tensor, max_new_tokens: int | None = None) -> GreedyResult:
        """Greedy decoding (stops at EOS or after R - 1 tokens); numpy ids/mask [B, R]."""

        def step(tokens: np.ndarray) -> np.ndarray:
            ids = torch.from_numpy(tokens).to(trunk_tokens.device)  # [B, R]
            return self(trunk_tokens, ids).logits.float().cpu().numpy()  # [B, R, V]

        return greedy_decode(step, trunk_tokens.shape[0], self.max_tokens, max_new_tokens)


def teacher_forcing(reasoning_ids: Tensor, reasoning_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Decoder inputs and targets for training.

    Args:
        reasoning_ids: [B, R] text tokens (no BOS/EOS), right-padded; at most R - 1 per row.
        reasoning_mask: [B, R] nonzero at text tokens.

    Returns:
        inputs  [B, R]: BOS, then the text tokens (PAD after).
        targets [B, R]: the text tokens, EOS right after the last one, IGNORE_INDEX after that.
    """
    b, r = reasoning_ids.shape
    valid = reasoning_mask != 0  # [B, R]
    lengths = valid.sum(dim=1)  # [B]
    if bool((lengths > r - 1).any()):
        raise ValueError(f"reasoning rows hold at most R - 1 = {r - 1} tokens, got lengths {lengths.tolist()}")
    text = torch.where(valid, reasoning_ids, torch.full_like(reasoning_ids, PAD_ID))  # [B, R]
    bos = torch.full((b, 1), BOS_ID, dtype=text.dtype, device=text.device)  # [B, 1]
    inputs = torch.cat([bos, text[:, :-1]], dim=1)  # [B, R]
    positions = torch.arange(r, device=text.device).unsqueeze(0)  # [1, R]
    targets = torch.where(valid, text, torch.full_like(text, IGNORE_INDEX))  # [B, R]
    targets = torch.where(positions == lengths.unsqueeze(1), torch.full_like(text, EOS_ID), targets)  # [B, R]
    return inputs, targets
