"""`moe_vla_train --dataset` on a LeRobotDataset v3.0 folder: training, fine-tuning with frames
resized to the model's cameras, the target probe off without target_position, refusals."""

import dataclasses
import warnings

import pytest
import torch

from moe_vla_ros.data.lerobot.mapping import LeRobotMapping
from moe_vla_ros.data.lerobot.writer import ExportOptions, export_lerobot
from moe_vla_ros.model.checkpoint import read_checkpoint_config
from moe_vla_ros.model.config import tiny_contract
from moe_vla_ros.training.data import NO_TARGET_WARNING, open_training_dataset
from moe_vla_ros.training.synthetic import generate_synthetic_dataset
from moe_vla_ros.training.train import main, train_policy
from moe_vla_ros.training.train_config import TrainConfig

torch.set_num_threads(1)


def quick(**kwargs):
    base = dict(preset="tiny", dense_steps=3, moe_steps=3, batch_size=4, eval_every=3, log_every=1,
                eval_generated_samples=2, max_eval_samples=8, progress=False, num_threads=1)
    return TrainConfig(**{**base, **kwargs})


@pytest.fixture(scope="module")
def lerobot_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    ours = generate_synthetic_dataset(root / "ours", tiny_contract().sensors, 4, 10, seed=0)
    export_lerobot(ours, root / "le", ExportOptions(progress=False))
    return root / "le"


def test_trains_on_lerobot_without_target_position(lerobot_dir, tmp_path):
    mapping = LeRobotMapping(target_key="")  # as most LeRobot data: no target position
    with pytest.warns(UserWarning, match="target probe is not trained"):
        result = train_policy(lerobot_dir, tmp_path / "ckpt", quick(), mapping)
    assert (tmp_path / "ckpt" / "config.json").is_file() and result.final_train_loss == result.final_train_loss
    cfg, _ = read_checkpoint_config(tmp_path / "ckpt")
    assert cfg.contract.sensors.camera_names == ("front", "wrist") and cfg.contract.sensors.control_rate_hz == 10.0
    assert "target_position" in NO_TARGET_WARNING


def test_with_target_position_no_warning(lerobot_dir):
    data = open_training_dataset(lerobot_dir)
    assert data.has_target_position and data.episode(0).target_position.shape == (10, 3)


def test_fine_tuning_resizes_frames_to_the_models_cameras(lerobot_dir, tmp_path):
    ckpt = tmp_path / "ckpt"
    train_policy(lerobot_dir, ckpt, quick())
    big = dataclasses.replace(tiny_contract().sensors, image_height=48, image_width=40)
    ours = generate_synthetic_dataset(tmp_path / "big", big, 3, 8, seed=2)
    export_lerobot(ours, tmp_path / "big_le", ExportOptions(progress=False, video=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_policy(tmp_path / "big_le", tmp_path / "tuned", quick(init_checkpoint=str(ckpt), dense_steps=0, moe_steps=2))
    assert (tmp_path / "tuned" / "config.json").is_file()


def test_cli_mapping_and_refusals(lerobot_dir, tmp_path, capsys):
    base = ["--dataset", str(lerobot_dir), "-o", str(tmp_path / "ckpt"), "--preset", "tiny", "--dense-steps", "2",
            "--moe-steps", "2", "--batch-size", "4", "--eval-every", "2", "--num-threads", "1", "--no-progress"]
    assert main(base + ["--lerobot-map", "camera.top=observation.images.top"]) == 2
    assert "moe_vla_train: error: cameras {'top': 'observation.images.top'} are missing" in capsys.readouterr().err
    assert main(base + ["--lerobot-map", "camera"]) == 2
    assert "--lerobot-map takes KEY=VALUE, got 'camera'" in capsys.readouterr().err
    assert main(base + ["--lerobot-map", "camera.main=front", "--lerobot-map", "image_size=24x24"]) == 0
    cfg, _ = read_checkpoint_config(tmp_path / "ckpt")
    assert cfg.contract.sensors.camera_names == ("main",) and cfg.contract.sensors.image_height == 24
