"""Tests of moe_vla_ros/model/action_head.py: shapes, reasoning/state conditioning, telemetry."""

import dataclasses

import torch

from moe_vla_ros.contract import NormalizationStats, PolicyContract
from moe_vla_ros.export.examples import example_batch
from moe_vla_ros.model.action_head import ActionHead
from moe_vla_ros.model.config import ModelConfig, tiny_contract

torch.set_num_threads(1)


def inputs(cfg, batch=3):
    b = example_batch(cfg, batch_size=batch)
    trunk = torch.randn(batch, cfg.num_trunk_tokens, cfg.d_model, generator=torch.Generator().manual_seed(2))
    ids = torch.randint(4, cfg.vocab_size, (batch, cfg.contract.max_reasoning_tokens), generator=torch.Generator())
    return trunk, b["state"], ids, torch.ones_like(ids)


def test_shapes_and_moe_telemetry():
    torch.manual_seed(0)
    cfg = ModelConfig.tiny()
    head = ActionHead(cfg).eval()
    out = head(*inputs(cfg))
    H, J, E = cfg.contract.chunk_length, cfg.contract.sensors.num_joints, cfg.action_head.moe.num_experts
    assert out.actions.shape == (3, H, J)
    assert out.router_logits.shape == (1, 3 * H, E) and out.expert_load.shape == (1, E)
    assert torch.allclose(out.expert_load.sum(-1), torch.ones(1)) and out.aux_loss.ndim == 0


def test_actions_depend_on_reasoning_tokens_and_their_mask():
    torch.manual_seed(0)
    cfg = ModelConfig.tiny()
    head = ActionHead(cfg).eval()
    trunk, state, ids, mask = inputs(cfg)
    base = head(trunk, state, ids, mask).actions
    other_ids = (ids + 1).clamp(max=cfg.vocab_size - 1)
    assert not torch.allclose(head(trunk, state, other_ids, mask).actions, base)
    no_reasoning = head(trunk, state, ids, torch.zeros_like(mask)).actions
    assert not torch.allclose(no_reasoning, base)
    # With an all-zero mask the token values are ignored.
    assert torch.allclose(head(trunk, state, other_ids, torch.zeros_like(mask)).actions, no_reasoning, atol=1e-6)


def test_residual_maps_state_into_action_units():
    torch.manual_seed(0)
    base = tiny_contract()
    norm = NormalizationStats((0.0, 1.0, 0.0), (1.0, 2.0, 1.0), (0.5, 0.0, 0.0), (0.5, 1.0, 1.0))
    cfg = ModelConfig.tiny(contract=dataclasses.replace(base, normalization=norm))
    head = ActionHead(cfg).eval()
    with torch.no_grad():
        head.out.weight.zero_()  # untrained head: holds the current pose
    trunk, _, ids, mask = inputs(cfg, batch=1)
    state_norm = torch.tensor([[1.0, -0.5, 0.0]])  # radians: [1.0, 0.0, 0.0]
    actions = head(trunk, state_norm, ids, mask).actions  # [1, H, J]
    radians = actions * torch.tensor(norm.action_std) + torch.tensor(norm.action_mean)
    assert torch.allclose(radians, torch.tensor([1.0, 0.0, 0.0]).expand_as(radians), atol=1e-6)
    assert isinstance(cfg.contract, PolicyContract)
