"""Tests of moe_vla_ros/training/data.py: samples, chunk padding, normalisation, batching."""

import dataclasses

import numpy as np
import pytest
import torch

from moe_vla_ros.contract import ContractError
from moe_vla_ros.model.config import tiny_contract
from moe_vla_ros.model.tokenizer import InstructionTokenizer
from moe_vla_ros.training.data import VLADataset, iterate_batches, normalization_from_episodes, split_episodes
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
