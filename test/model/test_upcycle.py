"""Upcycling a dense FFN (ours or a transformers MLP) into an MoE layer that starts out equal to it."""

import pytest
import torch
from torch import nn
from transformers import CLIPVisionConfig, GPT2Config, LlamaConfig
from transformers.models.clip.modeling_clip import CLIPMLP
from transformers.models.gpt2.modeling_gpt2 import GPT2MLP
from transformers.models.llama.modeling_llama import LlamaMLP

from moe_vla_ros.model.config import adamoe_config
from moe_vla_ros.model.moe import DenseFFN, MoEConfig
from moe_vla_ros.model.upcycle import (
    dense_ffn_from_hf_mlp,
    identify_activation,
    upcycle_equivalence_issues,
    upcycle_ffn,
    upcycle_hf_mlp,
)

D, H = 16, 24


def dense_ffn(activation: str, bias: bool = True) -> DenseFFN:
    torch.manual_seed(0)
    return DenseFFN(D, H, activation, bias=bias)


def assert_same_output(layer, reference: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        expected = reference(x)
        for formulation in ("sparse", "dense"):
            torch.testing.assert_close(layer(x, formulation=formulation).output, expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("formulation", ["sparse", "dense"])
@pytest.mark.parametrize("top_k", [1, 2])
@pytest.mark.parametrize("activation", ["gelu", "swiglu"])
def test_upcycled_layer_equals_dense_ffn_at_init(formulation, top_k, activation):
    dense = dense_ffn(activation)
    # top-1 uses the raw probability (1/4 at init; renormalised top-1 is refused), scaled back by 4.
    cfg = MoEConfig(D, H, num_experts=4, top_k=top_k, activation=activation, formulation=formulation,
                    normalize_top_k=top_k > 1, routed_expert_weight=1.0 if top_k > 1 else 4.0)
    layer = upcycle_ffn(dense, cfg, strict=True)
    x = torch.randn(2, 7, D)
    with torch.no_grad():
        torch.testing.assert_close(layer(x).output, dense(x), atol=1e-6, rtol=1e-6)


def test_adamoe_upcycle_with_shared_expert_and_scale_adapter_equals_dense():
    dense = dense_ffn("geglu")
    cfg = MoEConfig(D, H, num_experts=4, top_k=1, num_shared_experts=1, shared_expert_weight=0.5,
                    routed_expert_weight=2.0, normalize_top_k=False, scale_adapter=True, activation="geglu")
    layer = upcycle_ffn(dense, cfg, strict=True)
    assert torch.count_nonzero(layer.router.weight) == 0
    assert torch.count_nonzero(layer.scale_adapter.weight) == 0 and torch.count_nonzero(layer.scale_adapter.bias) == 0
    assert_same_output(layer, dense, torch.randn(2, 5, D))


def test_two_shared_experts_need_weights_that_sum_to_one():
    dense = dense_ffn("gelu")
    cfg = MoEConfig(D, H, top_k=2, num_shared_experts=2, shared_expert_weight=0.25, routed_expert_weight=0.5)
    assert upcycle_equivalence_issues(cfg) == []
    assert_same_output(upcycle_ffn(dense, cfg, strict=True), dense, torch.randn(1, 6, D))
    bad = MoEConfig(D, H, top_k=2, num_shared_experts=2, shared_expert_weight=0.5)
    with pytest.raises(ValueError, match="= 2, not 1"):
        upcycle_ffn(dense, bad, strict=True)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (dict(normalize_top_k=False, top_k=2), "the routed weights sum to 2/4"),
        (dict(router="expert_choice"), "leaves the others unpicked"),
        (dict(router="expert_choice", top_k=2, capacity_factor=1.5), "capacity_factor * top_k = 3 < num_experts=4"),
        (dict(capacity_factor=1.25, top_k=2), "tied routing drops tokens"),
        (dict(num_shared_experts=1), "= 2, not 1"),
    ],
)
def test_equivalence_issues_name_the_setting(overrides, fragment):
    issues = upcycle_equivalence_issues(MoEConfig(D, H, num_experts=4, **overrides))
    assert any(fragment in issue for issue in issues), issues


def test_non_strict_upcycle_builds_layers_that_differ_from_dense():
    dense = dense_ffn("gelu")
    layer = upcycle_ffn(dense, MoEConfig(D, H, num_experts=4, top_k=2, normalize_top_k=False))
    with torch.no_grad():
        x = torch.randn(1, 4, D)
        torch.testing.assert_close(layer(x).output, 0.5 * dense(x), atol=1e-6, rtol=1e-6)  # 2/4 of it


def test_noise_makes_experts_distinct_and_is_reproducible():
    dense = dense_ffn("gelu")
    cfg = MoEConfig(D, H, num_experts=3, top_k=2, num_shared_experts=1, shared_expert_weight=0.5,
                    routed_expert_weight=0.5)
    a = upcycle_ffn(dense, cfg, noise_std=1e-2, seed=7)
    b = upcycle_ffn(dense, cfg, noise_std=1e-2, seed=7)
    c = upcycle_ffn(dense, cfg, noise_std=1e-2, seed=8)
    assert torch.equal(a.experts.w_in, b.experts.w_in)
    assert not torch.equal(a.experts.w_in, c.experts.w_in)
    assert not torch.equal(a.experts.w_in[0], a.experts.w_in[1])
    deviation = a.experts.w_in - dense.fc_in.weight.t()  # [E, D, H]
    assert 0.5e-2 < deviation.std().item() < 2e-2
    torch.testing.assert_close(a.shared_experts.w_in[0], dense.fc_in.weight.t(), atol=0, rtol=0)
    torch.testing.assert_close(a.experts.b_in, dense.fc_in.bias.expand(3, -1), atol=0, rtol=0)


@pytest.mark.parametrize(
    ("cfg", "kwargs", "message"),
    [
        (MoEConfig(D, 2 * H), {}, "d_hidden=24; cfg has d_model=16, d_hidden=48"),
        (MoEConfig(D, H, activation="geglu"), {}, "activation 'gelu' != cfg.activation 'geglu'"),
        (MoEConfig(D, H, expert_bias=False), {}, "expert_bias=False"),
        (MoEConfig(D, H), {"noise_std": -1.0}, "noise_std must be >= 0, got -1.0"),
    ],
)
def test_upcycle_rejects_mismatches(cfg, kwargs, message):
    with pytest.raises(ValueError, match=message):
        upcycle_ffn(dense_ffn("gelu"), cfg, **kwargs)


def test_dense_without_bias_upcycles_into_zero_biases():
    dense = dense_ffn("swiglu", bias=False)
    layer = upcycle_ffn(dense, MoEConfig(D, H, activation="swiglu"), strict=True)
    assert torch.count_nonzero(layer.experts.b_in) == 0 and torch.count_nonzero(layer.experts.b_out) == 0
    assert_same_output(layer, dense, torch.randn(1, 3, D))


# ---------------------------------------------------------------- transformers MLPs


@pytest.mark.parametrize("mlp_bias", [False, True])
def test_upcycle_llama_mlp_into_swiglu_experts(mlp_bias):
    torch.manual_seed(0)
    mlp = LlamaMLP(LlamaConfig(hidden_size=D, intermediate_size=H, num_attention_heads=2, hidden_act="silu", mlp_bias=mlp_bias)).eval()
    cfg = MoEConfig(D, H, num_experts=4, top_k=2, activation="swiglu", expert_bias=mlp_bias)
    layer = upcycle_hf_mlp(mlp, cfg, strict=True)
    assert (layer.experts.b_in is not None) == mlp_bias
    assert_same_output(layer, mlp, torch.randn(2, 5, D))


def test_upcycle_clip_style_fc1_fc2_mlp_into_gelu_experts():
    torch.manual_seed(0)
    mlp = CLIPMLP(CLIPVisionConfig(hidden_size=D, intermediate_size=H, num_attention_heads=2, hidden_act="gelu")).eval()
    layer = upcycle_hf_mlp(mlp, MoEConfig(D, H, num_experts=4, top_k=2, activation="gelu"))
    assert_same_output(layer, mlp, torch.randn(2, 5, D))


def test_upcycle_gpt2_conv1d_mlp_into_tanh_gelu_experts():
    torch.manual_seed(0)
    mlp = GPT2MLP(H, GPT2Config(n_embd=D, n_head=2, activation_function="gelu_new")).eval()
    for param in mlp.parameters():  # GPT-2 initialises biases to zero: make them matter
        nn.init.normal_(param, std=0.2)
    dense = dense_ffn_from_hf_mlp(mlp)
    assert dense.activation == "gelu_tanh"
    assert_same_output(upcycle_ffn(dense, MoEConfig(D, H, activation="gelu_tanh")), mlp, torch.randn(1, 4, D))


def test_activation_is_identified_by_behaviour():
    assert identify_activation(nn.GELU()) == "gelu"
    assert identify_activation(nn.GELU(approximate="tanh")) == "gelu_tanh"
    assert identify_activation(nn.SiLU()) == "silu"
    with pytest.raises(ValueError, match="unsupported activation ReLU"):
        identify_activation(nn.ReLU())


def test_unsupported_hf_mlps_are_rejected():
    quick = CLIPMLP(CLIPVisionConfig(hidden_size=D, intermediate_size=H, num_attention_heads=2, hidden_act="quick_gelu"))
    with pytest.raises(ValueError, match="unsupported activation QuickGELUActivation"):
        dense_ffn_from_hf_mlp(quick)
    odd = nn.Module()
    odd.act_fn = nn.GELU()
    with pytest.raises(TypeError, match="unsupported MLP Module"):
        dense_ffn_from_hf_mlp(odd)
    mlp = LlamaMLP(LlamaConfig(hidden_size=D, intermediate_size=H, num_attention_heads=2, hidden_act="silu"))
    with pytest.raises(ValueError, match="activation 'swiglu' != cfg.activation 'gelu'"):
        upcycle_hf_mlp(mlp, MoEConfig(D, H, expert_bias=False))


CONFIGS_THAT_UPCYCLE_EXACTLY = {
    # The shipped AdaMoE action-head FFN: raw top-1 probability (1/4 at init) * routed weight 2 + 0.5 shared.
    "shipped_adamoe": lambda: adamoe_config(D, H),
    # Expert choice with C = N (capacity_factor * top_k >= num_experts): every expert takes every token.
    "expert_choice_full_capacity": lambda: MoEConfig(D, H, num_experts=4, top_k=2, router="expert_choice",
                                                     capacity_factor=2.0),
    "expert_choice_top_k_equals_experts": lambda: MoEConfig(D, H, num_experts=4, top_k=4, router="expert_choice"),
    "raw_probabilities_scaled": lambda: MoEConfig(D, H, num_experts=4, top_k=2, normalize_top_k=False,
                                                  routed_expert_weight=2.0),
}


@pytest.mark.parametrize("make_cfg", CONFIGS_THAT_UPCYCLE_EXACTLY.values(), ids=CONFIGS_THAT_UPCYCLE_EXACTLY.keys())
def test_no_false_alarm_when_the_upcycled_layer_equals_the_dense_ffn(make_cfg):
    cfg = make_cfg()
    assert upcycle_equivalence_issues(cfg) == []
    dense = dense_ffn(cfg.activation)
    layer = upcycle_ffn(dense, cfg, strict=True)
    assert_same_output(layer, dense, torch.randn(2, 6, D))


def test_every_reported_issue_is_a_real_difference():
    """Configs the diagnostic flags really differ from the dense FFN at init (no false alarm either way)."""
    flagged = [
        MoEConfig(D, H, num_experts=4, top_k=2, normalize_top_k=False),
        MoEConfig(D, H, num_experts=4, top_k=1, router="expert_choice"),
        MoEConfig(D, H, num_experts=4, top_k=2, num_shared_experts=1),
        MoEConfig(D, H, num_experts=4, top_k=1, num_shared_experts=1, shared_expert_weight=0.5,
                  routed_expert_weight=0.5, normalize_top_k=False),
    ]
    x = torch.randn(2, 6, D)
    for cfg in flagged:
        assert upcycle_equivalence_issues(cfg), cfg
        dense = dense_ffn(cfg.activation)
        layer = upcycle_ffn(dense, cfg)
        with torch.no_grad():
            assert (layer(x).output - dense(x)).abs().max() > 1e-3, cfg


def test_top1_with_renormalisation_is_refused_because_the_router_gets_no_gradient():
    with pytest.raises(ValueError, match="top_k=1 with normalize_top_k=True.*no gradient"):
        MoEConfig(D, H, num_experts=4, top_k=1)
    MoEConfig(D, H, num_experts=4, top_k=1, router="expert_choice")  # expert choice ignores normalize_top_k
    # Why: the renormalised top-1 weight is p / p = 1 whatever the router says; the raw probability is not.
    torch.manual_seed(0)
    dense = dense_ffn("gelu")
    grads = {}
    for normalize in (True, False):
        cfg = MoEConfig(D, H, num_experts=4, top_k=2 if normalize else 1, normalize_top_k=normalize)
        layer = upcycle_ffn(dense, cfg, noise_std=0.05, seed=0)
        torch.nn.init.normal_(layer.router.weight, std=0.1)
        if normalize:  # the refused setting, computed by hand: top-1 weight renormalised
            logits = layer.router(torch.randn(12, D, generator=torch.Generator().manual_seed(1)))
            top = logits.softmax(-1).max(-1).values
            weight = top / top  # [N]: what normalize_top_k does to a single selected probability
            weight.sum().backward()
            grads["normalized_top1"] = layer.router.weight.grad.abs().sum().item()
        else:
            x = torch.randn(1, 12, D, generator=torch.Generator().manual_seed(1))
            layer(x).output.square().sum().backward()
            grads["raw_top1"] = layer.router.weight.grad.abs().sum().item()
    assert grads["normalized_top1"] < 1e-5 < grads["raw_top1"]
