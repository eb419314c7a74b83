"""Mixture-of-Experts feed-forward layer (and the dense FFN it replaces / is upcycled from).

One weight layout serves both formulations: stacked expert weights

    w_in  [E, D, H] (or [E, D, 2H] = [gate | up] for GLU activations)   b_in  [E, H or 2H]
    w_out [E, H, D]                                                      b_out [E, D]

* "sparse": loop over experts; each expert gathers its routed tokens (nonzero + index
  select) and runs; the weighted outputs are concatenated and every token gathers and sums
  its rows (no scatter: TensorRT 10 parses it whole). Data-dependent shapes, least compute,
  fastest on CPU; exports with torch.onnx.export(dynamo=True).
* "dense": every expert runs on every token with batched MatMuls and the outputs are combined
  with the dense [N, E] weight matrix from routing. Static shapes, only MatMul/TopK/Gather/
  elementwise ops: what TensorRT on Jetson-class GPUs runs.

Both consume the same Routing (see moe_routing.py), so they agree to float rounding.

Einsum / shape legend:
    B batch, T tokens per sample, N = B * T tokens
    D d_model, H d_hidden (one expert), E routed experts, S shared experts, K top_k
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from moe_vla_ros.model.moe_routing import (
    ACTIVATIONS,
    FORMULATIONS,
    GATED_ACTIVATIONS,
    MoEConfig,
    Routing,
    activate,
    route,
    router_statistics,
)

__all__ = ["DenseFFN", "MoEConfig", "MoELayer", "MoEOutput", "StackedExperts"]


class MoEOutput(NamedTuple):
    """Output of MoELayer.forward: the layer output plus router losses and telemetry."""

    output: Tensor  # [B, T, D]
    aux_loss: Tensor  # [] unweighted Switch load balance E * sum_i f_i * P_i
    z_loss: Tensor  # [] unweighted mean(logsumexp(logits)^2)
    router_logits: Tensor  # [N, E]
    topk_indices: Tensor  # [N, K] int64; expert choice: experts that picked the token, -1 padded
    expert_load: Tensor  # [E] fraction of routed token slots per expert (sums to 1)
    router_entropy: Tensor  # [] mean per-token entropy of softmax(logits) in nats
    dropped_tokens: Tensor  # [] int64 token slots dropped by capacity (expert choice: unpicked tokens)

    def weighted_aux(self, cfg: MoEConfig) -> Tensor:
        """The auxiliary loss to add to the task loss: aux_loss_coef * aux + z_loss_coef * z."""
        return cfg.aux_loss_coef * self.aux_loss + cfg.z_loss_coef * self.z_loss


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


class DenseFFN(nn.Module):
    """Position-wise feed-forward block: fc_out(act(fc_in(x))).

    For GLU activations ("geglu", "swiglu") fc_in has width 2 * d_hidden laid out as
    [gate | up], the same layout as the experts' w_in, so upcycling is a plain copy.
    """

    def __init__(self, d_model: int, d_hidden: int, activation: str = "gelu", bias: bool = True) -> None:
        super().__init__()
        _check_activation(activation)
        self.d_model = d_model
        self.d_hidden = d_hidden
        self.activation = activation
        in_width = 2 * d_hidden if activation in GATED_ACTIVATIONS else d_hidden
        self.fc_in = nn.Linear(d_model, in_width, bias=bias)  # D -> H or 2H
        self.fc_out = nn.Linear(d_hidden, d_model, bias=bias)  # H -> D

    def forward(self, x: Tensor) -> Tensor:
        return self.fc_out(activate(self.fc_in(x), self.activation))  # [..., D]


class StackedExperts(nn.Module):
    """E independent FFN experts stored as stacked weights (the layout both formulations use)."""

    def __init__(
        self, num_experts: int, d_model: int, d_hidden: int, activation: str, bias: bool = True
    ) -> None:
        super().__init__()
        _check_activation(activation)
        self.activation = activation
        in_width = 2 * d_hidden if activation in GATED_ACTIVATIONS else d_hidden
        self.w_in = nn.Parameter(torch.empty(num_experts, d_model, in_width))  # [E, D, H|2H]
        self.w_out = nn.Parameter(torch.empty(num_experts, d_hidden, d_model))  # [E, H, D]
        self.b_in = nn.Parameter(torch.empty(num_experts, in_width)) if bias else None  # [E, H|2H]
        self.b_out = nn.Parameter(torch.empty(num_experts, d_model)) if bias else None  # [E, D]
        self.reset_parameters()

    @property
    def num_experts(self) -> int:
        return self.w_in.shape[0]

    def reset_parameters(self) -> None:
        """nn.Linear's default initialisation, per expert: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        bound_in = 1.0 / math.sqrt(self.w_in.shape[1])
        bound_out = 1.0 / math.sqrt(self.w_out.shape[1])
        nn.init.uniform_(self.w_in, -bound_in, bound_in)
        nn.init.uniform_(self.w_out, -bound_out, bound_out)
        if self.b_in is not None and self.b_out is not None:
            nn.init.uniform_(self.b_in, -bound_in, bound_in)
            nn.init.uniform_(self.b_out, -bound_out, bound_out)

    def forward_one(self, expert: int, x: Tensor) -> Tensor:
        """Expert ``expert`` on its tokens: x [n, D] -> [n, D]."""
        h = x @ self.w_in[expert]  # [n, H|2H]
        if self.b_in is not None:
            h = h + self.b_in[expert]
        y = activate(h, self.activation) @ self.w_out[expert]  # [n, D]
        if self.b_out is not None:
            y = y + self.b_out[expert]
        return y

    def forward_all(self, x: Tensor) -> Tensor:
        """Every expert on every token: x [N, D] -> [E, N, D] ("nd,edh->enh", "enh,ehd->end" as MatMul)."""
        h = x.unsqueeze(0) @ self.w_in  # [1, N, D] @ [E, D, H|2H] -> [E, N, H|2H]
        if self.b_in is not None:
            h = h + self.b_in.unsqueeze(1)
        y = activate(h, self.activation) @ self.w_out  # [E, N, H] @ [E, H, D] -> [E, N, D]
        if self.b_out is not None:
            y = y + self.b_out.unsqueeze(1)
        return y


class MoELayer(nn.Module):
    """Drop-in replacement for a DenseFFN: x [B, T, D] -> MoEOutput (output [B, T, D], ...).

    Modules: ``router`` Linear(D, E, bias=False); ``experts`` StackedExperts(E);
    ``shared_experts`` StackedExperts(S) or None; ``scale_adapter`` Linear(D, E) (zero init) or None.
    """

    def __init__(self, cfg: MoEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.router = nn.Linear(cfg.d_model, cfg.num_experts, bias=False)
        nn.init.normal_(self.router.weight, std=0.02)
        self.experts = StackedExperts(cfg.num_experts, cfg.d_model, cfg.d_hidden, cfg.activation, cfg.expert_bias)
        self.shared_experts: StackedExperts | None = None
        if cfg.num_shared_experts > 0:
            self.shared_experts = StackedExperts(
                cfg.num_shared_experts, cfg.d_model, cfg.d_hidden, cfg.activation, cfg.expert_bias
            )
        self.scale_adapter: nn.Linear | None = None
        if cfg.scale_adapter:
            self.scale_adapter = nn.Linear(cfg.d_model, cfg.num_experts)
            nn.init.zeros_(self.scale_adapter.weight)
            nn.init.zeros_(self.scale_adapter.bias)
        self.formulation = cfg.formulation

    def set_formulation(self, name: str) -> None:
        """Choose the default formulation ("sparse" or "dense"); weights are unchanged."""
        if name not in FORMULATIONS:
            raise ValueError(f"formulation must be one of {FORMULATIONS}, got {name!r}")
        self.formulation = name

    def forward(self, x: Tensor, formulation: str | None = None) -> MoEOutput:
        cfg = self.cfg
        formulation = self.formulation if formulation is None else formulation
        if formulation not in FORMULATIONS:
            raise ValueError(f"formulation must be one of {FORMULATIONS}, got {formulation!r}")
        if x.dim() != 3 or x.shape[-1] != cfg.d_model:
            raise ValueError(f"x must have shape [B, T, {cfg.d_model}], got {tuple(x.shape)}")
        batch, seq, d_model = x.shape
        tokens = x.reshape(batch * seq, d_model)  # [N, D]

        router_logits = self.router(tokens)  # [N, E]
        scale = self.scale_adapter(tokens) if self.scale_adapter is not None else None  # [N, E]
        routing = route(router_logits, cfg, scale)
        if formulation == "sparse":
            routed = self._combine_sparse(tokens, routing)  # [N, D]
        else:
            routed = self._combine_dense(tokens, routing)  # [N, D]
        out = routed if cfg.routed_expert_weight == 1.0 else cfg.routed_expert_weight * routed
        if self.shared_experts is not None:
            shared = self.shared_experts.forward_all(tokens).sum(dim=0)  # [S, N, D] -> [N, D]
            out = out + cfg.shared_expert_weight * shared

        stats = router_statistics(router_logits, routing.expert_load)
        return MoEOutput(
            output=out.reshape(batch, seq, d_model),
            aux_loss=stats.aux_loss,
            z_loss=stats.z_loss,
            router_logits=router_logits,
            topk_indices=routing.topk_indices,
            expert_load=routing.expert_load,
            router_entropy=stats.router_entropy,
            dropped_tokens=routing.dropped_tokens,
        )

    def _combine_sparse(self, tokens: Tensor, routing: Routing) -> Tensor:
        """Loop over experts; each runs only on its dispatched tokens. tokens [N, D] -> [N, D].

        Scatter-free combine (no index_add / ScatterND with reduction, which TensorRT 10 rejects
        and TensorRT 8.6/9 silently turn into an overwrite): the outputs of every expert are
        concatenated expert-major with one zero row at the end; a token's row of (token n,
        expert e) is the running count of dispatched slots (CumSum over the expert-major mask),
        and each token gathers its K rows and sums them weighted by its routing weights (token choice: its top-K experts, a slot
        dropped by capacity reads the zero row; expert choice: all E experts, as a token may be
        picked by any number of them). Ops: NonZero, Gather, MatMul, Concat, CumSum, ReduceSum.
        """
        num_tokens, d_model = tokens.shape
        combine = routing.combine_weights.to(tokens.dtype)  # [N, E]
        mask = routing.dispatch_mask.to(tokens.dtype)  # [N, E] 0/1 (float: TensorRT's NonZero takes float)
        rows = []
        for expert in range(self.cfg.num_experts):
            token_idx = torch.nonzero(mask[:, expert]).squeeze(-1)  # [n_e]
            rows.append(self.experts.forward_one(expert, tokens[token_idx]))  # [n_e, D]
        rows.append(tokens.new_zeros(1, d_model))  # [1, D]: what an empty slot reads
        stacked = torch.cat(rows)  # [M + 1, D], M = dispatched slots, expert-major
        flat = routing.dispatch_mask.t().reshape(-1).long()  # [E*N] expert-major 0/1
        position = flat.cumsum(0) - 1  # [E*N] row in `stacked` of each dispatched (e, n)
        empty = flat.sum()  # [] = M, the zero row
        position = torch.where(flat > 0, position, empty).reshape(-1, num_tokens).t()  # [N, E]
        weight = combine  # [N, E]
        if self.cfg.router == "token_choice":
            slots = routing.topk_indices  # [N, K] the experts a token can have been dispatched to
            position, weight = position.gather(1, slots), combine.gather(1, slots)  # [N, K], [N, K]
        return (stacked[position] * weight.unsqueeze(-1)).sum(dim=1)  # [N, K or E, D] -> [N, D]

    def _combine_dense(self, tokens: Tensor, routing: Routing) -> Tensor:
        """Every expert on every token, combined by the [N, E] weights. tokens [N, D] -> [N, D]."""
        expert_out = self.experts.forward_all(tokens)  # [E, N, D]
        combine = routing.combine_weights.to(tokens.dtype)  # [N, E]
        # "ne,end->nd" as elementwise product + sum: plain Mul/ReduceSum in the exported graph.
        return (combine.t().unsqueeze(-1) * expert_out).sum(dim=0)  # [E, N, 1] * [E, N, D] -> [N, D]
