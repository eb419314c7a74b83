"""Tests of moe_vla_ros/training/feature_cache.py: when a frozen backbone's features may be
reused, that they equal the backbone's, the folder cache, and that training on them is the same
training."""

import numpy as np
import pytest
import torch
from training_helpers import quick

from moe_vla_ros.data.dataset import DemoDataset
from moe_vla_ros.model.config import ModelConfig
from moe_vla_ros.model.vla import MoEVLA
from moe_vla_ros.training import feature_cache
from moe_vla_ros.training.feature_cache import (
    backbone_features,
    backbone_key,
    dataset_features,
    episode_key,
    not_cacheable_reason,
)
from moe_vla_ros.training.train import train_policy

FROZEN = {"vision": {"backbone": "efficientnet_lite0", "efficientnet_stride": 32, "pretrained": False,
                     "freeze_backbone": True}}


def _vision(seed: int = 0, overrides: dict | None = None):
    torch.manual_seed(seed)
    return MoEVLA(ModelConfig.tiny().with_overrides(overrides or FROZEN), use_moe=False).vision


def _images(n: int, vision, seed: int = 0) -> torch.Tensor:
    h, w = vision.image_size
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, vision.num_cameras, 3, h, w), dtype=torch.uint8, generator=g)  # [N, C, 3, H, W]


@pytest.mark.parametrize(("overrides", "shift", "reason"), [
    (FROZEN, 0, None),
    ({"vision": {"freeze_backbone": False}}, 0, "freeze_backbone"),
    (FROZEN, 4, "image_shift_pixels=4"),
    ({"vision": {"backbone": "vit", "freeze_backbone": True, "dropout": 0.1}}, 0, "dropout"),
    ({"vision": {"backbone": "vit", "freeze_backbone": True, "dropout": 0.0}}, 0, None),
])
def test_features_are_reused_only_when_they_cannot_change(overrides, shift, reason):
    found = not_cacheable_reason(ModelConfig.tiny().with_overrides(overrides), shift)
    assert (found is None) if reason is None else (reason in found)


def test_tokens_from_features_equal_the_encoder_on_images():
    vision = _vision()
    vision.train()  # training mode: a frozen EfficientNet keeps its BatchNorm statistics
    images = _images(5, vision)
    features = backbone_features(vision, images)  # [N, C, P, W]
    assert features.shape[:2] == (5, vision.num_cameras) and features.dtype == np.float32
    with torch.no_grad():
        direct = vision(images).tokens
        reused = vision.tokens_from_features(torch.from_numpy(features)).tokens
    torch.testing.assert_close(reused, direct, atol=1e-5, rtol=1e-5)
    assert vision.training  # the mode it had is restored
    assert all(p.is_contiguous() for p in vision.backbone.parameters())  # and its weights' layout


def _counting(monkeypatch) -> list[int]:
    """Frames passed through the backbone, one entry per call."""
    computed: list[int] = []
    real = feature_cache.backbone_features

    def counted(vision, images, progress=False, rows=None):
        computed.append(images.shape[0] if rows is None else rows.shape[0])
        return real(vision, images, progress, rows)

    monkeypatch.setattr(feature_cache, "backbone_features", counted)
    return computed


def test_folder_cache_is_keyed_by_weights_and_images(tmp_path, monkeypatch):
    vision = _vision()
    images = _images(4, vision)
    computed = _counting(monkeypatch)

    first = dataset_features(vision, images, tmp_path)
    again = dataset_features(vision, images, tmp_path)
    assert computed == [4] and np.array_equal(first, again)
    assert not list(tmp_path.rglob("*.partial"))

    dataset_features(vision, _images(4, vision, seed=1), tmp_path)  # other frames
    dataset_features(_vision(seed=1), images, tmp_path)  # other backbone weights
    assert computed == [4, 4, 4] and len(list(tmp_path.rglob("*.npy"))) == 3
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2  # one folder per backbone
    key = backbone_key(vision)
    assert key != backbone_key(_vision(seed=1))
    assert episode_key(key, images) != episode_key(key, images.flip(0))


def test_episodes_are_cached_one_by_one_so_other_splits_reuse_them(tmp_path, monkeypatch):
    vision = _vision()
    images = _images(10, vision)  # episodes of 3, 2, 4 and 1 frames
    starts = [0, 3, 5, 9]
    computed = _counting(monkeypatch)
    whole = dataset_features(vision, images, tmp_path, episode_starts=starts)
    np.testing.assert_allclose(whole, backbone_features(vision, images), atol=1e-6)
    assert computed[0] == 10 and len(list(tmp_path.rglob("*.npy"))) == 4

    # another split: the last two episodes first, then the first one; nothing to compute
    split = torch.cat([images[5:9], images[9:10], images[0:3]])
    reused = dataset_features(vision, split, tmp_path, episode_starts=[0, 4, 5])
    assert computed == [10]  # nothing new
    np.testing.assert_array_equal(reused, np.concatenate([whole[5:9], whole[9:10], whole[0:3]]))

    # a dataset with one new episode computes that episode alone
    grown = torch.cat([images, _images(2, vision, seed=5)])
    dataset_features(vision, grown, tmp_path, episode_starts=[*starts, 10])
    assert computed == [10, 2] and len(list(tmp_path.rglob("*.npy"))) == 5


def test_episode_files_are_saved_group_by_group(tmp_path, monkeypatch):
    vision = _vision()
    images = _images(7, vision)
    monkeypatch.setattr(feature_cache, "GROUP_FRAMES", 3)
    real = feature_cache.backbone_features
    calls = []

    def interrupted(vision, images, progress=False, rows=None):
        calls.append(rows.shape[0])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(vision, images, progress, rows)

    monkeypatch.setattr(feature_cache, "backbone_features", interrupted)
    with pytest.raises(KeyboardInterrupt):  # episodes of 2, 1, 2, 2 frames: groups [0, 1], [2], [3]
        dataset_features(vision, images, tmp_path, episode_starts=[0, 2, 3, 5])
    assert calls == [3, 2, 2] and len(list(tmp_path.rglob("*.npy"))) == 3 and not list(tmp_path.rglob("*.partial"))
    monkeypatch.setattr(feature_cache, "backbone_features", real)
    computed = _counting(monkeypatch)
    features = dataset_features(vision, images, tmp_path, episode_starts=[0, 2, 3, 5])
    assert computed == [2]  # only the last episode
    np.testing.assert_allclose(features, real(vision, images), atol=1e-6)


def test_a_damaged_episode_file_or_bad_starts_are_refused(tmp_path):
    vision = _vision()
    images = _images(5, vision)
    dataset_features(vision, images, tmp_path, episode_starts=[0, 2])
    path = tmp_path / backbone_key(vision) / f"{episode_key(backbone_key(vision), images[2:5])}.npy"
    np.save(path, np.zeros((1, 2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="holds 1 frames, its episode has 3: remove it"):
        dataset_features(vision, images, tmp_path, episode_starts=[0, 2])
    for starts in ([1, 3], [0, 5], []):
        with pytest.raises(ValueError, match="episode starts"):
            dataset_features(vision, images, tmp_path, episode_starts=starts)


def test_training_on_reused_features_is_the_same_training(dataset_dir, tmp_path):
    runs = {}
    for reuse in (False, True):
        cfg = quick(model_overrides=FROZEN, image_shift_pixels=0, reuse_backbone_features=reuse,
                    feature_cache_dir=str(tmp_path / "features") if reuse else None)
        runs[reuse] = train_policy(dataset_dir, tmp_path / f"run_{reuse}", cfg)
    losses = {reuse: [r["loss"] for r in run.records if r["kind"] == "train"] for reuse, run in runs.items()}
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-4, atol=1e-5)
    assert runs[True].final_eval["action_l1_rad"] == pytest.approx(runs[False].final_eval["action_l1_rad"], rel=1e-4)
    episodes = len(DemoDataset(dataset_dir))  # the training and the held-out episodes, one file each
    assert len(list((tmp_path / "features").rglob("*.npy"))) == episodes
