"""The inference pipeline both backends share: everything except running the four stages.

    validate -> stack images, z-score state, tokenise (cached per instruction)
      -> vision -> trunk -> [reasoning: greedy loop over the step function (runtime/decoding.py),
         only when asked / first call / instruction changed; else the cached trace]
      -> action head -> de-normalise to absolute targets [H, J] float64 + expert usage

A backend implements `_run_vision`, `_run_trunk`, `_reasoning_step` and `_run_action_head`
on numpy inputs; intermediate tokens may stay backend tensors (torch tensors, ORT arrays).
Because tokenisation, decoding, caching and post-processing are this one implementation, the
ONNX Runtime and torch backends can only differ in the stage numerics. Not thread-safe: one
policy serves one inference at a time.
"""

from __future__ import annotations

import abc
import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from moe_vla_ros.contract import PolicyContract
from moe_vla_ros.runtime.config import RuntimeConfig
from moe_vla_ros.runtime.decoding import greedy_decode
from moe_vla_ros.runtime.manifest import MoELayerSpec
from moe_vla_ros.runtime.preprocessing import denormalize_actions, normalize_state, stack_images
from moe_vla_ros.runtime.telemetry import StageTelemetry, layer_usages
from moe_vla_ros.runtime.tokenization import BOS_ID, PAD_ID, InstructionReading, RuntimeTokenizer
from moe_vla_ros.runtime.types import Observation, Policy, PolicyMetadata, PolicyOutput, Reasoning

StepFunction = Callable[[np.ndarray], np.ndarray]  # tokens [1, R] int64 -> logits [1, R, V]


class StagedPolicy(Policy):
    """Shared pipeline (see the module docstring).

    Args:
        contract: the model's policy contract.
        tokenizer: the model's tokenizer.
        moe_layers: MoE layers in telemetry order.
        cfg: runtime config (reasoning switches).
        metadata: what the backend reports about itself.
    """

    def __init__(self, contract: PolicyContract, tokenizer: RuntimeTokenizer, moe_layers: Sequence[MoELayerSpec],
                 cfg: RuntimeConfig, metadata: PolicyMetadata) -> None:
        self.contract = contract
        self.tokenizer = tokenizer
        self.moe_layers = tuple(moe_layers)
        self.cfg = cfg
        self._metadata = metadata
        self._reasoning: Reasoning | None = None
        self._reasoning_instruction: str | None = None
        self._closed = False

    # ----------------------------------------------------------------------------- backend stages
    @abc.abstractmethod
    def _run_vision(self, images: np.ndarray) -> Any:
        """images [1, C, 3, H, W] uint8 -> vision tokens [1, Nv, D] (backend tensor)."""

    @abc.abstractmethod
    def _run_trunk(self, vision_tokens: Any, instruction_ids: np.ndarray, instruction_mask: np.ndarray,
                   state: np.ndarray) -> tuple[Any, StageTelemetry]:
        """-> (trunk tokens [1, S, D] (backend tensor), telemetry)."""

    @abc.abstractmethod
    def _reasoning_step(self, trunk_tokens: Any) -> StepFunction:
        """The reasoning step with the trunk tokens bound: tokens [1, R] -> logits [1, R, V]."""

    @abc.abstractmethod
    def _run_action_head(self, trunk_tokens: Any, state: np.ndarray, reasoning_ids: np.ndarray,
                         reasoning_mask: np.ndarray) -> tuple[np.ndarray, StageTelemetry]:
        """-> (actions [1, H, J] action-normalised, telemetry)."""

    def _release(self) -> None:
        """Free backend resources (called once by close())."""

    # ----------------------------------------------------------------------------- Policy
    @property
    def metadata(self) -> PolicyMetadata:
        return self._metadata

    def update_metadata(self, **changes: Any) -> None:
        """Replace fields of the metadata (the loader adds what it learns after loading, e.g. verification)."""
        self._metadata = dataclasses.replace(self._metadata, **changes)

    def infer(self, observation: Observation, generate_reasoning: bool = True) -> PolicyOutput:
        return self.infer_with_router_logits(observation, generate_reasoning)[0]

    def infer_with_router_logits(
        self, observation: Observation, generate_reasoning: bool = True
    ) -> tuple[PolicyOutput, dict[str, np.ndarray]]:
        """infer(), plus each MoE layer's router logits [N, E] by layer name (for diagnostics/gates)."""
        if self._closed:
            raise RuntimeError("the policy is closed")
        start = time.perf_counter()
        images, state, ids, mask = self._model_inputs(observation)
        stages: dict[str, float] = {"preprocess": time.perf_counter() - start}

        t = time.perf_counter()
        vision_tokens = self._run_vision(images)
        stages["vision"] = time.perf_counter() - t
        t = time.perf_counter()
        trunk_tokens, trunk_telemetry = self._run_trunk(vision_tokens, ids[None], mask[None], state)
        stages["trunk"] = time.perf_counter() - t

        reasoning, is_new = self._reasoning_for(observation, trunk_tokens, generate_reasoning)
        if is_new and reasoning is not None:
            stages["reasoning"] = reasoning.latency_s
        if reasoning is None:
            r = self.contract.max_reasoning_tokens
            reasoning_ids, reasoning_mask = np.zeros((1, r), np.int64), np.zeros((1, r), np.int64)
        else:
            reasoning_ids, reasoning_mask = reasoning.token_ids[None], reasoning.token_mask[None]

        t = time.perf_counter()
        actions_norm, head_telemetry = self._run_action_head(trunk_tokens, state, reasoning_ids, reasoning_mask)
        stages["action_head"] = time.perf_counter() - t

        t = time.perf_counter()
        actions = denormalize_actions(actions_norm, self.contract.normalization)  # [H, J] float64
        telemetry = {"trunk": trunk_telemetry, "action_head": head_telemetry}
        usage = layer_usages(self.moe_layers, telemetry)
        logits = {s.name: np.asarray(telemetry[s.stage].router_logits[s.index]) for s in self.moe_layers}
        stages["postprocess"] = time.perf_counter() - t
        output = PolicyOutput(
            actions=actions, stamp=observation.stamp, reasoning=reasoning, reasoning_is_new=is_new,
            expert_usage=usage, latency_s=time.perf_counter() - start, stage_latency_s=stages,
        )
        return output, logits

    def reasoning_logits(self, observation: Observation, prefix_ids: Sequence[int]) -> np.ndarray:
        """Logits [V] of the reasoning token that follows BOS + `prefix_ids` for `observation`
        (diagnostics: how close a greedy choice was; runs vision and trunk again)."""
        r = self.contract.max_reasoning_tokens
        prefix = np.asarray(prefix_ids, dtype=np.int64).reshape(-1)  # [k]
        if prefix.size > r - 2:
            raise ValueError(f"a reasoning prefix holds at most {r - 2} tokens, got {prefix.size}")
        images, state, ids, mask = self._model_inputs(observation)
        trunk_tokens, _ = self._run_trunk(self._run_vision(images), ids[None], mask[None], state)
        tokens = np.full((1, r), PAD_ID, dtype=np.int64)  # [1, R]
        tokens[0, 0] = BOS_ID
        tokens[0, 1 : 1 + prefix.size] = prefix
        return np.asarray(self._reasoning_step(trunk_tokens)(tokens))[0, prefix.size]  # [V]

    def _model_inputs(self, observation: Observation) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Validated observation -> (images [1, C, 3, H, W] uint8, state [1, J] normalised,
        instruction ids [L], mask [L])."""
        observation.validate(self.contract)
        images = stack_images(observation.images, self.contract.sensors.camera_names)  # [1, C, 3, H, W]
        state = normalize_state(observation.joint_positions, self.contract.normalization)  # [1, J]
        ids, mask = self.tokenizer.encode(observation.instruction)  # [L], [L]
        return images, state, ids, mask

    def reset(self) -> None:
        self._reasoning = None
        self._reasoning_instruction = None

    def read_instruction(self, text: str) -> InstructionReading:
        return self.tokenizer.read(text)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._release()

    # ----------------------------------------------------------------------------- reasoning
    def _decode_reasoning(self, trunk_tokens: Any) -> tuple[np.ndarray, np.ndarray, bool]:
        """Greedy decoding here, one step graph call per token: (ids [R], mask [R], stopped at EOS)."""
        r = self.contract.max_reasoning_tokens
        result = greedy_decode(self._reasoning_step(trunk_tokens), 1, r, self.cfg.max_reasoning_tokens)
        ids, mask = result.ids[0], result.mask[0]  # [R], [R]
        return ids, mask, bool(result.steps > int(mask.sum()))

    def _reasoning_for(self, observation: Observation, trunk_tokens: Any, generate: bool) -> tuple[Reasoning | None, bool]:
        """(reasoning the actions follow, whether it was generated now)."""
        if not self.cfg.reasoning_enabled:
            return None, False
        stale = self._reasoning is None or self._reasoning_instruction != observation.instruction
        if not (generate or stale):
            return self._reasoning, False
        start = time.perf_counter()
        ids, mask, stopped_at_eos = self._decode_reasoning(trunk_tokens)
        num_tokens = int(mask.sum())
        reasoning = Reasoning(
            text=self.tokenizer.decode(ids[:num_tokens]), token_ids=ids, token_mask=mask, num_tokens=num_tokens,
            stopped_at_eos=stopped_at_eos, latency_s=time.perf_counter() - start, stamp=observation.stamp,
        )
        self._reasoning, self._reasoning_instruction = reasoning, observation.instruction
        return reasoning, True
