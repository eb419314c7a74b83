"""Tests of moe_vla_ros/training/synthetic.py: the synthetic reach task and its dataset."""

import numpy as np
import pytest

from moe_vla_ros.data.dataset import DemoDataset
from moe_vla_ros.model.config import tiny_contract
from moe_vla_ros.training.synthetic import COLOURS, GRIPPER_CLOSED, generate_synthetic_dataset, make_episode


def test_dataset_is_written_with_the_real_format(tmp_path):
    sensors = tiny_contract().sensors
    dataset = generate_synthetic_dataset(tmp_path / "d", sensors, num_episodes=3, episode_length=12, seed=1)
    reopened = DemoDataset(tmp_path / "d")
    assert len(reopened) == 3 and reopened.num_steps == 36 and reopened.contract == sensors
    episode = dataset.episode(0)
    assert episode.images["front"].shape == (12, 32, 32, 3) and len(episode.reasoning) == 12


def test_motion_depends_on_the_named_square():
    sensors = tiny_contract().sensors
    episode = make_episode(np.random.default_rng(0), sensors, 40)
    colour = next(c for c in COLOURS if c in episode.instruction)
    front = episode.images["front"][0].reshape(-1, 3)
    assert (front == COLOURS[colour]).all(axis=1).any()  # the named square is in the image
    assert episode.reasoning[0].startswith(f"the {colour} square is")
    assert episode.reasoning[-1] == f"reached the {colour} square . closing gripper"
    assert episode.action[-1, -1] == pytest.approx(GRIPPER_CLOSED) and episode.action[0, -1] == 0.0
    assert np.abs(np.diff(episode.joint_position, axis=0)).max() > 0.01


def test_same_seed_same_data(tmp_path):
    sensors = tiny_contract().sensors
    a = generate_synthetic_dataset(tmp_path / "a", sensors, 2, 5, seed=3).episode(1)
    b = generate_synthetic_dataset(tmp_path / "b", sensors, 2, 5, seed=3).episode(1)
    assert np.array_equal(a.images["wrist"], b.images["wrist"]) and a.instruction == b.instruction
