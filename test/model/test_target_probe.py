"""Tests of moe_vla_ros/model/target_probe.py and its term in MoEVLA.compute_loss."""

import torch

from moe_vla_ros.export.examples import example_batch
from moe_vla_ros.model.config import ModelConfig
from moe_vla_ros.model.target_probe import TARGET_SCALE_M, TargetProbe, target_error_m, target_loss
from moe_vla_ros.model.vla import MoEVLA

torch.set_num_threads(1)


def test_probe_shape_and_error_in_metres():
    probe = TargetProbe(d_model=16, num_heads=2)
    assert probe(torch.randn(3, 7, 16), torch.randn(3, 4, 16), torch.ones(3, 4)).shape == (3, 3)
    predicted = torch.tensor([[4.0, 1.0, 0.2]])  # decimetres
    assert torch.allclose(target_error_m(predicted, torch.tensor([[0.4, 0.13, 0.02]])), torch.tensor([0.03]))
    assert TARGET_SCALE_M == 0.1


def test_loss_counts_only_recorded_targets():
    predicted = torch.zeros(2, 3)
    truth = torch.tensor([[0.1, 0.0, 0.0], [5.0, 5.0, 5.0]])  # the second is far off but unrecorded
    one = target_loss(predicted, truth, torch.tensor([1.0, 0.0]))
    assert torch.isclose(one, torch.tensor(0.5))  # smooth L1 of 1 decimetre
    assert float(target_loss(predicted, truth, torch.zeros(2))) == 0.0


def _scene(batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two objects per scene, each in its own token; the one-word instruction names one of them."""
    positions = torch.rand(batch, 2, 3, generator=generator) * 0.5  # [B, 2, 3] m
    tokens = torch.randn(batch, 4, 16, generator=generator) * 0.1  # [B, Nv, D]
    tokens[:, 1, :3], tokens[:, 1, 3] = positions[:, 0] / TARGET_SCALE_M, 1.0  # object "a"
    tokens[:, 3, :3], tokens[:, 3, 4] = positions[:, 1] / TARGET_SCALE_M, 1.0  # object "b"
    named = torch.randint(0, 2, (batch,), generator=generator)  # [B]
    words = torch.zeros(batch, 1, 16)
    words[:, 0, 5] = named * 2.0 - 1.0  # the instruction's word: which object
    return tokens, words, positions[torch.arange(batch), named]


def test_probe_finds_the_object_the_instruction_names():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    probe = TargetProbe(d_model=16, num_heads=2)
    optimizer = torch.optim.Adam(probe.parameters(), lr=3e-3)
    for _ in range(400):
        tokens, words, target = _scene(32, g)
        loss = target_loss(probe(tokens, words, torch.ones(32, 1)), target, torch.ones(32))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    tokens, words, target = _scene(64, g)
    with torch.no_grad():
        error = float(target_error_m(probe(tokens, words, torch.ones(64, 1)), target).mean())
        guess = float(target_error_m(torch.full((64, 3), 2.5), target).mean())  # always the middle
    assert error < 0.05 and error < guess / 3


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


def test_target_input_feeds_the_estimate_to_the_trunk():
    torch.manual_seed(0)
    d = ModelConfig.tiny().to_dict()
    d["trunk"]["target_input"] = True
    model = MoEVLA(ModelConfig.from_dict(d)).eval()
    batch = example_batch(model.cfg, batch_size=2)
    inputs = (batch["images"], batch["instruction_ids"], batch["instruction_mask"], batch["state"])
    before = model.predict_actions(*inputs)
    with torch.no_grad():
        model.trunk.target_probe.mlp[-1].bias += 1.0  # a different estimate -> different actions
    assert not torch.allclose(before.actions, model.predict_actions(*inputs).actions)
    with torch.no_grad():  # the estimate handed to the trunk is the one the trunk would compute
        trunk, _ = model.encode_with_target(*inputs)
        assert torch.equal(trunk.tokens, model.encode(*inputs).tokens)
    model.train().compute_loss(batch).total.backward()
    assert model.trunk.target_proj.weight.grad.abs().sum() > 0
    assert model.vision.proj.weight.grad.abs().sum() > 0


def test_the_probe_does_not_see_the_joint_state():
    torch.manual_seed(0)
    model = MoEVLA(ModelConfig.tiny()).eval()
    batch = example_batch(model.cfg, batch_size=2)
    inputs = (batch["images"], batch["instruction_ids"], batch["instruction_mask"])
    _, a = model.encode_with_target(*inputs, batch["state"])
    _, b = model.encode_with_target(*inputs, batch["state"] + 1.0)
    assert torch.equal(a, b)
