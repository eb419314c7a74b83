"""Tests of moe_vla_ros/data/dataset.py: a writer that is cut short leaves a readable dataset marked
incomplete; one that finishes marks it complete."""

import json

import numpy as np
import pytest

from moe_vla_ros.data.dataset import DatasetError, DatasetWriter, DemoDataset
from moe_vla_ros.model.config import tiny_contract
from moe_vla_ros.training.synthetic import make_episode

SENSORS = tiny_contract().sensors


def write(root, episodes, fail_after=None):
    rng = np.random.default_rng(0)
    with DatasetWriter(root, SENSORS, source="test") as writer:
        for i in range(episodes):
            if i == fail_after:
                raise KeyboardInterrupt  # Ctrl-C / SIGTERM (cli.Terminated) in the middle of a run
            writer.add_episode(make_episode(rng, SENSORS, 5))


def test_a_finished_writer_marks_the_dataset_complete(tmp_path):
    write(tmp_path / "d", 3)
    dataset = DemoDataset(tmp_path / "d")
    assert dataset.complete and len(dataset) == 3 and dataset.num_steps == 15


def test_an_interrupted_writer_leaves_what_it_wrote_marked_incomplete(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        write(tmp_path / "d", 3, fail_after=2)
    dataset = DemoDataset(tmp_path / "d")
    assert not dataset.complete and len(dataset) == 2
    assert len(dataset.episode(1)) == 5  # what was written stays readable
    with pytest.raises(DatasetError, match="already holds a dataset"):
        write(tmp_path / "d", 1)  # never overwritten


def test_datasets_written_before_the_flag_count_as_complete(tmp_path):
    write(tmp_path / "d", 1)
    meta_path = tmp_path / "d" / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["complete"]
    meta_path.write_text(json.dumps(meta))
    assert DemoDataset(tmp_path / "d").complete
