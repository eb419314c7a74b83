"""Tests of moe_vla_ros/model/baselines.py: dense baselines of equal active / total parameters."""

import pytest
import torch

from moe_vla_ros.model.baselines import dense_baseline, dense_width, parameter_difference
from moe_vla_ros.model.config import ModelConfig
from moe_vla_ros.model.moe import DenseFFN, MoEConfig
from moe_vla_ros.model.vla import MoEVLA


def _counts(cfg: ModelConfig, use_moe: bool) -> dict[str, int]:
    torch.manual_seed(0)
    return MoEVLA(cfg, use_moe=use_moe).parameter_counts()


def test_widths_are_the_active_and_all_experts():
    trunk = MoEConfig(128, 512, num_experts=8, top_k=2)
    assert (dense_width(trunk, "active"), dense_width(trunk, "total")) == (1024, 4096)
    head = ModelConfig.small().action_head.moe  # AdaMoE: 4 experts top-1 + 1 shared
    assert (dense_width(head, "active"), dense_width(head, "total")) == (512, 1280)
    with pytest.raises(ValueError, match="'half'"):
        dense_width(trunk, "half")
    with pytest.raises(ValueError, match="token-choice"):
        dense_width(MoEConfig(8, 16, router="expert_choice"), "active")


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_active_baseline_matches_active_and_total_baseline_matches_total_parameters(preset):
    """(b) has the MoE's active parameters and (c) its total, up to the router, the scale adapter
    and per-expert output biases (parameter_difference, counted exactly: under 1 %; small: 0.16 % active, 0.14 % total)."""
    cfg = getattr(ModelConfig, preset)()
    moe = _counts(cfg, use_moe=True)
    active = _counts(dense_baseline(cfg, "active"), use_moe=False)
    total = _counts(dense_baseline(cfg, "total"), use_moe=False)
    assert active["active"] == active["total"] and total["active"] == total["total"]  # dense: all active
    assert moe["active"] - active["active"] == parameter_difference(cfg, "active")
    assert moe["total"] - total["total"] == parameter_difference(cfg, "total")
    assert abs(moe["active"] - active["active"]) < 0.01 * moe["active"]
    assert abs(moe["total"] - total["total"]) < 0.01 * moe["total"]
    assert active["total"] < 0.9 * total["total"]  # the two baselines differ: the experts' extra capacity


def test_small_preset_counts():
    """The numbers the comparison reports for the small preset (ViT vision; the bundled recipe's
    EfficientNet-Lite0 adds the same frozen encoder to every arm)."""
    cfg = ModelConfig.small()
    assert _counts(cfg, True) == {"total": 5_076_754, "active": 2_902_546}
    assert _counts(dense_baseline(cfg, "active"), False)["total"] == 2_897_930
    assert _counts(dense_baseline(cfg, "total"), False)["total"] == 5_069_834


def test_baseline_is_a_plain_dense_model_with_wide_ffns_where_the_moe_layers_were():
    cfg = ModelConfig.tiny()
    base = dense_baseline(cfg, "total")
    assert base.trunk.moe_layers == () and base.trunk.moe is None and base.action_head.moe is None
    assert base.trunk.ffn_hidden_at == ((1, 4 * 64),) and base.action_head.ffn_hidden_at == ((0, 5 * 32),)
    assert ModelConfig.from_dict(base.to_dict()) == base
    model = MoEVLA(base)  # use_moe=True: nothing to build as MoE
    assert model.num_moe_layers == 0 and model.upcycle() == 0
    ffns = [b.ffn for b in model.trunk.blocks] + [b.ffn for b in model.action_head.blocks]
    assert all(isinstance(f, DenseFFN) for f in ffns)
    assert [f.d_hidden for f in ffns] == [64, 256, 160]
    assert dense_baseline(base, "active") == base  # no MoE layer left: unchanged


def test_existing_configs_build_the_same_model():
    """ffn_hidden_at left empty changes nothing: same seeded weights as a build without the field."""
    cfg = ModelConfig.tiny()
    torch.manual_seed(3)
    a = MoEVLA(cfg, use_moe=False).state_dict()
    torch.manual_seed(3)
    b = MoEVLA(ModelConfig.from_dict({**cfg.to_dict()}), use_moe=False).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(a[f"trunk.blocks.{i}.ffn.fc_out.weight"].shape[1] == 64 for i in range(2))
