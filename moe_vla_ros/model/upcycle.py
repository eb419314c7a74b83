"""Sparse upcycling: turn a trained dense FFN into an MoE layer that starts out equal to it.

Every routed expert (and every shared expert) is a copy of the dense FFN; routed experts may get
small Gaussian noise so they can diverge. The router weight is zero (uniform routing: every
expert has probability 1/E) and the AdaMoE scale adapter is zero, so the routed weights of a
token are 1/E each, renormalised to 1/K each with ``normalize_top_k``. With

    routed_expert_weight * w + num_shared_experts * shared_expert_weight == 1

(w = 1 with ``normalize_top_k`` or expert choice at C = N, K/E with raw top-k probabilities:
AdaMoE's routed_expert_weight = 0.5 * E) the upcycled layer's output equals the dense FFN's output at init (to float rounding of the
different MatMul kernels), for both formulations and any top_k. ``upcycle_equivalence_issues``
lists the config settings that break this; ``strict=True`` turns them into an error.

Note: with a zero router all experts tie, so every token picks the same K experts until the
router has trained a step. A capacity factor below E / K would therefore drop tokens at init.

Hugging Face MLPs (``upcycle_hf_mlp``): Llama-style gate_proj/up_proj/down_proj ("swiglu", or
"geglu" with an exact-GELU act_fn), CLIP/SigLIP-style fc1/fc2 and GPT-2 style c_fc/c_proj
(Conv1D) with "gelu" or "gelu_tanh". The activation is identified by evaluating the MLP's own
activation module, not by its class name.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from moe_vla_ros.model.moe import DenseFFN, MoEConfig, MoELayer, StackedExperts

__all__ = [
    "dense_ffn_from_hf_mlp",
    "identify_activation",
    "upcycle_equivalence_issues",
    "upcycle_ffn",
    "upcycle_hf_mlp",
]

_ACTIVATION_PROBES = {
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
}
_GATED_NAME = {"silu": "swiglu", "gelu": "geglu"}


def upcycle_equivalence_issues(cfg: MoEConfig) -> list[str]:
    """Why an upcycled layer with this config would NOT equal the dense FFN at init (empty: it will).

    At init the router is zero, so every expert has probability 1/E and all experts tie. Then
    every token's routed experts are copies of the FFN and the layer computes
    ``(routed_expert_weight * w + num_shared_experts * shared_expert_weight) * ffn(x)``, where
    w is the sum of a token's routed weights:

    * token choice: 1 with ``normalize_top_k``, else K / E (K raw probabilities of 1/E each),
      provided capacity keeps every slot (tied routing sends all N tokens to the same K
      experts, so C = ceil(cf * N * K / E) >= N needs cf * K >= E);
    * expert choice: each expert picks C = min(N, ceil(cf * N * K / E)) tokens; with C = N
      (cf * K >= E, cf = 1 when None) every token gets all E experts at 1/E each, w = 1; with
      C < N the tied experts all pick the same C tokens and the others get nothing.

    Equivalence needs that coefficient to be 1 (exactly, up to float rounding).
    """
    issues = []
    e, k = cfg.num_experts, cfg.top_k
    factor = 1.0 if cfg.capacity_factor is None else float(cfg.capacity_factor)
    if cfg.router == "expert_choice":
        if factor * k < e:
            issues.append(
                f"router='expert_choice' with capacity_factor * top_k = {factor * k:g} < num_experts={e}: "
                "with tied scores every expert picks the same C < N tokens and leaves the others unpicked"
            )
        routed_sum, routed_text = 1.0, "1"
    else:
        if cfg.capacity_factor is not None and factor * k < e:
            issues.append(
                f"capacity_factor={cfg.capacity_factor} < num_experts/top_k = {e / k:g}: tied routing drops tokens"
            )
        if cfg.normalize_top_k:
            routed_sum, routed_text = 1.0, "1"
        else:
            routed_sum, routed_text = k / e, f"{k}/{e}"
    total = cfg.routed_expert_weight * routed_sum + cfg.num_shared_experts * cfg.shared_expert_weight
    if not math.isclose(total, 1.0, rel_tol=1e-9, abs_tol=1e-12):
        raw = "" if routed_sum == 1.0 else f" (normalize_top_k=False: the routed weights sum to {routed_text})"
        issues.append(
            f"routed_expert_weight * {routed_text} + num_shared_experts * shared_expert_weight = {total:g}, "
            f"not 1{raw}"
        )
    return issues


def _copy_into_experts(experts: StackedExperts, dense: DenseFFN) -> None:
    """Copy the dense FFN into every expert of a stack (nn.Linear weight is [out, in])."""
    experts.w_in.copy_(dense.fc_in.weight.t().unsqueeze(0).expand_as(experts.w_in))  # [E, D, H|2H]
    experts.w_out.copy_(dense.fc_out.weight.t().unsqueeze(0).expand_as(experts.w_out))  # [E, H, D]
    if experts.b_in is not None and experts.b_out is not None:
        experts.b_in.zero_()
        experts.b_out.zero_()
        if dense.fc_in.bias is not None:
            experts.b_in.copy_(dense.fc_in.bias.unsqueeze(0).expand_as(experts.b_in))
        if dense.fc_out.bias is not None:
            experts.b_out.copy_(dense.fc_out.bias.unsqueeze(0).expand_as(experts.b_out))


def upcycle_ffn(
    dense: DenseFFN,
    cfg: MoEConfig,
    noise_std: float = 0.0,
    seed: int | None = None,
    strict: bool = False,
) -> MoELayer:
    """Build an MoELayer whose experts are copies of ``dense`` (see the module docstring).

    Args:
        dense: the trained dense FFN; its d_model, d_hidden and activation must match ``cfg``.
        cfg: the MoE layer to build.
        noise_std: standard deviation of Gaussian noise added (absolute, in weight units) to
            every routed expert's w_in and w_out, independently per expert; biases and shared
            experts are copied exactly. 0 keeps exact copies.
        seed: seeds the noise generator (reproducible upcycling); None uses torch's global RNG.
        strict: raise ValueError if the config cannot reproduce the dense output at init.
    """
    if (dense.d_model, dense.d_hidden) != (cfg.d_model, cfg.d_hidden):
        raise ValueError(
            f"dense FFN has d_model={dense.d_model}, d_hidden={dense.d_hidden}; "
            f"cfg has d_model={cfg.d_model}, d_hidden={cfg.d_hidden}"
        )
    if dense.activation != cfg.activation:
        raise ValueError(f"dense FFN activation {dense.activation!r} != cfg.activation {cfg.activation!r}")
    has_bias = dense.fc_in.bias is not None or dense.fc_out.bias is not None
    if has_bias and not cfg.expert_bias:
        raise ValueError("dense FFN has biases but cfg.expert_bias=False cannot hold them")
    if not (noise_std >= 0.0):
        raise ValueError(f"noise_std must be >= 0, got {noise_std!r}")
    issues = upcycle_equivalence_issues(cfg)
    if strict and issues:
        raise ValueError("upcycled layer would not equal the dense FFN at init: " + "; ".join(issues))

    layer = MoELayer(cfg).to(device=dense.fc_in.weight.device, dtype=dense.fc_in.weight.dtype)
    with torch.no_grad():
        _copy_into_experts(layer.experts, dense)
        if layer.shared_experts is not None:
            _copy_into_experts(layer.shared_experts, dense)
        if noise_std > 0.0:
            generator = torch.Generator(device=layer.experts.w_in.device)
            if seed is None:
                generator.seed()
            else:
                generator.manual_seed(seed)
            for weight in (layer.experts.w_in, layer.experts.w_out):
                noise = torch.randn(weight.shape, generator=generator, device=weight.device, dtype=weight.dtype)
                weight.add_(noise_std * noise)
        layer.router.weight.zero_()
        if layer.scale_adapter is not None:
            layer.scale_adapter.weight.zero_()
            layer.scale_adapter.bias.zero_()
    return layer


def identify_activation(act: nn.Module) -> str:
    """Name ("gelu", "gelu_tanh" or "silu") of an activation module, found by evaluating it."""
    probe = torch.linspace(-6.0, 6.0, 241)
    with torch.no_grad():
        observed = act(probe)
    for name, reference in _ACTIVATION_PROBES.items():
        if torch.allclose(observed, reference(probe), atol=1e-6, rtol=1e-5):
            return name
    raise ValueError(f"unsupported activation {type(act).__name__}: expected exact GELU, tanh GELU or SiLU")


def _find_activation(mlp: nn.Module) -> nn.Module:
    for attr in ("act_fn", "activation_fn", "act"):
        act = getattr(mlp, attr, None)
        if isinstance(act, nn.Module):
            return act
    raise TypeError(f"{type(mlp).__name__} has no activation module (act_fn, activation_fn or act)")


def _as_linear_weights(proj: nn.Module) -> tuple[Tensor, Tensor | None]:
    """(weight [out, in], bias [out] or None) of an nn.Linear or a transformers Conv1D."""
    if isinstance(proj, nn.Linear):
        return proj.weight, proj.bias
    if type(proj).__name__ == "Conv1D":  # transformers GPT-2: weight [in, out]
        return proj.weight.t(), proj.bias
    raise TypeError(f"unsupported projection {type(proj).__name__}: expected nn.Linear or Conv1D")


def dense_ffn_from_hf_mlp(mlp: nn.Module) -> DenseFFN:
    """Copy a transformers MLP into a DenseFFN with the same function (and dtype/device)."""
    act_name = identify_activation(_find_activation(mlp))
    if all(hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj")):
        if act_name not in _GATED_NAME:
            raise ValueError(f"gated MLP with activation {act_name!r}: only SiLU (swiglu) or GELU (geglu)")
        activation = _GATED_NAME[act_name]
        (w_gate, b_gate), (w_up, b_up) = _as_linear_weights(mlp.gate_proj), _as_linear_weights(mlp.up_proj)
        w_in = torch.cat([w_gate, w_up], dim=0)  # [2H, D] = [gate | up]
        b_in = None
        if b_gate is not None or b_up is not None:
            zeros = torch.zeros(w_gate.shape[0], dtype=w_gate.dtype, device=w_gate.device)  # [H]
            b_in = torch.cat([zeros if b_gate is None else b_gate, zeros if b_up is None else b_up])  # [2H]
        w_out, b_out = _as_linear_weights(mlp.down_proj)
    elif hasattr(mlp, "fc1") and hasattr(mlp, "fc2"):
        activation = act_name
        (w_in, b_in), (w_out, b_out) = _as_linear_weights(mlp.fc1), _as_linear_weights(mlp.fc2)
    elif hasattr(mlp, "c_fc") and hasattr(mlp, "c_proj"):
        activation = act_name
        (w_in, b_in), (w_out, b_out) = _as_linear_weights(mlp.c_fc), _as_linear_weights(mlp.c_proj)
    else:
        raise TypeError(
            f"unsupported MLP {type(mlp).__name__}: expected gate_proj/up_proj/down_proj, fc1/fc2 or c_fc/c_proj"
        )
    if activation == "silu":
        raise ValueError("ungated SiLU MLPs are not supported (use a gated gate/up/down MLP)")
    d_hidden, d_model = w_out.shape[1], w_out.shape[0]
    has_bias = b_in is not None or b_out is not None
    dense = DenseFFN(d_model, d_hidden, activation, bias=has_bias).to(device=w_in.device, dtype=w_in.dtype)
    with torch.no_grad():
        dense.fc_in.weight.copy_(w_in)
        dense.fc_out.weight.copy_(w_out)
        if has_bias:
            dense.fc_in.bias.copy_(b_in if b_in is not None else torch.zeros_like(dense.fc_in.bias))
            dense.fc_out.bias.copy_(b_out if b_out is not None else torch.zeros_like(dense.fc_out.bias))
    return dense


def upcycle_hf_mlp(
    mlp: nn.Module,
    cfg: MoEConfig,
    noise_std: float = 0.0,
    seed: int | None = None,
    strict: bool = False,
) -> MoELayer:
    """Upcycle a transformers MLP (LlamaMLP, CLIPMLP, GPT2MLP, ...): dense_ffn_from_hf_mlp + upcycle_ffn."""
    return upcycle_ffn(dense_ffn_from_hf_mlp(mlp), cfg, noise_std=noise_std, seed=seed, strict=strict)
