"""Tests of moe_vla_ros/training/augment.py: random shifts keep shape/dtype and move content."""

import pytest
import torch

from moe_vla_ros.training.augment import drop_state, random_shift


def test_shift_moves_content_by_at_most_max_shift_and_replicates_edges():
    images = torch.zeros(4, 2, 3, 16, 16, dtype=torch.uint8)
    images[:, :, :, 7, 7] = 255  # one bright pixel in every image
    out = random_shift(images, 3, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    positions = set()
    for img in out.reshape(8, 3, 16, 16):
        ys, xs = torch.nonzero(img[0] == 255, as_tuple=True)
        assert len(ys) == 1 and abs(int(ys[0]) - 7) <= 3 and abs(int(xs[0]) - 7) <= 3
        positions.add((int(ys[0]), int(xs[0])))
    assert len(positions) > 1  # images are shifted independently

    ramp = torch.arange(16, dtype=torch.uint8).repeat(16, 1)[None, None, None].expand(1, 1, 3, 16, 16)
    shifted = random_shift(ramp.contiguous(), 4, torch.Generator().manual_seed(1))
    assert int(shifted.min()) >= 0 and int(shifted.max()) <= 15  # edges replicated, no zeros padded in


def test_zero_shift_is_identity_and_negative_is_refused():
    images = torch.randint(0, 255, (2, 1, 3, 8, 8), dtype=torch.uint8)
    assert random_shift(images, 0) is images
    with pytest.raises(ValueError, match="max_shift"):
        random_shift(images, -1)


def test_state_dropout_replaces_whole_samples_with_the_mean():
    state = torch.arange(1, 401, dtype=torch.float32).reshape(200, 2)
    mean = torch.tensor([-1.0, -2.0])
    out = drop_state(state, mean, 0.5, torch.Generator().manual_seed(0))
    dropped = (out == mean).all(dim=1)
    kept = (out == state).all(dim=1)
    assert bool((dropped | kept).all())  # a sample keeps its state or loses all of it
    assert 60 < int(dropped.sum()) < 140
    assert drop_state(state, mean, 0.0) is state
    with pytest.raises(ValueError, match="probability"):
        drop_state(state, mean, 1.0)
