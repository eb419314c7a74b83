"""Tests of moe_vla_ros/model/blocks.py: attention masking, FFN slot, telemetry stacking."""

import pytest
import torch

from moe_vla_ros.model.blocks import Attention, TransformerBlock, collect_telemetry, make_ffn
from moe_vla_ros.model.moe import DenseFFN, MoEConfig, MoELayer

torch.set_num_threads(1)


def test_masked_keys_do_not_influence_the_output():
    torch.manual_seed(0)
    attn = Attention(16, num_heads=2).eval()
    x = torch.randn(2, 5, 16)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    changed = x.clone()
    changed[0, 3:] = 100.0  # only masked keys of row 0 change
    a, b = attn(x, key_mask=mask), attn(changed, key_mask=mask)
    assert torch.allclose(a[0, :3], b[0, :3], atol=1e-5) and torch.allclose(a[1], b[1])


def test_causal_attention_ignores_the_future_and_takes_no_mask():
    torch.manual_seed(0)
    attn = Attention(16, num_heads=4, causal=True).eval()
    x = torch.randn(1, 6, 16)
    changed = x.clone()
    changed[:, 4:] = -3.0
    assert torch.allclose(attn(x)[:, :4], attn(changed)[:, :4], atol=1e-6)
    with pytest.raises(ValueError, match="causal"):
        attn(x, key_mask=torch.ones(1, 6))


def test_block_returns_moe_output_only_for_moe_ffn():
    torch.manual_seed(0)
    dense = TransformerBlock(16, 2, make_ffn(16, 32, "gelu", None), cross_attention=True)
    moe_cfg = MoEConfig(16, 32, num_experts=4, top_k=2)
    sparse = TransformerBlock(16, 2, make_ffn(16, 32, "gelu", moe_cfg), cross_attention=True)
    x, ctx = torch.randn(2, 3, 16), torch.randn(2, 7, 16)
    assert isinstance(dense.ffn, DenseFFN) and dense(x, context=ctx).moe is None
    out = sparse(x, context=ctx)
    assert isinstance(sparse.ffn, MoELayer) and sparse.is_moe
    assert out.hidden.shape == (2, 3, 16) and out.moe.router_logits.shape == (6, 4)
    with pytest.raises(ValueError, match="context"):
        sparse(x)


def test_make_ffn_rejects_mismatched_moe_config():
    with pytest.raises(ValueError, match="d_hidden=64"):
        make_ffn(16, 32, "gelu", MoEConfig(16, 64))


def test_collect_telemetry_stacks_layers_and_weights_losses():
    torch.manual_seed(0)
    cfg = MoEConfig(8, 16, num_experts=4, top_k=1, normalize_top_k=False, aux_loss_coef=0.5, z_loss_coef=0.0)
    layers = [MoELayer(cfg), MoELayer(cfg)]
    x = torch.randn(2, 3, 8)
    outs = [layer(x) for layer in layers]
    tel = collect_telemetry(outs, [cfg, cfg], x)
    assert tel.router_logits.shape == (2, 6, 4) and tel.expert_load.shape == (2, 4) and tel.router_entropy.shape == (2,)
    assert torch.isclose(tel.aux_loss, 0.5 * (outs[0].aux_loss + outs[1].aux_loss))
    empty = collect_telemetry([], [], x)
    assert empty.expert_load.shape == (0, 0) and float(empty.aux_loss) == 0.0
