"""MoEVLA: vision encoder -> MoE trunk -> (reasoning decoder) -> AdaMoE action head.

The four submodules are the four exported graphs; each takes and returns tensors only:

    vision       images [B, C, 3, H, W] uint8                          -> VisionOutput(tokens [B, Nv, D])
    trunk        vision tokens, instruction ids/mask [B, L], state [B, J] -> TrunkOutput(tokens [B, S, D], telemetry)
    reasoning    trunk tokens [B, S, D], tokens [B, R] int64            -> ReasoningStepOutput(logits [B, R, V])
    action_head  trunk tokens, state, reasoning ids/mask [B, R]         -> ActionHeadOutput(actions [B, H, J], telemetry)

`state` is z-scored with the contract's state stats; `actions` are absolute joint targets
z-scored with the action stats (see action_head.py). Batches for `compute_loss` have the keys
BATCH_KEYS, as produced by `moe_vla_ros.training.data.VLADataset` (and `examples.example_batch`);
with BACKBONE_FEATURES (a frozen backbone's features of the images, computed once per dataset:
training/feature_cache.py) the vision backbone is skipped.

Runtime sequence per control step: vision -> trunk -> (every few steps: greedy reasoning with
`decoding.greedy_decode` over the reasoning step) -> action head with the latest reasoning.

Training stages (see moe_vla_ros/training/stages.py): build with `use_moe=False` (dense
warm-up), then `upcycle()` turns the FFNs of the configured MoE layers into MoE layers that
start out equal to the dense ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from moe_vla_ros.model.action_head import ActionHead, ActionHeadOutput
from moe_vla_ros.model.config import ModelConfig
from moe_vla_ros.model.reasoning import IGNORE_INDEX, ReasoningDecoder, teacher_forcing
from moe_vla_ros.model.target_probe import target_loss
from moe_vla_ros.model.trunk import Trunk, TrunkOutput
from moe_vla_ros.model.vision import VisionEncoder

BATCH_KEYS = ("images", "state", "instruction_ids", "instruction_mask", "reasoning_ids", "reasoning_mask", "actions")
TARGET_KEYS = ("target_position", "target_valid")  # optional: the target probe's supervision
BACKBONE_FEATURES = "backbone_features"  # optional: [B, C, P, W] = vision.backbone_features(images)


class LossOutput(NamedTuple):
    """compute_loss result: `total` is differentiable, the rest are detached for logging."""

    total: Tensor  # [] weighted sum of the terms below
    action: Tensor  # [] L1 or MSE on normalised action chunks
    reasoning: Tensor  # [] token cross-entropy (teacher forcing), EOS included
    moe_aux: Tensor  # [] weighted MoE aux losses (trunk + head)
    reasoning_accuracy: Tensor  # [] argmax accuracy on the reasoning target tokens
    target: Tensor  # [] target-probe loss (0 when the batch has no recorded targets)


def _grow_rows(parameter: nn.Parameter, rows: int) -> None:
    """Append rows to `parameter` ([V, ...]) in place, each the mean of the existing rows."""
    old = parameter.data  # [V, ...]
    extra = old.mean(dim=0, keepdim=True).expand(rows - old.shape[0], *old.shape[1:])  # [rows - V, ...]
    parameter.data = torch.cat([old, extra], dim=0)  # [rows, ...]


class MoEVLA(nn.Module):
    """The whole policy. Args: cfg: the model config; use_moe: build MoE layers now (see module doc)."""

    def __init__(self, cfg: ModelConfig, use_moe: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.vision = VisionEncoder(cfg)
        self.trunk = Trunk(cfg, use_moe=use_moe)
        self.reasoning = ReasoningDecoder(cfg)
        self.action_head = ActionHead(cfg, use_moe=use_moe)

    # ----------------------------------------------------------------------------- structure
    @property
    def num_moe_layers(self) -> int:
        return self.trunk.num_moe_layers + self.action_head.num_moe_layers

    @property
    def is_fully_moe(self) -> bool:
        """True when every layer the config marks as MoE is a MoE layer (checkpoints require it)."""
        expected = len(self.cfg.trunk.moe_layers) + len(self.cfg.action_head.moe_layers)
        return self.num_moe_layers == expected

    def upcycle(self, noise_std: float = 0.0, seed: int | None = None) -> int:
        """Upcycle the dense FFNs of the configured MoE layers (trunk and head); returns how many."""
        head_seed = None if seed is None else seed + 1000
        return self.trunk.upcycle(noise_std, seed) + self.action_head.upcycle(noise_std, head_seed)

    def word_tables(self) -> dict[str, nn.Module]:
        """The modules with one row per vocabulary word: {name: nn.Embedding or the LM head's nn.Linear}."""
        return {"trunk.instruction_embed": self.trunk.instruction_embed,
                "reasoning.token_embed": self.reasoning.token_embed,
                "reasoning.lm_head": self.reasoning.lm_head,
                "action_head.reasoning_embed": self.action_head.reasoning_embed}

    def grow_vocabulary(self, vocab_size: int) -> None:
        """Give every word table `vocab_size` rows (the tokenizer appended words:
        InstructionTokenizer.with_words). Known ids keep their rows; a new row starts at the mean
        of the known rows (weights and LM-head biases), as transformers' resize_token_embeddings
        does, so a new word reads as an average word and is never the decoder's favourite."""
        old = self.cfg.vocab_size
        if vocab_size < old:
            raise ValueError(f"vocabulary can only grow: {old} -> {vocab_size}")
        for table in self.word_tables().values():
            _grow_rows(table.weight, vocab_size)  # weight [V, D]
            if getattr(table, "bias", None) is not None:
                _grow_rows(table.bias, vocab_size)  # bias [V]
            if isinstance(table, nn.Embedding):
                table.num_embeddings = vocab_size
            else:
                table.out_features = vocab_size
        self.cfg = dataclasses.replace(self.cfg, vocab_size=vocab_size)

    def set_moe_formulation(self, name: str) -> None:
        """Use the "sparse" (loop over experts) or "dense" (static shapes) form in every MoE layer."""
        for module in self.modules():
            if hasattr(module, "set_formulation"):
                module.set_formulation(name)

    def parameter_counts(self) -> dict[str, int]:
        """Total parameters and parameters active per token (routed experts counted top_k of E)."""
        total = sum(p.numel() for p in self.parameters())
        inactive = 0
        for part in (self.trunk, self.action_head):
            moe = part.cfg.moe
            for block in part.blocks:
                if block.is_moe:
                    per_expert = sum(p[0].numel() for p in block.ffn.experts.parameters())
                    inactive += per_expert * (moe.num_experts - moe.top_k)
        return {"total": total, "active": total - inactive}

    # ----------------------------------------------------------------------------- inference
    def encode(self, images: Tensor, instruction_ids: Tensor, instruction_mask: Tensor, state: Tensor) -> TrunkOutput:
        """Vision + trunk: images [B, C, 3, H, W] uint8, ids/mask [B, L], state [B, J] -> TrunkOutput."""
        return self.trunk(self.vision(images).tokens, instruction_ids, instruction_mask, state)

    def encode_with_target(
        self, images: Tensor, instruction_ids: Tensor, instruction_mask: Tensor, state: Tensor
    ) -> tuple[TrunkOutput, Tensor]:
        """`encode` plus the target probe's position estimate [B, 3] (units of TARGET_SCALE_M)."""
        return self._trunk_with_target(self.vision(images).tokens, instruction_ids, instruction_mask, state)

    def encode_batch_with_target(self, batch: Mapping[str, Tensor]) -> tuple[TrunkOutput, Tensor]:
        """`encode_with_target` of a training batch: from its BACKBONE_FEATURES when it has them
        (the backbone is skipped), else from its images."""
        if BACKBONE_FEATURES in batch:
            vision_tokens = self.vision.tokens_from_features(batch[BACKBONE_FEATURES]).tokens  # [B, Nv, D]
        else:
            vision_tokens = self.vision(batch["images"]).tokens  # [B, Nv, D]
        return self._trunk_with_target(vision_tokens, batch["instruction_ids"], batch["instruction_mask"], batch["state"])

    def _trunk_with_target(
        self, vision_tokens: Tensor, instruction_ids: Tensor, instruction_mask: Tensor, state: Tensor
    ) -> tuple[TrunkOutput, Tensor]:
        target = self.trunk.estimate_target(vision_tokens, instruction_ids, instruction_mask)  # [B, 3]
        return self.trunk(vision_tokens, instruction_ids, instruction_mask, state, target), target

    @torch.no_grad()
    def generate_reasoning(self, trunk_tokens: Tensor, max_new_tokens: int | None = None) -> tuple[Tensor, Tensor]:
        """Greedy reasoning from trunk tokens [B, S, D] -> (ids [B, R] int64, mask [B, R] int64)."""
        result = self.reasoning.generate(trunk_tokens, max_new_tokens)
        device = trunk_tokens.device
        return torch.from_numpy(result.ids).to(device), torch.from_numpy(result.mask).to(device)

    def empty_reasoning(self, batch_size: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """(ids, mask) [B, R] meaning "no reasoning": the head attends to the trunk only."""
        shape = (batch_size, self.cfg.contract.max_reasoning_tokens)
        return torch.zeros(shape, dtype=torch.long, device=device), torch.zeros(shape, dtype=torch.long, device=device)

    def predict_actions(
        self,
        images: Tensor,
        instruction_ids: Tensor,
        instruction_mask: Tensor,
        state: Tensor,
        reasoning_ids: Tensor | None = None,
        reasoning_mask: Tensor | None = None,
    ) -> ActionHeadOutput:
        """One action chunk. Reasoning None -> empty reasoning (pass generated/cached ids to use it)."""
        trunk = self.encode(images, instruction_ids, instruction_mask, state)
        if reasoning_ids is None or reasoning_mask is None:
            reasoning_ids, reasoning_mask = self.empty_reasoning(state.shape[0], state.device)
        return self.action_head(trunk.tokens, state, reasoning_ids, reasoning_mask)

    # ----------------------------------------------------------------------------- training
    def compute_loss(self, batch: Mapping[str, Tensor]) -> LossOutput:
        """Action loss + reasoning cross-entropy + weighted MoE aux losses + target probe (LossConfig).

        batch: images [B, C, 3, H, W] uint8, state [B, J], instruction_ids/mask [B, L],
        reasoning_ids/mask [B, R] (ground truth at t), actions [B, H, J] (normalised); optional
        target_position [B, 3] (m, base frame) with target_valid [B] (see target_probe.py).
        """
        missing = [k for k in BATCH_KEYS if k not in batch]
        if missing:
            raise KeyError(f"batch lacks {missing}")
        lcfg = self.cfg.loss
        trunk, predicted_target = self.encode_batch_with_target(batch)  # TrunkOutput, [B, 3]

        inputs, targets = teacher_forcing(batch["reasoning_ids"], batch["reasoning_mask"])  # [B, R] x2
        logits = self.reasoning(trunk.tokens, inputs).logits  # [B, R, V]
        reasoning_loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
        scored = targets != IGNORE_INDEX  # [B, R]
        correct = (logits.argmax(-1) == targets) & scored  # [B, R]
        accuracy = correct.sum() / scored.sum().clamp(min=1)

        head_mask = batch["reasoning_mask"]  # [B, R]
        if self.training and lcfg.reasoning_dropout > 0:
            keep = torch.rand(head_mask.shape[0], 1, device=head_mask.device) >= lcfg.reasoning_dropout  # [B, 1]
            head_mask = head_mask * keep.to(head_mask.dtype)  # [B, R]
        head = self.action_head(trunk.tokens, batch["state"], batch["reasoning_ids"], head_mask)
        if lcfg.action_loss == "l1":
            action_loss = F.l1_loss(head.actions, batch["actions"])
        else:
            action_loss = F.mse_loss(head.actions, batch["actions"])

        moe_aux = trunk.aux_loss + head.aux_loss
        total = lcfg.action_weight * action_loss + lcfg.reasoning_weight * reasoning_loss + lcfg.moe_weight * moe_aux
        probe_loss = torch.zeros((), device=total.device)
        if lcfg.target_weight > 0 and all(k in batch for k in TARGET_KEYS):
            probe_loss = target_loss(predicted_target, batch["target_position"], batch["target_valid"])
            total = total + lcfg.target_weight * probe_loss
        return LossOutput(
            total, action_loss.detach(), reasoning_loss.detach(), moe_aux.detach(), accuracy.detach(), probe_loss.detach()
        )
