"""Mixture-of-Experts configuration and routing: which expert sees which token, with what weight.

Routing is computed once, as two dense ``[N, E]`` tensors (a boolean dispatch mask and float
combine weights), and consumed unchanged by both layer formulations in ``moe.py``. That is what
makes the sparse (loop over experts) and dense (every expert on every token) formulations agree
to rounding error for every router option, capacity drops included.

Everything here is export-friendly: TopK with a constant K, comparison with ``arange`` instead of
one-hot scatters, CumSum for capacity positions, no data-dependent Python control flow.

Einsum / shape legend:
    N  tokens in the batch (B * T, flattened)
    D  d_model
    E  num_experts (routed)
    K  top_k
    C  expert capacity (token slots per expert)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

ROUTERS = ("token_choice", "expert_choice")
ACTIVATIONS = ("gelu", "gelu_tanh", "geglu", "swiglu")
GATED_ACTIVATIONS = ("geglu", "swiglu")
FORMULATIONS = ("sparse", "dense")


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_finite(name: str, value: object, *, minimum: float | None = None, strict: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be {relation} {minimum}, got {value!r}")


@dataclass
class MoEConfig:
    """One Mixture-of-Experts feed-forward layer.

    Shape:
        d_model: token width D (input and output of the layer).
        d_hidden: hidden width H of ONE expert (gated activations use 2H input projections).
        num_experts: routed experts E.
        top_k: K. Token choice: experts per token (1 <= K <= E). Expert choice: sets the capacity
            C = ceil(cf * N * K / E) and the width of ``MoEOutput.topk_indices``.
        expert_bias: experts (routed and shared) have biases. Set False for Llama-style MLPs.

    Routing:
        router: "token_choice" (each token picks its top-K experts) or "expert_choice" (each
            expert picks its top-C tokens by router probability; Zhou et al. 2022).
        normalize_top_k: token choice only: renormalise the K selected probabilities to sum to 1.
            Ignored by expert choice, whose weight is the router probability itself. Refused
            with top_k=1: the single renormalised weight is always 1 (p / p), so the task loss
            gives the router no gradient (measured: 7.8e-7 vs 3.86 with raw probabilities);
            use normalize_top_k=False (weight p_e, the AdaMoE head) or top_k >= 2.
        capacity_factor: None = no token dropped (token choice) / cf = 1 (expert choice). Else
            every expert processes at most C = ceil(cf * N * K / E) token slots. Token-choice drop
            priority: all first choices before any second choice, and within one choice rank the
            token order of the flattened batch (b-major, then t); slots past C are dropped.
        scale_adapter: AdaMoE decoupled weighting: a zero-initialised Linear(d_model, E) adds
            s_e(x) to the router weight of every selected expert: weight_e = p_e (renormalised if
            normalize_top_k) + s_e(x). Selection still uses the router logits only.

    Mixing:
        num_shared_experts: DeepSeek-MoE style always-on experts (each of width d_hidden).
        shared_expert_weight: output = shared_expert_weight * sum(shared experts)
            + routed_expert_weight * routed. AdaMoE's 0.5/0.5 mix of a shared expert (the original
            dense FFN) and the routed experts is shared_expert_weight=0.5, routed_expert_weight=0.5
            with num_shared_experts=1, top_k=1, num_experts=4, scale_adapter=True, "geglu".
        routed_expert_weight: factor on the routed experts' combined output (see above).

    Compute:
        activation: "gelu" (erf), "gelu_tanh" (GPT-2 style), "geglu" (gelu(gate) * up) or
            "swiglu" (silu(gate) * up; Llama style).
        formulation: default forward formulation: "sparse" (loop over experts, gathers only
            routed tokens; fastest on CPU) or "dense" (every expert on every token, static
            shapes, plain MatMul/TopK/Gather ops for TensorRT).

    Losses (MoEOutput holds them unweighted; these coefficients are used by weighted_aux):
        aux_loss_coef: Switch load-balancing loss coefficient.
        z_loss_coef: router z-loss coefficient.
    """

    d_model: int
    d_hidden: int
    num_experts: int = 4
    top_k: int = 2
    router: str = "token_choice"
    num_shared_experts: int = 0
    shared_expert_weight: float = 1.0
    scale_adapter: bool = False
    normalize_top_k: bool = True
    capacity_factor: float | None = None
    activation: str = "gelu"
    formulation: str = "sparse"
    aux_loss_coef: float = 0.01
    z_loss_coef: float = 1e-3
    routed_expert_weight: float = 1.0
    expert_bias: bool = True

    def __post_init__(self) -> None:
        for name in ("d_model", "d_hidden", "num_experts", "top_k"):
            _check_positive_int(name, getattr(self, name))
        if self.top_k > self.num_experts:
            raise ValueError(f"top_k must be <= num_experts={self.num_experts}, got {self.top_k!r}")
        if self.router not in ROUTERS:
            raise ValueError(f"router must be one of {ROUTERS}, got {self.router!r}")
        if self.router == "token_choice" and self.top_k == 1 and self.normalize_top_k is True:
            raise ValueError(
                "top_k=1 with normalize_top_k=True: the renormalised weight of the single selected expert "
                "is p / p = 1, so the task loss gives the router no gradient; set normalize_top_k=False "
                "(weight = router probability) or top_k >= 2"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.formulation not in FORMULATIONS:
            raise ValueError(f"formulation must be one of {FORMULATIONS}, got {self.formulation!r}")
        n_shared = self.num_shared_experts
        if isinstance(n_shared, bool) or not isinstance(n_shared, int) or n_shared < 0:
            raise ValueError(f"num_shared_experts must be an integer >= 0, got {n_shared!r}")
        _check_finite("shared_expert_weight", self.shared_expert_weight)
        _check_finite("routed_expert_weight", self.routed_expert_weight)
        if self.capacity_factor is not None:
            _check_finite("capacity_factor", self.capacity_factor, minimum=0.0, strict=True)
        _check_finite("aux_loss_coef", self.aux_loss_coef, minimum=0.0)
        _check_finite("z_loss_coef", self.z_loss_coef, minimum=0.0)
        for name in ("scale_adapter", "normalize_top_k", "expert_bias"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")

    @property
    def gated(self) -> bool:
        """True for GLU activations, whose expert input projection is [gate | up] (width 2H)."""
        return self.activation in GATED_ACTIVATIONS


def expert_capacity(cfg: MoEConfig, num_tokens: int) -> int:
    """C = min(N, ceil(cf * N * K / E)); cf = capacity_factor, or 1 when it is None.

    Works on symbolic sizes during torch.export (the ONNX graph computes C from the token count).
    """
    factor = 1.0 if cfg.capacity_factor is None else float(cfg.capacity_factor)
    capacity = math.ceil(factor * num_tokens * cfg.top_k / cfg.num_experts)
    return torch.sym_min(capacity, num_tokens)


class Routing(NamedTuple):
    """Which expert processes which token, shared by both layer formulations."""

    dispatch_mask: Tensor  # [N, E] bool: expert e processes token n
    combine_weights: Tensor  # [N, E] float32: weight of expert e in token n's output, 0 if not dispatched
    topk_indices: Tensor  # [N, K] int64 (see token_choice_routing / expert_choice_routing)
    expert_load: Tensor  # [E] float32, sums to 1
    dropped_tokens: Tensor  # [] int64


def token_choice_routing(logits: Tensor, cfg: MoEConfig, scale: Tensor | None = None) -> Routing:
    """Each token picks its top-K experts by router probability.

    Args:
        logits: [N, E] router logits.
        scale: [N, E] AdaMoE scale-adapter output s(x), added to the selected weights; or None.

    Returns a Routing whose ``topk_indices`` are the K selected experts per token, best first
    (including experts whose slot was then dropped by capacity), ``expert_load`` the fraction of
    the N*K routed slots assigned to each expert before capacity drops (Switch f_i), and
    ``dropped_tokens`` the number of token slots dropped by capacity.
    """
    num_tokens, num_experts = logits.shape
    k = cfg.top_k
    probs = logits.float().softmax(dim=-1)  # [N, E]
    top_probs, topk_indices = probs.topk(k, dim=-1)  # [N, K], [N, K]
    weights = top_probs / top_probs.sum(dim=-1, keepdim=True) if cfg.normalize_top_k else top_probs
    if scale is not None:
        weights = weights + scale.float().gather(-1, topk_indices)  # [N, K]

    expert_ids = torch.arange(num_experts, device=logits.device)  # [E]
    assigned = (topk_indices.unsqueeze(-1) == expert_ids).float()  # [N, K, E] one-hot per choice
    if cfg.capacity_factor is None:
        kept = assigned
    else:
        # Choice-major slot order: every token's first choice, then every token's second choice.
        slots = assigned.transpose(0, 1).reshape(k * num_tokens, num_experts)  # [K*N, E]
        position = slots.cumsum(dim=0) - 1.0  # [K*N, E] slot index inside each expert's buffer
        capacity = expert_capacity(cfg, num_tokens)
        kept_slots = slots * (position < capacity).float()  # [K*N, E]
        kept = kept_slots.reshape(k, num_tokens, num_experts).transpose(0, 1)  # [N, K, E]

    combine_weights = (kept * weights.unsqueeze(-1)).sum(dim=1)  # "nke,nk->ne": [N, E]
    dispatch_mask = kept.sum(dim=1) > 0  # [N, E]
    expert_load = assigned.mean(dim=(0, 1))  # [E]
    dropped_tokens = (assigned.sum() - kept.sum()).long()  # []
    return Routing(dispatch_mask, combine_weights, topk_indices, expert_load, dropped_tokens)


def expert_choice_routing(logits: Tensor, cfg: MoEConfig, scale: Tensor | None = None) -> Routing:
    """Each expert picks its top-C tokens by router probability (softmax over experts).

    The weight of expert e for a token it picked is p_e (+ s_e with a scale adapter); a token may
    be picked by 0..E experts. ``topk_indices[n, j]`` is the j-th expert (by probability) among
    those that picked token n, or -1 when fewer than j+1 experts picked it. ``expert_load`` is
    each expert's share of the E*C slots (always 1/E), ``dropped_tokens`` the number of tokens no
    expert picked.
    """
    num_tokens, _num_experts = logits.shape
    probs = logits.float().softmax(dim=-1)  # [N, E]
    capacity = expert_capacity(cfg, num_tokens)
    _, chosen_tokens = probs.t().topk(capacity, dim=-1)  # [E, C] token indices per expert
    token_ids = torch.arange(num_tokens, device=logits.device)  # [N]
    picked = (chosen_tokens.unsqueeze(-1) == token_ids).float().sum(dim=1)  # [E, N] 0/1
    dispatch_mask = picked.t() > 0  # [N, E]

    weights = probs if scale is None else probs + scale.float()  # [N, E]
    combine_weights = weights * dispatch_mask.float()  # [N, E]
    ranked = torch.where(dispatch_mask, probs, torch.full_like(probs, -1.0))  # [N, E]
    ranked_probs, ranked_experts = ranked.topk(cfg.top_k, dim=-1)  # [N, K]
    topk_indices = torch.where(ranked_probs >= 0, ranked_experts, torch.full_like(ranked_experts, -1))
    slots = dispatch_mask.float().sum(dim=0)  # [E]
    expert_load = slots / slots.sum()  # [E]
    dropped_tokens = (dispatch_mask.float().sum(dim=-1) == 0).long().sum()  # []
    return Routing(dispatch_mask, combine_weights, topk_indices, expert_load, dropped_tokens)


def route(logits: Tensor, cfg: MoEConfig, scale: Tensor | None = None) -> Routing:
    """Route with the router named in ``cfg`` (logits [N, E], scale [N, E] or None)."""
    if cfg.router == "token_choice":
        return token_choice_routing(logits, cfg, scale)
    return expert_choice_routing(logits, cfg, scale)


class RouterStatistics(NamedTuple):
    aux_loss: Tensor  # [] Switch load balance E * sum_i f_i * P_i (1 when balanced)
    z_loss: Tensor  # [] mean_n logsumexp(logits_n)^2
    router_entropy: Tensor  # [] mean_n entropy(softmax(logits_n)) in nats


def router_statistics(logits: Tensor, expert_load: Tensor) -> RouterStatistics:
    """Unweighted router losses and telemetry from logits [N, E] and f = expert_load [E]."""
    num_experts = logits.shape[-1]
    log_probs = logits.float().log_softmax(dim=-1)  # [N, E]
    probs = log_probs.exp()  # [N, E]
    aux_loss = num_experts * (expert_load * probs.mean(dim=0)).sum()
    z_loss = torch.logsumexp(logits.float(), dim=-1).square().mean()
    router_entropy = -(probs * log_probs).sum(dim=-1).mean()
    return RouterStatistics(aux_loss, z_loss, router_entropy)


def activate(h: Tensor, activation: str) -> Tensor:
    """Expert nonlinearity: h [..., H] -> [..., H], or [..., 2H] = [gate | up] -> [..., H] if gated."""
    if activation == "gelu":
        return F.gelu(h)
    if activation == "gelu_tanh":
        return F.gelu(h, approximate="tanh")
    gate, up = h.chunk(2, dim=-1)  # [..., H], [..., H]
    if activation == "geglu":
        return F.gelu(gate) * up
    if activation == "swiglu":
        return F.silu(gate) * up
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
