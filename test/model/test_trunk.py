"""Tests of moe_vla_ros/model/trunk.py: token layout, instruction masking, upcycling."""

import torch

from moe_vla_ros.export.examples import example_batch
from moe_vla_ros.model.config import ModelConfig
from moe_vla_ros.model.moe import MoELayer
from moe_vla_ros.model.trunk import Trunk

torch.set_num_threads(1)


def test_output_layout_and_telemetry_shapes():
    torch.manual_seed(0)
    cfg = ModelConfig.tiny()
    trunk = Trunk(cfg).eval()
    batch = example_batch(cfg, batch_size=2)
    vision = torch.randn(2, cfg.num_vision_tokens, cfg.d_model)
    with torch.no_grad():
        out = trunk(vision, batch["instruction_ids"], batch["instruction_mask"], batch["state"])
    S, E = cfg.num_trunk_tokens, cfg.trunk.moe.num_experts
    assert out.tokens.shape == (2, S, cfg.d_model)
    assert out.router_logits.shape == (1, 2 * S, E) and out.expert_load.shape == (1, E)
    assert out.router_entropy.shape == (1,) and out.aux_loss.ndim == 0 and float(out.aux_loss) > 0


def test_padded_instruction_tokens_are_ignored_by_real_tokens():
    torch.manual_seed(0)
    cfg = ModelConfig.tiny()
    trunk = Trunk(cfg).eval()
    batch = example_batch(cfg, batch_size=1)
    batch["instruction_mask"][:] = 0
    batch["instruction_mask"][0, :3] = 1
    vision = torch.randn(1, cfg.num_vision_tokens, cfg.d_model)
    a = trunk(vision, batch["instruction_ids"], batch["instruction_mask"], batch["state"]).tokens
    ids = batch["instruction_ids"].clone()
    ids[0, 3:] = 5  # change only padded positions
    b = trunk(vision, ids, batch["instruction_mask"], batch["state"]).tokens
    nv = cfg.num_vision_tokens
    assert torch.allclose(a[:, : nv + 3], b[:, : nv + 3], atol=1e-5)
    assert torch.allclose(a[:, -1], b[:, -1], atol=1e-5)  # state token


def test_dense_build_then_upcycle_keeps_outputs():
    torch.manual_seed(0)
    cfg = ModelConfig.tiny()
    trunk = Trunk(cfg, use_moe=False).eval()
    batch = example_batch(cfg, batch_size=2)
    vision = torch.randn(2, cfg.num_vision_tokens, cfg.d_model)
    before = trunk(vision, batch["instruction_ids"], batch["instruction_mask"], batch["state"])
    assert trunk.num_moe_layers == 0 and before.expert_load.numel() == 0
    assert trunk.upcycle(noise_std=0.0) == 1 and trunk.upcycle() == 0  # idempotent
    after = trunk(vision, batch["instruction_ids"], batch["instruction_mask"], batch["state"])
    assert isinstance(trunk.blocks[1].ffn, MoELayer)
    assert torch.allclose(before.tokens, after.tokens, atol=1e-5)
