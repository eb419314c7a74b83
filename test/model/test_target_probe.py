"""Tests of moe_vla_ros/model/target_probe.py and its term in MoEVLA.compute_loss."""

import torch

from moe_vla_ros.model.config import ModelConfig
from moe_vla_ros.model.examples import example_batch
from moe_vla_ros.model.target_probe import TARGET_SCALE_M, TargetProbe, target_error_m, target_loss
from moe_vla_ros.model.vla import MoEVLA

torch.set_num_threads(1)


def test_probe_shape_and_error_in_metres():
    probe = TargetProbe(d_model=16, num_heads=2)
    assert probe(torch.randn(3, 7, 16)).shape == (3, 3)
    predicted = torch.tensor([[4.0, 1.0, 0.2]])  # decimetres
    assert torch.allclose(target_error_m(predicted, torch.tensor([[0.4, 0.13, 0.02]])), torch.tensor([0.03]))
    assert TARGET_SCALE_M == 0.1


def test_loss_counts_only_recorded_targets():
    predicted = torch.zeros(2, 3)
    truth = torch.tensor([[0.1, 0.0, 0.0], [5.0, 5.0, 5.0]])  # the second is far off but unrecorded
    one = target_loss(predicted, truth, torch.tensor([1.0, 0.0]))
    assert torch.isclose(one, torch.tensor(0.5))  # smooth L1 of 1 decimetre
    assert float(target_loss(predicted, truth, torch.zeros(2))) == 0.0


def test_probe_learns_a_position_written_into_the_tokens():
    torch.manual_seed(0)
    probe = TargetProbe(d_model=16, num_heads=2)
    optimizer = torch.optim.Adam(probe.parameters(), lr=3e-3)
    for _ in range(300):
        target = torch.rand(32, 3) * 0.5  # [B, 3] m
        tokens = torch.randn(32, 5, 16) * 0.1  # [B, S, D]
        tokens[:, 2, :3] = target / TARGET_SCALE_M  # one token carries the position
        loss = target_loss(probe(tokens), target, torch.ones(32))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    target = torch.rand(64, 3) * 0.5
    tokens = torch.randn(64, 5, 16) * 0.1
    tokens[:, 2, :3] = target / TARGET_SCALE_M
    with torch.no_grad():
        error = float(target_error_m(probe(tokens), target).mean())
        guess = float(target_error_m(torch.full((64, 3), 2.5), target).mean())  # always the middle
    assert error < 0.04 and error < guess / 4


def test_compute_loss_adds_the_probe_term_only_with_targets():
    torch.manual_seed(0)
    model = MoEVLA(ModelConfig.tiny()).eval()  # eval: no random reasoning dropout between the calls
    batch = example_batch(model.cfg, batch_size=3)
    with_targets = model.compute_loss(batch)
    assert float(with_targets.target) > 0
    without = model.compute_loss({k: v for k, v in batch.items() if not k.startswith("target_")})
    assert float(without.target) == 0.0
    assert torch.isclose(with_targets.total - without.total, with_targets.target * model.cfg.loss.target_weight)
    off = ModelConfig.from_dict({**model.cfg.to_dict(), "loss": {**model.cfg.loss.to_dict(), "target_weight": 0.0}})
    torch.manual_seed(0)
    assert float(MoEVLA(off).compute_loss(batch).target) == 0.0


def test_target_input_feeds_the_estimate_to_the_head():
    torch.manual_seed(0)
    cfg = ModelConfig.tiny()
    d = cfg.to_dict()
    d["action_head"]["target_input"] = True
    model = MoEVLA(ModelConfig.from_dict(d)).eval()
    batch = example_batch(model.cfg, batch_size=2)
    before = model.predict_actions(batch["images"], batch["instruction_ids"], batch["instruction_mask"], batch["state"])
    with torch.no_grad():
        model.target_probe.mlp[-1].bias += 1.0  # a different estimate -> different actions
    after = model.predict_actions(batch["images"], batch["instruction_ids"], batch["instruction_mask"], batch["state"])
    assert not torch.allclose(before.actions, after.actions)
    losses = model.train().compute_loss(batch)
    losses.total.backward()
    assert model.action_head.target_proj.weight.grad.abs().sum() > 0
