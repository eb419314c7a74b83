"""Attention and pre-norm transformer blocks shared by the vision encoder, trunk, reasoning
decoder and action head.

A block's feed-forward slot holds either a `DenseFFN` (returns a tensor) or a `MoELayer`
(returns a `MoEOutput`); the block returns the MoE output beside the hidden states so the
owning module can collect router telemetry and auxiliary losses. Upcycling replaces
`block.ffn` in place.

Shape legend:
    B batch, T query tokens, S context (key/value) tokens, D d_model, H heads, Dh = D / H
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from moe_vla_ros.model.component_configs import ActionHeadConfig, TrunkConfig
from moe_vla_ros.model.moe import DenseFFN, MoEConfig, MoELayer, MoEOutput
from moe_vla_ros.model.upcycle import upcycle_ffn


class Attention(nn.Module):
    """Multi-head attention; self-attention when `context` is None, cross-attention otherwise.

    Args:
        d_model: D, divisible by num_heads.
        num_heads: H.
        causal: mask future positions (self-attention only; no key mask then).
        dropout: attention-probability dropout in training.
    """

    def __init__(self, d_model: int, num_heads: int, causal: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.causal = causal
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model)
        self.kv_proj = nn.Linear(d_model, 2 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor, context: Tensor | None = None, key_mask: Tensor | None = None) -> Tensor:
        """x [B, T, D], context [B, S, D] or None, key_mask [B, S] (nonzero = attend) -> [B, T, D]."""
        if self.causal and key_mask is not None:
            raise ValueError("a causal attention takes no key_mask")
        ctx = x if context is None else context
        b, t, d = x.shape
        s = ctx.shape[1]
        q = self.q_proj(x).reshape(b, t, self.num_heads, self.head_dim).transpose(1, 2)  # [B, H, T, Dh]
        kv = self.kv_proj(ctx).reshape(b, s, 2, self.num_heads, self.head_dim)  # [B, S, 2, H, Dh]
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # 2 x [B, H, S, Dh]
        attn_mask = None
        if key_mask is not None:  # additive float mask: exports without NaN guards (no IsNaN op)
            blocked = (key_mask == 0)[:, None, None, :]  # [B, 1, 1, S]
            attn_mask = torch.zeros(blocked.shape, dtype=q.dtype, device=q.device).masked_fill(
                blocked, torch.finfo(q.dtype).min
            )  # [B, 1, 1, S]
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=self.causal, dropout_p=self.dropout if self.training else 0.0
        )  # [B, H, T, Dh]
        return self.out_proj(y.transpose(1, 2).reshape(b, t, d))  # [B, T, D]


class BlockOutput(NamedTuple):
    hidden: Tensor  # [B, T, D]
    moe: MoEOutput | None  # router telemetry + losses when the FFN is a MoELayer


class TransformerBlock(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention, then the FFN slot.

        x = x + SelfAttn(LN(x));  x = x + CrossAttn(LN(x), context);  x = x + FFN(LN(x))
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        ffn: nn.Module,
        *,
        cross_attention: bool = False,
        causal: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm_self = nn.LayerNorm(d_model)
        self.self_attn = Attention(d_model, num_heads, causal=causal, dropout=dropout)
        self.norm_cross = nn.LayerNorm(d_model) if cross_attention else None
        self.cross_attn = Attention(d_model, num_heads, dropout=dropout) if cross_attention else None
        self.norm_ffn = nn.LayerNorm(d_model)
        self.ffn = ffn
        self.resid_dropout = nn.Dropout(dropout)

    @property
    def is_moe(self) -> bool:
        return isinstance(self.ffn, MoELayer)

    def forward(
        self,
        x: Tensor,
        self_mask: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> BlockOutput:
        """x [B, T, D]; self_mask [B, T]; context [B, S, D]; context_mask [B, S] -> BlockOutput."""
        x = x + self.resid_dropout(self.self_attn(self.norm_self(x), key_mask=self_mask))  # [B, T, D]
        if self.cross_attn is not None:
            if context is None:
                raise ValueError("this block has cross-attention: pass a context")
            x = x + self.resid_dropout(self.cross_attn(self.norm_cross(x), context, context_mask))  # [B, T, D]
        ffn_out = self.ffn(self.norm_ffn(x))
        if isinstance(ffn_out, Tensor):
            return BlockOutput(x + self.resid_dropout(ffn_out), None)  # [B, T, D]
        return BlockOutput(x + self.resid_dropout(ffn_out.output), ffn_out)  # [B, T, D]


def make_ffn(d_model: int, d_hidden: int, activation: str, moe: MoEConfig | None) -> nn.Module:
    """A DenseFFN, or a MoELayer when `moe` is given (its d_model/d_hidden must match)."""
    if moe is None:
        return DenseFFN(d_model, d_hidden, activation)
    if (moe.d_model, moe.d_hidden, moe.activation) != (d_model, d_hidden, activation):
        raise ValueError(
            f"MoE config (d_model={moe.d_model}, d_hidden={moe.d_hidden}, activation={moe.activation!r}) "
            f"does not match the FFN slot (d_model={d_model}, d_hidden={d_hidden}, activation={activation!r})"
        )
    return MoELayer(moe)


def upcycle_blocks(
    blocks: nn.ModuleList, layers: tuple[int, ...], moe: MoEConfig, noise_std: float, seed: int | None
) -> int:
    """Replace the DenseFFN of `blocks[i]` for i in `layers` by an upcycled MoELayer; returns how many."""
    count = 0
    for i in layers:
        block = blocks[i]
        if not isinstance(block.ffn, DenseFFN):
            continue
        block.ffn = upcycle_ffn(block.ffn, moe, noise_std=noise_std, seed=None if seed is None else seed + i)
        count += 1
    return count


class MoETelemetry(NamedTuple):
    """Router telemetry of the M MoE layers of one module (tensors only, exportable).

    router_logits:  [M, N, E] per-layer router logits, N = B * T tokens.
    expert_load:    [M, E] fraction of routed slots per expert.
    router_entropy: [M] mean router entropy (nats).
    aux_loss:       [] sum over layers of the weighted load-balance + z losses.
    dropped_tokens: [M] int64 token slots each layer dropped by expert capacity (0 without a
                    capacity limit; training-only, not exported).
    """

    router_logits: Tensor
    expert_load: Tensor
    router_entropy: Tensor
    aux_loss: Tensor
    dropped_tokens: Tensor


def collect_telemetry(outputs: Sequence[MoEOutput], cfgs: Sequence[MoEConfig], like: Tensor) -> MoETelemetry:
    """Stack the MoE outputs of one module; empty [0, ...] tensors when it has no MoE layer."""
    if not outputs:
        zero = like.new_zeros(())
        none = like.new_zeros(0, dtype=torch.long)
        return MoETelemetry(like.new_zeros(0, 0, 0), like.new_zeros(0, 0), like.new_zeros(0), zero, none)
    aux = torch.stack([o.weighted_aux(c) for o, c in zip(outputs, cfgs)]).sum()  # []
    return MoETelemetry(
        torch.stack([o.router_logits for o in outputs]),  # [M, N, E]
        torch.stack([o.expert_load for o in outputs]),  # [M, E]
        torch.stack([o.router_entropy for o in outputs]),  # [M]
        aux,
        torch.stack([o.dropped_tokens for o in outputs]),  # [M]
    )


# (name, type) of MoETelemetry's fields: a module's output NamedTuple is its own tensor, then these
TELEMETRY_FIELDS = [(name, Tensor) for name in MoETelemetry._fields]


class MoEBlockStack(nn.Module):
    """A module whose transformer `blocks` have MoE FFNs at `cfg.moe_layers` (the trunk, the action
    head): building, counting and upcycling them, and running them with the router telemetry of
    the MoE layers collected. The module calls `build_blocks` where its blocks belong in its
    construction order (which decides the random initialisation of everything built after).

    Subclasses are built as `Cls(cfg, use_moe=True)`:
        cfg: the model config (ModelConfig).
        use_moe: build MoE layers at the module's `moe_layers` now (False: dense FFNs
            everywhere, for the dense warm-up; `upcycle` converts them later).
    """

    cfg: TrunkConfig | ActionHeadConfig
    blocks: nn.ModuleList

    def build_blocks(self, cfg: TrunkConfig | ActionHeadConfig, d_model: int, use_moe: bool,
                     cross_attention: bool = False) -> None:
        """`cfg.num_layers` blocks of width `d_model`, with MoE layers at `cfg.moe_layers` when
        `use_moe` (False: dense FFNs everywhere, for the dense warm-up; `upcycle` converts them
        later) and cross-attention to a context when `cross_attention`. Dense FFNs have
        `cfg.ffn_width(i)` hidden units (ffn_hidden unless `cfg.ffn_hidden_at` says otherwise)."""
        self.cfg = cfg
        self.blocks = nn.ModuleList(
            TransformerBlock(
                d_model,
                cfg.num_heads,
                make_ffn(d_model, cfg.ffn_width(i), cfg.activation, cfg.moe if use_moe and i in cfg.moe_layers else None),
                cross_attention=cross_attention,
                dropout=cfg.dropout,
            )
            for i in range(cfg.num_layers)
        )

    @property
    def num_moe_layers(self) -> int:
        return sum(block.is_moe for block in self.blocks)

    def upcycle(self, noise_std: float = 0.0, seed: int | None = None) -> int:
        """Turn the dense FFNs of the configured MoE layers into MoE layers; returns how many."""
        if not self.cfg.moe_layers:
            return 0
        return upcycle_blocks(self.blocks, self.cfg.moe_layers, self.cfg.moe, noise_std, seed)

    def run_blocks(self, x: Tensor, **masks: Tensor) -> tuple[Tensor, MoETelemetry]:
        """x [B, T, D] through every block (`masks`: TransformerBlock.forward's self_mask, context,
        context_mask) -> (x [B, T, D], the telemetry of the MoE layers)."""
        moe_outputs = []
        for block in self.blocks:
            x, moe = block(x, **masks)  # [B, T, D]
            if moe is not None:
                moe_outputs.append(moe)
        return x, collect_telemetry(moe_outputs, [self.cfg.moe] * len(moe_outputs), x)


class LearnedQueries(nn.Module):
    """`num` learned vectors [num, D], broadcast over a batch."""

    def __init__(self, num: int, d_model: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num, d_model) * 0.02)

    def forward(self, batch_like: Tensor) -> Tensor:
        """batch_like [B, ...] -> [B, num, D]."""
        return self.weight.unsqueeze(0).expand(batch_like.shape[0], -1, -1)
