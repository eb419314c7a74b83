"""Tests of moe_vla_ros/training/evaluate.py: metric values and bookkeeping."""

import dataclasses

import torch

from moe_vla_ros.model.config import ModelConfig, tiny_contract
from moe_vla_ros.model.vla import MoEVLA
from moe_vla_ros.runtime.tokenization import InstructionTokenizer
from moe_vla_ros.training.data import VLADataset, normalization_from_episodes
from moe_vla_ros.training.evaluate import evaluate
from moe_vla_ros.training.synthetic import generate_synthetic_dataset

torch.set_num_threads(1)


def tiny_data(tmp_path) -> tuple[VLADataset, ModelConfig]:
    """12 samples of a synthetic dataset and the tiny config that reads them."""
    torch.manual_seed(0)
    contract = tiny_contract()
    dataset = generate_synthetic_dataset(tmp_path / "d", contract.sensors, 2, 6, seed=0)
    tokenizer = InstructionTokenizer.from_dataset(dataset, 8, 10)
    contract = dataclasses.replace(contract, normalization=normalization_from_episodes(dataset, [0, 1]))
    return VLADataset(dataset, contract, tokenizer), ModelConfig.tiny(contract=contract, vocab_size=tokenizer.vocab_size)


def test_metrics_match_a_direct_computation(tmp_path):
    data, cfg = tiny_data(tmp_path)
    contract = cfg.contract
    model = MoEVLA(cfg).train()

    metrics = evaluate(model, data, batch_size=5, max_samples=100, generated_samples=3)
    assert model.training  # mode restored
    assert metrics["samples"] == 12
    batch = data.batch(range(12))
    model.eval()
    with torch.no_grad():
        trunk = model.encode(batch["images"], batch["instruction_ids"], batch["instruction_mask"], batch["state"])
        actions = model.action_head(trunk.tokens, batch["state"], batch["reasoning_ids"], batch["reasoning_mask"]).actions
    std = torch.tensor(contract.normalization.action_std)
    assert abs(metrics["action_l1_rad"] - float(((actions - batch["actions"]).abs() * std).mean())) < 1e-5
    assert 0.0 <= metrics["reasoning_accuracy"] <= 1.0 and metrics["reasoning_exact_match"] == 0.0  # untrained
    assert len(metrics["trunk_expert_load"]) == 1 and abs(sum(metrics["trunk_expert_load"][0]) - 1) < 1e-5
    with torch.no_grad():
        _, probe = model.encode_with_target(batch["images"], batch["instruction_ids"], batch["instruction_mask"],
                                            batch["state"])  # [12, 3]
        cm = 100 * float((probe * 0.1 - batch["target_position"]).norm(dim=-1).mean())
    assert abs(metrics["target_error_cm"] - cm) < 1e-3
    assert metrics["action_l1_rad_episode_start"] > 0 and metrics["target_error_cm_episode_start"] > 0
    assert evaluate(model, data, max_samples=4, generated_samples=0)["samples"] == 4


def test_tokens_dropped_by_expert_capacity_are_reported(tmp_path):
    data, base = tiny_data(tmp_path)
    unlimited = evaluate(MoEVLA(base), data, generated_samples=0)
    assert unlimited["trunk_dropped_tokens_per_sample"] == 0 and unlimited["action_head_dropped_tokens_per_sample"] == 0
    tight = base.with_overrides({"trunk": {"moe": {"capacity_factor": 0.25}}})
    limited = evaluate(MoEVLA(tight), data, generated_samples=0)
    assert limited["trunk_dropped_tokens_per_sample"] > 0 and limited["action_head_dropped_tokens_per_sample"] == 0
