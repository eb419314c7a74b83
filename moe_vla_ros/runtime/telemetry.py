"""MoE telemetry: graph outputs -> LayerUsage, and routing decisions recovered from router logits.

A MoE stage graph outputs, for its M MoE layers over N tokens and E experts,

    router_logits [M, N, E]   expert_load [M, E]   router_entropy [M]

Which experts each token went to (and how many slots capacity dropped) follows from the
logits and the layer's routing rule (MoELayerSpec), exactly as moe_routing.py computes it:

* token choice: each token's top-K experts by logit (softmax is monotonic); with a capacity
  factor cf each expert keeps C = min(N, ceil(cf * N * K / E)) slots and the rest are dropped;
* expert choice: each expert takes its top-C tokens by router probability (cf = 1 when unset);
  tokens no expert took count as dropped.

Routing comparisons (export verification, quantisation gates) treat decisions whose margin is
below `tie_margin` as near-ties: float rounding may legitimately flip those.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from moe_vla_ros.runtime.manifest import MoELayerSpec
from moe_vla_ros.runtime.types import LayerUsage


class StageTelemetry(NamedTuple):
    """Telemetry outputs of one MoE stage graph (numpy)."""

    router_logits: np.ndarray  # [M, N, E]
    expert_load: np.ndarray  # [M, E]
    router_entropy: np.ndarray  # [M]


class RoutingAgreement(NamedTuple):
    """How two runs' routing of the same tokens compares (see routing_agreement)."""

    agreement: float  # fraction of tokens routed to the same expert set
    mismatches: int  # tokens routed differently where the reference decision was not a near-tie
    near_ties: int  # tokens routed differently at a near-tie
    tied: bool  # some reference decision was a near-tie (whether or not the other run flipped it)


def capacity(spec: MoELayerSpec, num_tokens: int) -> int:
    """C = min(N, ceil(cf * N * K / E)), cf = capacity_factor or 1 (as moe_routing.expert_capacity)."""
    factor = 1.0 if spec.capacity_factor is None else float(spec.capacity_factor)
    return min(math.ceil(factor * num_tokens * spec.top_k / spec.num_experts), num_tokens)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)  # [N, E]
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def routing_mask(logits: np.ndarray, spec: MoELayerSpec) -> tuple[np.ndarray, np.ndarray]:
    """(selected [N, E] bool, margin [N, E] float) before capacity drops.

    margin[n, e] is how far the decision about (token n, expert e) was from flipping: for token
    choice the gap between the token's K-th and (K+1)-th logit; for expert choice the gap
    between expert e's C-th and (C+1)-th token probability.
    """
    n, e = logits.shape
    if spec.router == "token_choice":
        order = np.argsort(-logits, axis=-1, kind="stable")  # [N, E]
        selected = np.zeros((n, e), dtype=bool)
        np.put_along_axis(selected, order[:, : spec.top_k], True, axis=-1)
        ranked = np.take_along_axis(logits, order, axis=-1)  # [N, E] descending
        gap = ranked[:, spec.top_k - 1] - ranked[:, spec.top_k] if spec.top_k < e else np.full(n, np.inf)  # [N]
        return selected, np.repeat(gap[:, None], e, axis=1)
    probs = _softmax(logits).T  # [E, N]
    c = capacity(spec, n)
    order = np.argsort(-probs, axis=-1, kind="stable")  # [E, N]
    selected_t = np.zeros((e, n), dtype=bool)
    np.put_along_axis(selected_t, order[:, :c], True, axis=-1)
    ranked = np.take_along_axis(probs, order, axis=-1)  # [E, N]
    gap = ranked[:, c - 1] - ranked[:, c] if c < n else np.full(e, np.inf)  # [E]
    return selected_t.T, np.repeat(gap[None, :], n, axis=0)


def dropped_token_slots(logits: np.ndarray, spec: MoELayerSpec) -> int:
    """Token slots dropped by capacity (token choice) or tokens no expert took (expert choice)."""
    selected, _ = routing_mask(logits, spec)
    if spec.router == "expert_choice":
        return int((~selected.any(axis=1)).sum())
    if spec.capacity_factor is None:
        return 0
    per_expert = selected.sum(axis=0)  # [E]
    return int(np.maximum(per_expert - capacity(spec, logits.shape[0]), 0).sum())


def routing_agreement(reference: np.ndarray, other: np.ndarray, spec: MoELayerSpec, tie_margin: float) -> RoutingAgreement:
    """Compare the routing implied by two [N, E] logit arrays of the same tokens."""
    ref_sel, ref_margin = routing_mask(reference, spec)
    other_sel, _ = routing_mask(other, spec)
    differs = ref_sel != other_sel  # [N, E]
    token_differs = differs.any(axis=1)  # [N]
    near_tie = ref_margin < tie_margin  # [N, E]
    real = (differs & ~near_tie).any(axis=1)  # [N]
    n = max(int(reference.shape[0]), 1)
    return RoutingAgreement(1.0 - float(token_differs.sum()) / n, int(real.sum()), int((token_differs & ~real).sum()),
                            bool(near_tie.any()))


def layer_usages(specs: Sequence[MoELayerSpec], telemetry: Mapping[str, StageTelemetry]) -> tuple[LayerUsage, ...]:
    """One LayerUsage per MoE layer, in `specs` order."""
    usages = []
    for spec in specs:
        t = telemetry[spec.stage]
        logits = np.asarray(t.router_logits[spec.index])  # [N, E]
        usages.append(
            LayerUsage(
                layer_name=spec.name,
                expert_load=np.asarray(t.expert_load[spec.index], dtype=np.float64),  # [E]
                router_entropy=float(t.router_entropy[spec.index]),
                num_tokens=int(logits.shape[0]),
                dropped_tokens=dropped_token_slots(logits, spec),
            )
        )
    return tuple(usages)
