"""Tests of moe_vla_ros/model/efficientnet.py: the packaged ImageNet weights load and classify."""

import os

import matplotlib
import matplotlib.image
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from moe_vla_ros.model.efficientnet import HEAD_CHANNELS, PIXEL_MEAN, PIXEL_STD, EfficientNetLite0Features

MILITARY_UNIFORM = 652  # ImageNet class of matplotlib's sample photo of Grace Hopper


class EfficientNetLite0Classifier(EfficientNetLite0Features):
    """The full ImageNet classifier (global pool + fc), used only to check the weights."""

    def __init__(self) -> None:
        super().__init__(output_stride=32)
        self._fc = nn.Linear(HEAD_CHANNELS, 1000)

    def forward(self, x: Tensor) -> Tensor:
        """x [N, 3, H, W] normalised -> logits [N, 1000]."""
        return self._fc(super().forward(x).mean(dim=(2, 3)))  # [N, 1000]


def test_pretrained_weights_recognise_a_real_photo():
    torch.manual_seed(0)
    path = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    if not os.path.exists(path):
        pytest.skip("matplotlib sample photo not installed")
    photo = torch.from_numpy(np.asarray(matplotlib.image.imread(path)).copy())  # [H, W, 3] uint8
    x = photo.permute(2, 0, 1)[None].float() / 255.0  # [1, 3, H, W]
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
    x = (x - torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1)) / torch.tensor(PIXEL_STD).view(1, 3, 1, 1)
    model = EfficientNetLite0Classifier()
    model.load_imagenet_weights()
    with torch.no_grad():
        probs = model.eval()(x).softmax(-1)[0]
    assert int(probs.argmax()) == MILITARY_UNIFORM
    assert float(probs[MILITARY_UNIFORM]) > 0.3


def test_feature_strides_and_frozen_batchnorm():
    features = EfficientNetLite0Features(output_stride=16).train()
    assert all(not m.training for m in features.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with torch.no_grad():
        out = features(torch.randn(1, 3, 96, 80))
    assert out.shape == (1, 112, 6, 5)
    with pytest.raises(ValueError, match="output_stride"):
        EfficientNetLite0Features(output_stride=8)
