"""Tests of moe_vla_ros/model/vla.py: losses, upcycling equivalence, formulations, export units."""

import pytest
import torch

from moe_vla_ros.export.examples import example_batch
from moe_vla_ros.model.config import ModelConfig
from moe_vla_ros.model.vla import MoEVLA

torch.set_num_threads(1)


def outputs(model, batch):
    with torch.no_grad():
        trunk = model.encode(batch["images"], batch["instruction_ids"], batch["instruction_mask"], batch["state"])
        head = model.action_head(trunk.tokens, batch["state"], batch["reasoning_ids"], batch["reasoning_mask"])
        inputs = torch.cat([torch.ones_like(batch["reasoning_ids"][:, :1]), batch["reasoning_ids"][:, :-1]], 1)
        logits = model.reasoning(trunk.tokens, inputs).logits
    return trunk.tokens, head.actions, logits


def test_compute_loss_trains_every_parameter():
    torch.manual_seed(0)
    model = MoEVLA(ModelConfig.tiny()).train()
    losses = model.compute_loss(example_batch(model.cfg, batch_size=4))
    assert all(torch.isfinite(t) for t in losses)
    assert float(losses.moe_aux) > 0 and 0.0 <= float(losses.reasoning_accuracy) <= 1.0
    losses.total.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad}"


def test_compute_loss_names_missing_keys():
    model = MoEVLA(ModelConfig.tiny())
    batch = example_batch(model.cfg)
    del batch["actions"]
    with pytest.raises(KeyError, match="actions"):
        model.compute_loss(batch)


def test_upcycling_keeps_every_output_equal():
    torch.manual_seed(0)
    model = MoEVLA(ModelConfig.tiny(), use_moe=False).eval()
    batch = example_batch(model.cfg, batch_size=3)
    before = outputs(model, batch)
    assert model.num_moe_layers == 0 and not model.is_fully_moe
    assert model.upcycle(noise_std=0.0) == 2 and model.is_fully_moe  # trunk layer + AdaMoE head layer
    after = outputs(model, batch)
    for a, b in zip(before, after):
        assert torch.allclose(a, b, atol=1e-5), float((a - b).abs().max())


def test_sparse_and_dense_formulations_agree():
    torch.manual_seed(0)
    model = MoEVLA(ModelConfig.tiny()).eval()
    batch = example_batch(model.cfg, batch_size=2)
    sparse = outputs(model, batch)
    model.set_moe_formulation("dense")
    for a, b in zip(sparse, outputs(model, batch)):
        assert torch.allclose(a, b, atol=1e-5)


def test_predict_actions_and_generate_reasoning():
    torch.manual_seed(0)
    model = MoEVLA(ModelConfig.tiny()).eval()
    batch = example_batch(model.cfg, batch_size=2)
    args = (batch["images"], batch["instruction_ids"], batch["instruction_mask"], batch["state"])
    with torch.no_grad():
        bare = model.predict_actions(*args).actions
        trunk = model.encode(*args)
        ids, mask = model.generate_reasoning(trunk.tokens)
        with_reasoning = model.predict_actions(*args, reasoning_ids=ids, reasoning_mask=mask).actions
    R = model.cfg.contract.max_reasoning_tokens
    assert ids.shape == mask.shape == (2, R) and ids.dtype == torch.long
    assert bare.shape == (2, model.cfg.contract.chunk_length, model.cfg.contract.sensors.num_joints)
    assert with_reasoning.shape == bare.shape


def test_parameter_counts():
    model = MoEVLA(ModelConfig.tiny())
    counts = model.parameter_counts()
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    trunk_moe = model.cfg.trunk.moe
    expert = sum(p[0].numel() for p in model.trunk.blocks[1].ffn.experts.parameters())
    head_moe = model.cfg.action_head.moe
    head_expert = sum(p[0].numel() for p in model.action_head.blocks[0].ffn.experts.parameters())
    inactive = expert * (trunk_moe.num_experts - trunk_moe.top_k) + head_expert * (head_moe.num_experts - 1)
    assert counts["active"] == counts["total"] - inactive


def test_export_units_run_in_onnxruntime(tmp_path):
    """Each exported submodule takes/returns tensors only and matches ONNX Runtime (dense MoE)."""
    from onnx_compare import compare_with_onnxruntime

    from moe_vla_ros.export.onnx_check import FORBIDDEN_DYNAMIC_OPS, export_onnx, graph_op_types, ort_session

    torch.manual_seed(0)
    model = MoEVLA(ModelConfig.tiny()).eval()
    model.set_moe_formulation("dense")
    b = example_batch(model.cfg, batch_size=1)
    with torch.no_grad():
        vision = model.vision(b["images"]).tokens
        trunk = model.trunk(vision, b["instruction_ids"], b["instruction_mask"], b["state"]).tokens
    tokens = torch.zeros(1, model.cfg.contract.max_reasoning_tokens, dtype=torch.long)
    units = {
        "vision": (b["images"],),
        "trunk": (vision, b["instruction_ids"], b["instruction_mask"], b["state"]),
        "reasoning": (trunk, tokens),
        "action_head": (trunk, b["state"], b["reasoning_ids"], b["reasoning_mask"]),
    }
    modules = {"vision": model.vision, "trunk": model.trunk, "reasoning": model.reasoning,
               "action_head": model.action_head}
    for name, args in units.items():
        with torch.no_grad():
            result = modules[name](*args)
        assert isinstance(result, tuple) and all(isinstance(t, torch.Tensor) for t in result)
        output_names = list(result._fields)
        path = tmp_path / f"{name}.onnx"
        onnx_model = export_onnx(modules[name], args, path, input_names=[f"in{i}" for i in range(len(args))],
                                 output_names=output_names)
        assert not graph_op_types(onnx_model) & FORBIDDEN_DYNAMIC_OPS, name
        report = compare_with_onnxruntime(modules[name], ort_session(path), [args])
        assert report.ok and report.max_abs_error < 1e-4, (name, report)


def test_grow_vocabulary_keeps_known_words_and_starts_new_ones_at_the_mean():
    torch.manual_seed(0)
    model = MoEVLA(ModelConfig.tiny()).eval()
    batch = example_batch(model.cfg, batch_size=2)
    before = outputs(model, batch)
    old = model.cfg.vocab_size
    model.grow_vocabulary(old + 3)
    assert model.cfg.vocab_size == old + 3
    after = outputs(model, batch)  # the batch uses known ids only
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])
    assert torch.equal(before[2], after[2][..., :old])
    for name, table in model.word_tables().items():
        assert table.weight.shape[0] == old + 3, name
        assert torch.allclose(table.weight[old:], table.weight[:old].mean(0).expand(3, -1)), name
    new_logits = after[2][..., old:]  # [B, R, 3]: a new word is an average word, not a favourite
    assert torch.all(new_logits < after[2][..., :old].max(-1, keepdim=True).values)
    batch["instruction_ids"][:, 0] = old + 2
    assert torch.isfinite(outputs(model, batch)[1]).all()
    with pytest.raises(ValueError, match="only grow"):
        model.grow_vocabulary(old)
