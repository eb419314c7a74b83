"""The robot-side policy interface: observations in, action chunks (+ reasoning) out.

Backends (ONNX Runtime, PyTorch eager) implement `Policy`; the ROS node, the simulator
evaluation and the bag evaluator only see this interface. numpy only: no torch, no rclpy.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from moe_vla_ros.contract import PolicyContract
from moe_vla_ros.errors import BadInputError

if TYPE_CHECKING:
    from moe_vla_ros.runtime.tokenization import InstructionReading


class ObservationError(BadInputError):
    """An observation does not fit the policy contract (shape, dtype, NaN, missing camera)."""


@dataclass(frozen=True)
class Observation:
    """One synchronised observation, already in the contract's layout.

    Attributes:
        images: camera name -> uint8 RGB image [H, W, 3] at the contract's image size.
        joint_positions: float [J] joint positions in contract order and unit (rad).
        instruction: the current language instruction.
        stamp: observation time in seconds (the camera's header stamp).
    """

    images: Mapping[str, np.ndarray]
    joint_positions: np.ndarray
    instruction: str
    stamp: float = 0.0

    def validate(self, contract: PolicyContract) -> None:
        """Raise ObservationError naming the first problem; a command must never come from bad data."""
        s = contract.sensors
        missing = [c for c in s.camera_names if c not in self.images]
        if missing:
            raise ObservationError(f"observation lacks cameras {missing} (has {sorted(self.images)})")
        want = (s.image_height, s.image_width, 3)
        for cam in s.camera_names:
            img = self.images[cam]
            if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.shape != want:
                got = (getattr(img, "dtype", type(img)), getattr(img, "shape", None))
                raise ObservationError(f"camera {cam!r}: expected uint8 {want}, got {got[0]} {got[1]}")
        q = np.asarray(self.joint_positions)
        if q.shape != (s.num_joints,):
            raise ObservationError(f"joint_positions must have shape ({s.num_joints},), got {q.shape}")
        if not np.all(np.isfinite(q)):
            bad = [s.joint_names[i] for i in np.flatnonzero(~np.isfinite(q))]
            raise ObservationError(f"joint_positions has NaN/inf for joints {bad}")
        if not self.instruction or not self.instruction.strip():
            raise ObservationError("instruction is empty")


@dataclass(frozen=True)
class LayerUsage:
    """Expert usage of one MoE layer for one inference (maps to moe_vla_msgs/LayerExpertUsage)."""

    layer_name: str
    expert_load: np.ndarray  # [E] fraction of routed token slots per expert, sums to 1
    router_entropy: float  # mean per-token router entropy, nats
    num_tokens: int
    dropped_tokens: int = 0


@dataclass(frozen=True)
class Reasoning:
    """A generated reasoning trace."""

    text: str
    token_ids: np.ndarray  # [R] int64, PAD-padded
    token_mask: np.ndarray  # [R] int64, 1 where a token was generated
    num_tokens: int
    stopped_at_eos: bool
    latency_s: float
    stamp: float  # stamp of the observation it was generated from


@dataclass(frozen=True)
class PolicyOutput:
    """Result of one inference.

    Attributes:
        actions: float64 [H, J] absolute joint-position targets (contract order, rad); step i is
            meant for time stamp + (i + 1) / control_rate_hz.
        stamp: stamp of the observation the chunk was computed from.
        reasoning: the reasoning the actions followed (freshly generated or reused).
        reasoning_is_new: True when this inference generated `reasoning`.
        expert_usage: per MoE layer usage of this inference (trunk + action head).
        latency_s: wall time of the whole inference.
        stage_latency_s: wall time per stage ("vision", "trunk", "reasoning", "action_head", ...).
    """

    actions: np.ndarray
    stamp: float
    reasoning: Reasoning | None
    reasoning_is_new: bool
    expert_usage: tuple[LayerUsage, ...]
    latency_s: float
    stage_latency_s: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PolicyMetadata:
    """What a loaded policy is and how it runs (reported in PolicyStatus)."""

    model_id: str
    backend: str  # "onnxruntime" | "torch"
    execution_providers: tuple[str, ...]  # actually in use, e.g. ("CPUExecutionProvider",)
    cpu_fallback: bool  # configured accelerators could not be used
    formulation: str = ""  # MoE formulation of the expert graph ("sparse" | "dense")
    # graph stage -> {provider: nodes it ran} from one profiled run at load (ONNX Runtime backend)
    provider_placement: Mapping[str, Mapping[str, int]] = field(default_factory=dict, hash=False, compare=False)
    # on-target verification against the folder's golden outputs (runtime/golden.py, loader.py);
    # empty when not asked for: "status" ("passed" | "fallback" | "unavailable"), "variant",
    # "requested", "fallbacks" (reasons), "metrics", "thresholds", "seconds", "summary"
    verification: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)


class Policy(abc.ABC):
    """infer(observation) -> action chunk (+ reasoning); reset() between episodes/instructions."""

    contract: PolicyContract

    @property
    @abc.abstractmethod
    def metadata(self) -> PolicyMetadata: ...

    @abc.abstractmethod
    def infer(self, observation: Observation, generate_reasoning: bool = True) -> PolicyOutput:
        """Compute an action chunk. With generate_reasoning=False the last reasoning of the same
        instruction is reused (reasoning runs at a lower rate than actions); the first call after
        reset() or an instruction change always generates."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget reasoning and any per-episode state."""

    def read_instruction(self, text: str) -> InstructionReading | None:
        """Which words of `text` the model cannot read (unknown, or past its instruction length);
        None when this policy cannot tell (the runner then does not check)."""
        return None

    def close(self) -> None:
        """Free sessions/models. Idempotent."""
