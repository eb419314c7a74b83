"""Shared by the training tests: the small synthetic dataset (training_helpers.py has `quick`)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # training_helpers


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    """12 synthetic episodes of 30 steps for the tiny contract (seed 0)."""
    from moe_vla_ros.model.config import tiny_contract
    from moe_vla_ros.training.synthetic import generate_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic") / "data"
    generate_synthetic_dataset(root, tiny_contract().sensors, num_episodes=12, episode_length=30, seed=0)
    return root
