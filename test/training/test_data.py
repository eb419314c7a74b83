"""Tests of moe_vla_ros/training/data.py: samples, chunk padding, normalisation, batching."""

import dataclasses

import numpy as np
import pytest
import torch

from moe_vla_ros.contract import ContractError
from moe_vla_ros.data.dataset import DatasetWriter, DemoDataset
from moe_vla_ros.model.config import tiny_contract
from moe_vla_ros.runtime.tokenization import InstructionTokenizer
from moe_vla_ros.training.data import (
    VLADataset,
    iterate_batches,
    normalization_from_episodes,
    split_episodes,
    start_weights,
)
from moe_vla_ros.training.synthetic import generate_synthetic_dataset


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    contract = tiny_contract()
    dataset = generate_synthetic_dataset(tmp_path_factory.mktemp("d") / "data", contract.sensors, 3, 10, seed=0)
    tokenizer = InstructionTokenizer.from_dataset(dataset, 8, 10)
    contract = dataclasses.replace(contract, normalization=normalization_from_episodes(dataset, [0, 1, 2]))
    return dataset, contract, tokenizer


def test_sample_layout_and_chunk_padding(setup):
    dataset, contract, tokenizer = setup
    data = VLADataset(dataset, contract, tokenizer)
    assert len(data) == 30
    episode = dataset.episode(0)
    norm = contract.normalization
    sample = data[8]  # 2 steps before the end: chunk = action[8], action[9], action[9], action[9]
    assert sample["images"].shape == (2, 3, 32, 32) and sample["images"].dtype == torch.uint8
    assert torch.equal(sample["images"][1], torch.from_numpy(episode.images["wrist"][8]).permute(2, 0, 1))
    want = (episode.action[[8, 9, 9, 9]] - np.asarray(norm.action_mean)) / np.asarray(norm.action_std)
    assert np.allclose(sample["actions"].numpy(), want, atol=1e-5)
    state = (episode.joint_position[8] - np.asarray(norm.state_mean)) / np.asarray(norm.state_std)
    assert np.allclose(sample["state"].numpy(), state, atol=1e-5)
    assert tokenizer.decode(sample["instruction_ids"]) == episode.instruction
    assert tokenizer.decode(sample["reasoning_ids"]) == episode.reasoning[8].replace(" .", ".")


def test_batch_matches_items(setup):
    data = VLADataset(*setup, episode_indices=[1, 2])
    batch = data.batch([0, 19])
    assert batch["actions"].shape == (2, 4, 3) and batch["reasoning_mask"].shape == (2, 10)
    for key, value in data[19].items():
        assert torch.equal(batch[key][1], value)


def test_contract_mismatch_is_rejected(setup):
    dataset, contract, tokenizer = setup
    other = dataclasses.replace(contract, sensors=dataclasses.replace(contract.sensors, image_height=64))
    with pytest.raises(ContractError, match="image_height"):
        VLADataset(dataset, other, tokenizer)


def test_split_and_batches_are_reproducible():
    assert split_episodes(10, 0.2, seed=1) == split_episodes(10, 0.2, seed=1)
    train, val = split_episodes(10, 0.2, seed=1)
    assert len(val) == 2 and sorted(train + val) == list(range(10))
    assert split_episodes(1, 0.5, seed=0) == ([0], [])
    with pytest.raises(ValueError, match="val_fraction"):
        split_episodes(4, 1.0, 0)
    a = iterate_batches(7, 3, torch.Generator().manual_seed(0))
    b = iterate_batches(7, 3, torch.Generator().manual_seed(0))
    first = [next(a) for _ in range(4)]
    assert all(torch.equal(x, next(b)) for x in first) and all(len(x) == 3 for x in first)


def test_recorded_target_positions_and_episode_steps(setup):
    dataset, contract, tokenizer = setup
    data = VLADataset(dataset, contract, tokenizer, episode_indices=[2])
    episode = dataset.episode(2)
    assert torch.equal(data.step_in_episode, torch.arange(10))
    assert data.episode_starts.tolist() == [0]
    two = VLADataset(dataset, contract, tokenizer, episode_indices=[2, 0])
    assert two.episode_starts.tolist() == [0, 10]  # the rows where each episode begins, in row order
    batch = data.batch([0, 9])
    assert torch.equal(batch["target_valid"], torch.ones(2))
    assert np.allclose(batch["target_position"].numpy(), episode.target_position[[0, 9]])


def test_datasets_without_targets_mark_them_invalid(tmp_path):
    contract = tiny_contract()
    source = generate_synthetic_dataset(tmp_path / "src", contract.sensors, 2, 5, seed=1)
    with DatasetWriter(tmp_path / "plain", contract.sensors) as writer:
        for episode in source:
            writer.add_episode(dataclasses.replace(episode, target_position=None))
    plain = DemoDataset(tmp_path / "plain")
    tokenizer = InstructionTokenizer.from_dataset(plain, 8, 10)
    contract = dataclasses.replace(contract, normalization=normalization_from_episodes(plain, [0, 1]))
    batch = VLADataset(plain, contract, tokenizer).batch([0, 7])
    assert torch.equal(batch["target_valid"], torch.zeros(2))
    assert torch.equal(batch["target_position"], torch.zeros(2, 3))


def test_weighted_batches_oversample_episode_starts():
    steps = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])  # one 10-step episode
    assert start_weights(steps, 1.0, 3) is None  # uniform: plain epochs
    weights = start_weights(steps, 4.0, 3)
    assert weights.tolist() == [4.0, 4.0, 4.0] + [1.0] * 7
    batches = iterate_batches(10, 500, torch.Generator().manual_seed(0), weights)
    drawn = torch.cat([next(batches) for _ in range(20)])  # [10000]
    share = float((drawn < 3).float().mean())
    assert abs(share - 12 / 19) < 0.03  # 3 * 4 / (3 * 4 + 7)
    again = iterate_batches(10, 500, torch.Generator().manual_seed(0), weights)
    assert torch.equal(next(again), drawn[:500])
    with pytest.raises(ValueError, match="non-negative"):
        next(iterate_batches(3, 2, torch.Generator(), torch.tensor([1.0, -1.0, 1.0])))
