"""Tests of moe_vla_ros/training/stages.py: upcycling and the stage-3 freeze."""

import pytest
import torch

from moe_vla_ros.export.examples import example_batch
from moe_vla_ros.model.config import ModelConfig
from moe_vla_ros.model.vla import MoEVLA
from moe_vla_ros.training.stages import cosine_lr, freeze_for_moe_tuning, upcycle_model

torch.set_num_threads(1)


def trainable_names(model: torch.nn.Module) -> list[str]:
    """Names of the parameters that currently require gradients."""
    return [name for name, p in model.named_parameters() if p.requires_grad]


def test_moe_tuning_trains_only_experts_routers_and_heads():
    torch.manual_seed(0)
    model = MoEVLA(ModelConfig.tiny(), use_moe=False)
    assert upcycle_model(model, noise_std=0.01, seed=0) == 2
    params = freeze_for_moe_tuning(model)
    names = trainable_names(model)
    assert len(params) == len(names)
    assert all(n.startswith(("trunk.blocks.1.ffn.", "reasoning.", "action_head.")) for n in names)
    assert any(n.startswith("trunk.blocks.1.ffn.router") for n in names)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    assert any(n.startswith("vision.") for n in frozen) and "trunk.instruction_embed.weight" in frozen
    assert "trunk.blocks.1.self_attn.q_proj.weight" in frozen and "trunk.blocks.0.ffn.fc_in.weight" in frozen

    optimizer = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1)
    trained = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    model.train()
    for step in range(3):
        optimizer.zero_grad()
        model.compute_loss(example_batch(model.cfg, batch_size=4, seed=step)).total.backward()
        optimizer.step()
    for name, p in model.named_parameters():
        if name in frozen:
            assert torch.equal(p, frozen[name]), f"{name} changed while frozen"
    assert not torch.equal(model.trunk.blocks[1].ffn.experts.w_in, trained["trunk.blocks.1.ffn.experts.w_in"])


def test_cosine_schedule():
    assert cosine_lr(0, 100, 1.0, warmup_steps=10) == 0.1
    assert cosine_lr(9, 100, 1.0, warmup_steps=10) == 1.0
    assert abs(cosine_lr(100, 100, 1.0, warmup_steps=10) - 0.1) < 1e-9
    assert cosine_lr(50, 100, 1.0, 10) < cosine_lr(20, 100, 1.0, 10)


def test_new_instruction_words_learn_while_known_ones_stay():
    from moe_vla_ros.training.stages import learn_new_instruction_words
    from moe_vla_ros.training.train import _optimizer

    torch.manual_seed(0)
    model = MoEVLA(ModelConfig.tiny(), use_moe=False)
    upcycle_model(model, noise_std=0.01, seed=0)
    old = model.cfg.vocab_size
    model.grow_vocabulary(old + 2)
    params = freeze_for_moe_tuning(model)
    embed = learn_new_instruction_words(model, old)
    params.append(embed)
    before = embed.detach().clone()
    optimizer = _optimizer(params, lr=1e-2, weight_decay=0.1, undecayed=[embed])
    model.train()
    for step in range(3):
        batch = example_batch(model.cfg, batch_size=4, seed=step)
        batch["instruction_ids"][:, 1] = old + step % 2  # the new words are read
        optimizer.zero_grad()
        model.compute_loss(batch).total.backward()
        optimizer.step()
    assert torch.equal(embed[:old], before[:old])  # known words: no gradient, no decay
    assert not torch.equal(embed[old:], before[old:])
    for bad in (0, old + 2):
        with pytest.raises(ValueError, match="first_new_id"):
            learn_new_instruction_words(model, bad)
