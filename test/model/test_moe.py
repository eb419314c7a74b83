"""MoE routing math against hand-computed references, and the MoE layer's two formulations."""

import math

import pytest
import torch

from moe_vla_ros.model.moe import DenseFFN, MoEConfig, MoELayer, StackedExperts
from moe_vla_ros.model.moe_routing import (
    expert_capacity,
    expert_choice_routing,
    route,
    router_statistics,
    token_choice_routing,
)


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def tensor(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def reference_output(layer: MoELayer, x: torch.Tensor) -> torch.Tensor:
    """Per-token loop: sum over dispatched experts of weight * expert(x) (+ shared experts)."""
    cfg = layer.cfg
    tokens = x.reshape(-1, cfg.d_model)
    scale = layer.scale_adapter(tokens) if layer.scale_adapter is not None else None
    routing = route(layer.router(tokens), cfg, scale)
    rows = []
    for n in range(tokens.shape[0]):
        routed = torch.zeros(cfg.d_model)
        for e in range(cfg.num_experts):
            if routing.dispatch_mask[n, e]:
                routed = routed + routing.combine_weights[n, e] * layer.experts.forward_one(e, tokens[n : n + 1])[0]
        row = cfg.routed_expert_weight * routed
        for s in range(cfg.num_shared_experts):
            row = row + cfg.shared_expert_weight * layer.shared_experts.forward_one(s, tokens[n : n + 1])[0]
        rows.append(row)
    return torch.stack(rows).reshape(x.shape)


# ---------------------------------------------------------------- token choice


def test_top2_selection_and_renormalised_weights():
    cfg = MoEConfig(d_model=4, d_hidden=4, num_experts=4, top_k=2)
    routing = token_choice_routing(tensor([[2, 1, 0, -1], [0, 0, 3, 1]]), cfg)
    assert routing.topk_indices.tolist() == [[0, 1], [2, 3]]
    expected = tensor([[sigmoid(1), sigmoid(-1), 0, 0], [0, 0, sigmoid(2), sigmoid(-2)]])
    torch.testing.assert_close(routing.combine_weights, expected)
    assert routing.dispatch_mask.tolist() == [[True, True, False, False], [False, False, True, True]]
    torch.testing.assert_close(routing.expert_load, tensor([0.25, 0.25, 0.25, 0.25]))
    assert routing.dropped_tokens.item() == 0


def test_top2_without_renormalisation_uses_router_probabilities():
    cfg = MoEConfig(d_model=4, d_hidden=4, num_experts=4, top_k=2, normalize_top_k=False)
    routing = token_choice_routing(tensor([[2, 1, 0, -1]]), cfg)
    z = math.exp(2) + math.exp(1) + 1 + math.exp(-1)
    torch.testing.assert_close(routing.combine_weights, tensor([[math.exp(2) / z, math.exp(1) / z, 0, 0]]))


def test_top1_selection_gives_weight_one_and_load_fractions():
    cfg = MoEConfig(d_model=4, d_hidden=4, num_experts=4, top_k=1, normalize_top_k=False)
    routing = token_choice_routing(tensor([[2, 1, 0, -1], [0, 0, 3, 1]]), cfg)
    assert routing.topk_indices.tolist() == [[0], [2]]
    probs = tensor([[2, 1, 0, -1], [0, 0, 3, 1]]).softmax(-1)
    torch.testing.assert_close(routing.combine_weights, probs * tensor([[1, 0, 0, 0], [0, 0, 1, 0]]))
    assert routing.expert_load.tolist() == [0.5, 0.0, 0.5, 0.0]


def test_capacity_drops_later_tokens_in_batch_order():
    cfg = MoEConfig(d_model=2, d_hidden=4, num_experts=2, top_k=1, capacity_factor=1.0, normalize_top_k=False)
    routing = token_choice_routing(tensor([[1, 0], [1, 0], [1, 0], [0, 1]]), cfg)  # C = 2
    assert routing.dispatch_mask.tolist() == [[True, False], [True, False], [False, False], [False, True]]
    assert (routing.combine_weights > 0).tolist() == [[True, False], [True, False], [False, False], [False, True]]
    assert routing.dropped_tokens.item() == 1
    assert routing.expert_load.tolist() == [0.75, 0.25]  # router assignments, before drops


def test_capacity_drops_second_choices_before_first_choices():
    # C = ceil(0.75 * 4 * 2 / 3) = 2. Tokens 0,1 prefer e0 then e1; tokens 2,3 prefer e1 then e0.
    # Choice-major priority: each expert fills up with first choices, every second choice drops.
    cfg = MoEConfig(d_model=3, d_hidden=4, num_experts=3, top_k=2, capacity_factor=0.75)
    routing = token_choice_routing(tensor([[3, 2, 0], [3, 2, 0], [2, 3, 0], [2, 3, 0]]), cfg)
    assert routing.topk_indices.tolist() == [[0, 1], [0, 1], [1, 0], [1, 0]]
    assert routing.dispatch_mask.tolist() == [[True, False, False]] * 2 + [[False, True, False]] * 2
    w = sigmoid(1)  # the kept slot keeps its renormalised weight; the dropped one is not redistributed
    torch.testing.assert_close(routing.combine_weights, tensor([[w, 0, 0], [w, 0, 0], [0, w, 0], [0, w, 0]]))
    assert routing.dropped_tokens.item() == 4


@pytest.mark.parametrize(
    ("router", "capacity_factor", "num_tokens", "top_k", "num_experts", "expected"),
    [
        ("token_choice", None, 10, 2, 4, 5),
        ("token_choice", 1.25, 10, 2, 4, 7),  # ceil(6.25)
        ("expert_choice", 4.0, 3, 2, 2, 3),  # ceil(12) clamped to N
    ],
)
def test_expert_capacity(router, capacity_factor, num_tokens, top_k, num_experts, expected):
    cfg = MoEConfig(4, 4, num_experts=num_experts, top_k=top_k, router=router, capacity_factor=capacity_factor)
    assert expert_capacity(cfg, num_tokens) == expected


# ---------------------------------------------------------------- expert choice


def test_expert_choice_picks_top_c_tokens_per_expert():
    # logits = log(p) so softmax gives p back. C = ceil(1.5 * 4 * 1 / 2) = 3.
    probs = tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    cfg = MoEConfig(d_model=2, d_hidden=4, num_experts=2, top_k=1, router="expert_choice", capacity_factor=1.5)
    routing = expert_choice_routing(probs.log(), cfg)
    # e0 picks tokens 0, 1, 3; e1 picks tokens 2, 3, 1.
    assert routing.dispatch_mask.tolist() == [[True, False], [True, True], [False, True], [True, True]]
    torch.testing.assert_close(routing.combine_weights, tensor([[0.9, 0], [0.8, 0.2], [0, 0.7], [0.6, 0.4]]))
    assert routing.topk_indices.tolist() == [[0], [0], [1], [0]]
    assert routing.expert_load.tolist() == [0.5, 0.5]
    assert routing.dropped_tokens.item() == 0


def test_expert_choice_pads_indices_and_counts_unpicked_tokens():
    probs = tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    cfg = MoEConfig(2, 4, num_experts=2, top_k=2, router="expert_choice", capacity_factor=0.25)  # C = 1
    routing = expert_choice_routing(probs.log(), cfg)
    assert routing.topk_indices.tolist() == [[0, -1], [-1, -1], [1, -1], [-1, -1]]
    assert routing.dropped_tokens.item() == 2


# ---------------------------------------------------------------- AdaMoE, losses, telemetry


def test_scale_adapter_adds_to_selected_weights_without_changing_selection():
    logits = tensor([[2, 1, 0, -1]])
    scale = tensor([[0.1, -0.2, 0.3, 0.9]])  # e3 has the largest scale but the lowest logit
    top2 = token_choice_routing(logits, MoEConfig(4, 4, num_experts=4, top_k=2, scale_adapter=True), scale)
    assert top2.topk_indices.tolist() == [[0, 1]]
    torch.testing.assert_close(top2.combine_weights, tensor([[sigmoid(1) + 0.1, sigmoid(-1) - 0.2, 0, 0]]))
    top1 = token_choice_routing(logits, MoEConfig(4, 4, num_experts=4, top_k=1, scale_adapter=True, normalize_top_k=False), scale)
    p0 = tensor([2.0, 1, 0, -1]).softmax(-1)[0]
    torch.testing.assert_close(top1.combine_weights, tensor([[p0 + 0.1, 0, 0, 0]]))


def test_balanced_router_statistics_match_closed_form():
    logits = tensor([[math.log(3), 0], [0, math.log(3)]])  # p = [.75, .25] and [.25, .75]
    stats = router_statistics(logits, expert_load=tensor([0.5, 0.5]))
    torch.testing.assert_close(stats.aux_loss, torch.tensor(1.0))  # 2 * (0.5 * 0.5 + 0.5 * 0.5)
    torch.testing.assert_close(stats.z_loss, torch.tensor(math.log(4) ** 2))
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    torch.testing.assert_close(stats.router_entropy, torch.tensor(entropy))


def test_unbalanced_routing_raises_aux_loss():
    logits = tensor([[math.log(3), 0], [math.log(3), 0]])
    routing = token_choice_routing(logits, MoEConfig(2, 4, num_experts=2, top_k=1, normalize_top_k=False))
    assert routing.expert_load.tolist() == [1.0, 0.0]
    stats = router_statistics(logits, routing.expert_load)
    torch.testing.assert_close(stats.aux_loss, torch.tensor(1.5))  # 2 * (1 * 0.75 + 0 * 0.25)


def test_uniform_router_has_maximal_entropy_and_weighted_aux():
    torch.manual_seed(0)
    cfg = MoEConfig(8, 8, num_experts=4, top_k=2, aux_loss_coef=0.5, z_loss_coef=0.25)
    layer = MoELayer(cfg)
    torch.nn.init.zeros_(layer.router.weight)
    out = layer(torch.randn(1, 6, 8))
    torch.testing.assert_close(out.router_entropy, torch.tensor(math.log(4)))
    torch.testing.assert_close(out.z_loss, torch.tensor(math.log(4) ** 2))
    torch.testing.assert_close(out.weighted_aux(cfg), 0.5 * out.aux_loss + 0.25 * out.z_loss)


# ---------------------------------------------------------------- layer


def test_dense_ffn_swiglu_uses_gate_then_up_layout():
    torch.manual_seed(0)
    ffn = DenseFFN(4, 3, activation="swiglu")
    x = torch.randn(2, 4)
    h = x @ ffn.fc_in.weight.t() + ffn.fc_in.bias
    expected = (torch.nn.functional.silu(h[:, :3]) * h[:, 3:]) @ ffn.fc_out.weight.t() + ffn.fc_out.bias
    torch.testing.assert_close(ffn(x), expected)


def test_stacked_experts_all_equals_one_at_a_time():
    torch.manual_seed(0)
    experts = StackedExperts(3, 4, 5, "geglu")
    x = torch.randn(6, 4)
    all_out = experts.forward_all(x)
    for e in range(3):
        torch.testing.assert_close(all_out[e], experts.forward_one(e, x))


def make_layer(**overrides) -> MoELayer:
    torch.manual_seed(0)
    cfg = MoEConfig(**{"d_model": 8, "d_hidden": 12, "num_experts": 4, **overrides})
    layer = MoELayer(cfg)
    torch.nn.init.normal_(layer.router.weight, std=0.5)
    if layer.scale_adapter is not None:
        torch.nn.init.normal_(layer.scale_adapter.weight, std=0.1)
    return layer


OPTIONS = {
    "top1": dict(top_k=1, normalize_top_k=False),
    "top2": dict(top_k=2),
    "top2_raw_probs": dict(top_k=2, normalize_top_k=False),
    "top1_capacity": dict(top_k=1, capacity_factor=1.0, normalize_top_k=False),
    "top2_tight_capacity": dict(top_k=2, capacity_factor=0.5),
    "expert_choice": dict(router="expert_choice"),
    "expert_choice_capacity": dict(router="expert_choice", capacity_factor=0.5, top_k=2),
    "shared_experts": dict(num_shared_experts=2, shared_expert_weight=0.5),
    "adamoe": dict(top_k=1, num_shared_experts=1, shared_expert_weight=0.5, routed_expert_weight=2.0,
                   normalize_top_k=False,
                   scale_adapter=True, activation="geglu"),
    "swiglu_no_bias": dict(activation="swiglu", expert_bias=False),
    "gelu_tanh": dict(activation="gelu_tanh"),
}


@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
def test_formulations_agree_with_each_other_and_a_per_token_reference(options):
    layer = make_layer(**options)
    x = torch.randn(2, 7, 8)
    sparse, dense = layer(x, formulation="sparse"), layer(x, formulation="dense")
    torch.testing.assert_close(sparse.output, dense.output, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(sparse.output, reference_output(layer, x), atol=1e-5, rtol=1e-5)
    for name in ("topk_indices", "expert_load", "dropped_tokens", "aux_loss", "z_loss", "router_entropy"):
        assert torch.equal(getattr(sparse, name), getattr(dense, name)), name
    assert sparse.output.shape == (2, 7, 8)
    assert sparse.router_logits.shape == (14, 4)
    assert sparse.topk_indices.shape == (14, layer.cfg.top_k) and sparse.topk_indices.dtype == torch.int64
    torch.testing.assert_close(sparse.expert_load.sum(), torch.tensor(1.0))


@pytest.mark.parametrize("formulation", ["sparse", "dense"])
def test_gradients_reach_router_experts_shared_and_adapter(formulation):
    layer = make_layer(top_k=2, num_shared_experts=1, scale_adapter=True)
    out = layer(torch.randn(2, 5, 8), formulation=formulation)
    (out.output.square().mean() + out.weighted_aux(layer.cfg)).backward()
    for name in ("router.weight", "experts.w_in", "experts.w_out", "shared_experts.w_in", "scale_adapter.weight"):
        grad = layer.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_sparse_and_dense_gradients_agree():
    grads = {}
    x = torch.randn(2, 5, 8)
    for formulation in ("sparse", "dense"):
        layer = make_layer(top_k=2, capacity_factor=0.75, scale_adapter=True)
        layer(x, formulation=formulation).output.square().sum().backward()
        grads[formulation] = {n: p.grad.clone() for n, p in layer.named_parameters()}
    for name, grad in grads["sparse"].items():
        torch.testing.assert_close(grad, grads["dense"][name], atol=1e-5, rtol=1e-5, msg=name)


@pytest.mark.parametrize("formulation", ["sparse", "dense"])
def test_expert_with_zero_tokens(formulation):
    layer = make_layer(top_k=2)
    with torch.no_grad():
        layer.router.weight[3, 0] = -100.0  # feature 0 is 1 on every token: e3 logit ~ -100
    x = torch.randn(1, 6, 8)
    x[..., 0] = 1.0
    out = layer(x, formulation=formulation)
    assert out.expert_load[3].item() == 0.0 and not (out.topk_indices == 3).any()
    torch.testing.assert_close(out.output, layer(x, formulation="sparse" if formulation == "dense" else "dense").output)
    out.output.sum().backward()
    assert torch.count_nonzero(layer.experts.w_in.grad[3]) == 0
    assert torch.count_nonzero(layer.experts.w_in.grad[:3]) > 0


def test_set_formulation_and_forward_override():
    layer = make_layer()
    layer.set_formulation("dense")
    assert layer.formulation == "dense"
    with pytest.raises(ValueError, match="'bmm'"):
        layer.set_formulation("bmm")
    with pytest.raises(ValueError, match="'loop'"):
        layer(torch.randn(1, 2, 8), formulation="loop")


def test_forward_rejects_wrong_input_shape():
    with pytest.raises(ValueError, match=r"\[B, T, 8\].*\(2, 8\)"):
        make_layer()(torch.randn(2, 8))
    with pytest.raises(ValueError, match=r"\(1, 2, 9\)"):
        make_layer()(torch.randn(1, 2, 9))


def test_scale_adapter_starts_at_zero():
    layer = MoELayer(MoEConfig(8, 8, scale_adapter=True))
    assert torch.count_nonzero(layer.scale_adapter.weight) == 0 and torch.count_nonzero(layer.scale_adapter.bias) == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(d_model=0), "d_model must be a positive integer, got 0"),
        (dict(d_hidden=2.5), "d_hidden must be a positive integer, got 2.5"),
        (dict(num_experts=4, top_k=5), "top_k must be <= num_experts=4, got 5"),
        (dict(top_k=0), "top_k must be a positive integer, got 0"),
        (dict(router="soft"), "router must be one of .* got 'soft'"),
        (dict(activation="relu"), "activation must be one of .* got 'relu'"),
        (dict(formulation="bmm"), "formulation must be one of .* got 'bmm'"),
        (dict(num_shared_experts=-1), "num_shared_experts must be an integer >= 0, got -1"),
        (dict(shared_expert_weight=float("nan")), "shared_expert_weight must be a finite number, got nan"),
        (dict(capacity_factor=0.0), "capacity_factor must be > 0.0, got 0.0"),
        (dict(aux_loss_coef=-0.1), "aux_loss_coef must be >= 0.0, got -0.1"),
        (dict(z_loss_coef="1e-3"), "z_loss_coef must be a finite number, got '1e-3'"),
        (dict(scale_adapter=1), "scale_adapter must be a bool, got 1"),
    ],
)
def test_config_validation_names_the_bad_value(overrides, message):
    with pytest.raises(ValueError, match=message):
        MoEConfig(**{"d_model": 8, "d_hidden": 8, **overrides})


def test_dense_ffn_rejects_unknown_activation():
    with pytest.raises(ValueError, match="'tanh'"):
        DenseFFN(4, 4, activation="tanh")
