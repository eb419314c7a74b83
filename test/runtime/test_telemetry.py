"""Routing recovered from router logits (numpy) equals what the torch MoE layer did."""

import numpy as np
import pytest
import torch

from moe_vla_ros.model.moe_routing import MoEConfig, route
from moe_vla_ros.runtime.manifest import MoELayerSpec
from moe_vla_ros.runtime.telemetry import StageTelemetry, dropped_token_slots, layer_usages, routing_agreement, routing_mask


def spec_of(cfg: MoEConfig, num_tokens: int) -> MoELayerSpec:
    return MoELayerSpec("layer", "trunk", 0, cfg.num_experts, cfg.top_k, cfg.router, cfg.capacity_factor, num_tokens)


@pytest.mark.parametrize(
    "router, capacity_factor, top_k",
    [("token_choice", None, 2), ("token_choice", 0.6, 2), ("token_choice", 0.9, 1), ("expert_choice", None, 2),
     ("expert_choice", 0.5, 1)],
)
def test_dropped_slots_and_dispatch_match_torch(router, capacity_factor, top_k):
    cfg = MoEConfig(8, 16, num_experts=4, top_k=top_k, router=router, capacity_factor=capacity_factor,
                    normalize_top_k=top_k > 1)  # renormalised top-1 is refused (no router gradient)
    logits = torch.randn(37, 4, generator=torch.Generator().manual_seed(3)) * 2.0  # [N, E]
    routing = route(logits, cfg)
    spec = spec_of(cfg, 37)
    assert dropped_token_slots(logits.numpy(), spec) == int(routing.dropped_tokens)
    selected, _ = routing_mask(logits.numpy(), spec)
    if router == "expert_choice" or capacity_factor is None:
        np.testing.assert_array_equal(selected, routing.dispatch_mask.numpy())
    else:  # before capacity drops: every top-k choice
        assert (selected >= routing.dispatch_mask.numpy()).all()
        assert int(selected.sum() - routing.dispatch_mask.numpy().sum()) == int(routing.dropped_tokens)


def test_agreement_separates_real_flips_from_near_ties():
    spec = MoELayerSpec("l", "trunk", 0, 3, 1, "token_choice", None, 3)
    reference = np.array([[2.0, 0.0, -1.0], [1.0, 1.00001, 0.0], [0.0, 3.0, 1.0]], dtype=np.float32)
    other = reference.copy()
    other[1] = [1.00002, 1.0, 0.0]  # near-tie flip
    other[2] = [4.0, 3.0, 1.0]  # real flip
    result = routing_agreement(reference, other, spec, tie_margin=1e-4)
    assert result.agreement == pytest.approx(1 / 3)
    assert (result.mismatches, result.near_ties, result.tied) == (1, 1, True)
    assert routing_agreement(reference, reference, spec, 1e-4) == (1.0, 0, 0, True)  # identical, still tied
    clear = reference[[0, 2]]  # no near-tie among the tokens left
    assert routing_agreement(clear, clear, spec, 1e-4) == (1.0, 0, 0, False)


def test_layer_usages_follow_spec_order():
    specs = [MoELayerSpec("head", "action_head", 0, 2, 1, "token_choice", None, 4),
             MoELayerSpec("trunk", "trunk", 0, 2, 1, "token_choice", None, 3)]
    telemetry = {
        "trunk": StageTelemetry(np.zeros((1, 3, 2), np.float32), np.array([[0.25, 0.75]], np.float32), np.array([0.5])),
        "action_head": StageTelemetry(np.ones((1, 4, 2), np.float32), np.array([[1.0, 0.0]], np.float32), np.array([0.1])),
    }
    usage = layer_usages(specs, telemetry)
    assert [u.layer_name for u in usage] == ["head", "trunk"]
    assert usage[0].num_tokens == 4 and usage[1].num_tokens == 3
    np.testing.assert_allclose(usage[1].expert_load, [0.25, 0.75])
    assert usage[0].router_entropy == pytest.approx(0.1) and usage[0].dropped_tokens == 0
