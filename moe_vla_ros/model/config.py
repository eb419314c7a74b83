"""Configuration of the MoE-VLA policy: `ModelConfig` = contract + one config per component
(VisionConfig, TrunkConfig, ReasoningConfig, ActionHeadConfig, LossConfig; defined in
component_configs.py and re-exported here) + the presets.

Every field is documented and validated in `__post_init__` (errors name the bad value);
`to_dict` / `from_dict` give a JSON round trip (unknown keys are rejected). Presets:

* `ModelConfig.tiny()`  - a few thousand parameters, for tests.
* `ModelConfig.small()` - the bundled demo model: 2 cameras at 96x96, 7 joints, 16-step
  chunks at 10 Hz, d_model 128, 4 trunk layers of which 2 are MoE (8 experts, top-2,
  ChatVLA-2 style) and an AdaMoE action head (4 experts top-1 + shared expert + scale adapter).

Sizes that come from the data (cameras, image size, joints, chunk length, token lengths) live
only in the `PolicyContract`; the component configs hold widths and depths.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from moe_vla_ros.contract import PolicyContract, SensorContract
from moe_vla_ros.errors import BadInputError
from moe_vla_ros.model.component_configs import (
    ActionHeadConfig,
    LossConfig,
    ReasoningConfig,
    TrunkConfig,
    VisionConfig,
    check_keys,
    heads_divide,
)
from moe_vla_ros.model.moe import MoEConfig
from moe_vla_ros.validation import require_int

__all__ = [
    "ActionHeadConfig",
    "LossConfig",
    "ModelConfig",
    "ReasoningConfig",
    "TrunkConfig",
    "VisionConfig",
    "adamoe_config",
    "default_contract",
    "tiny_contract",
]

@dataclass
class ModelConfig:
    """The whole policy: contract, token width, vocabulary and one config per component.

    Attributes:
        contract: cameras, image size, joints, chunk length, token lengths, normalisation.
        d_model: token width shared by trunk, reasoning decoder and action head.
        vocab_size: tokenizer vocabulary size (special ids PAD=0, BOS=1, EOS=2, UNK=3).
        vision, trunk, reasoning, action_head, loss: component configs.
    """

    contract: PolicyContract
    d_model: int = 128
    vocab_size: int = 256
    vision: VisionConfig = field(default_factory=VisionConfig)
    trunk: TrunkConfig = field(default_factory=TrunkConfig)
    reasoning: ReasoningConfig = field(default_factory=ReasoningConfig)
    action_head: ActionHeadConfig = field(default_factory=ActionHeadConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.contract, PolicyContract):
            raise BadInputError(f"contract must be a PolicyContract, got {type(self.contract).__name__}")
        require_int("d_model", self.d_model, 1)
        require_int("vocab_size", self.vocab_size, 5)  # 4 special tokens + 1
        sensors = self.contract.sensors
        if self.vision.backbone == "vit":
            p = self.vision.patch_size
            if sensors.image_height % p or sensors.image_width % p:
                raise BadInputError(
                    f"vision.patch_size={p} does not divide the contract image size "
                    f"{sensors.image_height}x{sensors.image_width}"
                )
        if self.contract.max_reasoning_tokens < 2:
            raise BadInputError(
                f"contract.max_reasoning_tokens must be >= 2 (BOS + 1), got {self.contract.max_reasoning_tokens}"
            )
        for prefix, part in (("trunk", self.trunk), ("reasoning", self.reasoning), ("action_head", self.action_head)):
            heads_divide(prefix, self.d_model, part.num_heads)
        for prefix, part in (("trunk", self.trunk), ("action_head", self.action_head)):
            moe = part.moe
            if moe is None:
                continue
            want = (self.d_model, part.ffn_hidden, part.activation)
            got = (moe.d_model, moe.d_hidden, moe.activation)
            if got != want:
                raise BadInputError(
                    f"{prefix}.moe has (d_model, d_hidden, activation)={got}, "
                    f"the {prefix} FFN has {want}: experts are upcycled from that FFN"
                )

    # ----------------------------------------------------------------------------- sizes
    @property
    def num_cameras(self) -> int:
        return len(self.contract.sensors.camera_names)

    @property
    def num_vision_tokens(self) -> int:
        s = self.contract.sensors
        return self.num_cameras * self.vision.num_tokens_per_camera(s.image_height, s.image_width)

    @property
    def num_trunk_tokens(self) -> int:
        """S = vision tokens + instruction tokens + state tokens."""
        return self.num_vision_tokens + self.contract.max_instruction_tokens + self.trunk.num_state_tokens

    # ----------------------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        return {
            "contract": self.contract.to_dict(),
            "d_model": self.d_model,
            "vocab_size": self.vocab_size,
            "vision": self.vision.to_dict(),
            "trunk": self.trunk.to_dict(),
            "reasoning": self.reasoning.to_dict(),
            "action_head": self.action_head.to_dict(),
            "loss": self.loss.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        check_keys(cls, d)
        if "contract" not in d:
            raise BadInputError("model config has no 'contract' section")
        parts = {"vision": VisionConfig, "trunk": TrunkConfig, "reasoning": ReasoningConfig,
                 "action_head": ActionHeadConfig, "loss": LossConfig}
        kwargs: dict[str, Any] = {"contract": PolicyContract.from_dict(d["contract"])}
        for key in ("d_model", "vocab_size"):
            if key in d:
                kwargs[key] = d[key]
        for key, part_cls in parts.items():
            if key in d:
                kwargs[key] = part_cls.from_dict(d[key])
        return cls(**kwargs)

    def with_overrides(self, overrides: Mapping[str, Any]) -> ModelConfig:
        """A new config with `overrides` (a partial to_dict() tree) merged in, then validated."""
        return ModelConfig.from_dict(_deep_merge(self.to_dict(), overrides))

    def replace_contract(self, contract: PolicyContract) -> ModelConfig:
        """The same model config for another contract (e.g. the one of a dataset)."""
        d = self.to_dict()
        d["contract"] = contract.to_dict()
        return ModelConfig.from_dict(d)

    # ----------------------------------------------------------------------------- presets
    @classmethod
    def small(cls, contract: PolicyContract | None = None, vocab_size: int = 256) -> ModelConfig:
        """The bundled demo model (see module docstring); ~5 M parameters."""
        d_model = 128
        return cls(
            contract=contract or default_contract(),
            d_model=d_model,
            vocab_size=vocab_size,
            vision=VisionConfig(backbone="vit", patch_size=16, width=128, depth=2, num_heads=4),
            trunk=TrunkConfig(
                num_layers=4,
                num_heads=4,
                ffn_hidden=512,
                activation="gelu",
                moe_layers=(1, 3),
                moe=MoEConfig(d_model, 512, num_experts=8, top_k=2, activation="gelu"),
            ),
            reasoning=ReasoningConfig(num_layers=2, num_heads=4, ffn_hidden=256),
            action_head=ActionHeadConfig(
                num_layers=2, num_heads=4, ffn_hidden=256, activation="geglu",
                moe_layers=(0, 1), moe=adamoe_config(d_model, 256),
            ),
        )

    @classmethod
    def tiny(cls, contract: PolicyContract | None = None, vocab_size: int = 64) -> ModelConfig:
        """A few-thousand-parameter model for tests (same structure as small())."""
        d_model = 32
        return cls(
            contract=contract or tiny_contract(),
            d_model=d_model,
            vocab_size=vocab_size,
            vision=VisionConfig(backbone="vit", patch_size=8, width=32, depth=1, num_heads=2, mlp_ratio=2.0),
            trunk=TrunkConfig(
                num_layers=2, num_heads=2, ffn_hidden=64, moe_layers=(1,),
                moe=MoEConfig(d_model, 64, num_experts=4, top_k=2),
            ),
            reasoning=ReasoningConfig(num_layers=1, num_heads=2, ffn_hidden=64),
            action_head=ActionHeadConfig(
                num_layers=1, num_heads=2, ffn_hidden=32, activation="geglu",
                moe_layers=(0,), moe=adamoe_config(d_model, 32),
            ),
        )


def adamoe_config(d_model: int, d_hidden: int) -> MoEConfig:
    """AdaMoE action-expert FFN: 4 GeGLU experts top-1 + 1 shared expert, weights p_e + s_e.

    The routed weight is the raw router probability p_e plus the scale adapter s_e(x)
    (normalize_top_k=False): renormalising a single selected probability would make it 1 and
    leave the router without any task gradient. routed_expert_weight = 0.5 * num_experts
    keeps AdaMoE's 0.5/0.5 shared/routed mix at the upcycling point, where p_e = 1/num_experts,
    so the upcycled head equals the dense one exactly.
    """
    num_experts = 4
    return MoEConfig(
        d_model,
        d_hidden,
        num_experts=num_experts,
        top_k=1,
        num_shared_experts=1,
        shared_expert_weight=0.5,
        routed_expert_weight=0.5 * num_experts,
        normalize_top_k=False,
        scale_adapter=True,
        activation="geglu",
        z_loss_coef=1e-4,
    )


def default_contract() -> PolicyContract:
    """Contract of the demo setup: front + wrist cameras at 96x96, 6-joint arm + gripper, 10 Hz."""
    sensors = SensorContract(
        camera_names=("front", "wrist"),
        image_height=96,
        image_width=96,
        joint_names=tuple(f"joint_{i}" for i in range(1, 7)) + ("gripper",),
        control_rate_hz=10.0,
    )
    return PolicyContract(sensors=sensors, chunk_length=16, max_instruction_tokens=16, max_reasoning_tokens=24)


def tiny_contract() -> PolicyContract:
    """A small contract for tests: 2 cameras at 32x32, 3 joints, chunks of 4 at 10 Hz."""
    sensors = SensorContract(
        camera_names=("front", "wrist"),
        image_height=32,
        image_width=32,
        joint_names=("joint_1", "joint_2", "gripper"),
        control_rate_hz=10.0,
    )
    return PolicyContract(sensors=sensors, chunk_length=4, max_instruction_tokens=8, max_reasoning_tokens=10)


def _deep_merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
