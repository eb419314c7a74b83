"""Training samples from a DemoDataset: one sample per step t of every episode.

A sample (keys = `moe_vla_ros.model.vla.BATCH_KEYS`):

    images           uint8   [C, 3, H, W]  cameras at t in contract order, CHW
    state            float32 [J]           joint_position[t], z-scored with the state stats
    instruction_ids  int64   [L]           the episode instruction, padded (or, with instruction
                                           variants, one of its paraphrases with probability p)
    instruction_mask int64   [L]
    reasoning_ids    int64   [R]           reasoning text at t (no BOS/EOS), padded ("" -> all PAD)
    reasoning_mask   int64   [R]
    actions          float32 [H, J]        action[t], ..., action[t + H - 1], z-scored with the action
                                           stats; past the episode end the last action is repeated
    target_position  float32 [3]           the target object's position at t (m, base frame), zeros
    target_valid     float32 []            when the dataset does not record it (then target_valid = 0)
    backbone_features float32 [C, P, W]    only after `use_backbone_features`: a frozen backbone's
                                           features of `images` (training/feature_cache.py)

Chunk step k is action[t + k], the target commanded at step t + k, i.e. the target for time
t + k + 1: the first chunk entry is one control period after the observation, as the contract
says. Episodes are decoded once and kept in memory (uint8 images): C*3*H*W bytes per step.

The demonstrations come from our dataset format (data/dataset.py) or a LeRobotDataset v3.0
folder (data/lerobot/): `open_training_dataset` picks the reader. LeRobot data has no
`target_position` unless a feature carries it; without it the target probe is not trained
(target_valid = 0 everywhere) and VLADataset warns.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from moe_vla_ros.contract import NormalizationStats, PolicyContract
from moe_vla_ros.data.dataset import DemoDataset
from moe_vla_ros.data.lerobot.mapping import LeRobotMapping
from moe_vla_ros.data.lerobot.reader import LeRobotDemoDataset, open_demonstrations
from moe_vla_ros.model.vla import BACKBONE_FEATURES
from moe_vla_ros.runtime.tokenization import InstructionTokenizer
from moe_vla_ros.training.instruction_variants import InstructionVariantsConfig, instruction_variants

Demonstrations = DemoDataset | LeRobotDemoDataset
NO_TARGET_WARNING = (
    "the training data records no target_position (LeRobot datasets do not, unless a feature carries it): "
    "the target probe is not trained (off) and the model learns without its target estimate"
)


def open_training_dataset(
    root: str | Path, lerobot_map: LeRobotMapping | None = None, image_size: tuple[int, int] | None = None
) -> Demonstrations:
    """Our dataset (meta.json) or a LeRobot v3.0 folder (meta/info.json, read through `lerobot_map`,
    images resized to `image_size` when given, e.g. the fine-tuned model's)."""
    return open_demonstrations(root, lerobot_map, image_size)


def split_episodes(num_episodes: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Shuffle episode indices with `seed`; hold out round(val_fraction * n) (>= 1 if n >= 2 and fraction > 0)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    if num_episodes < 1:
        raise ValueError(f"the dataset has no episodes (num_episodes={num_episodes})")
    order = np.random.default_rng(seed).permutation(num_episodes).tolist()
    num_val = int(round(val_fraction * num_episodes))
    if val_fraction > 0 and num_episodes >= 2:
        num_val = min(max(num_val, 1), num_episodes - 1)
    return sorted(order[num_val:]), sorted(order[:num_val])


def normalization_from_episodes(dataset: Demonstrations, indices: Sequence[int]) -> NormalizationStats:
    """State/action mean and std over every step of the given episodes."""
    states, actions = [], []
    for i in indices:
        if hasattr(dataset, "state_action"):  # LeRobot: no image decoding
            state, action = dataset.state_action(i)
        else:
            episode = dataset.episode(i)
            state, action = episode.joint_position, episode.action
        states.append(state)
        actions.append(action)
    return NormalizationStats.from_arrays(np.concatenate(states), np.concatenate(actions))


class VLADataset(Dataset):
    """In-memory samples of the chosen episodes of `dataset` (see the module docstring).

    Args:
        dataset: the demonstrations; their sensor contract must match `contract.sensors`.
        contract: chunk length, token lengths and the normalisation stats to apply.
        tokenizer: encodes instructions and reasoning (lengths must match the contract).
        episode_indices: episodes to use (default: all).
        variants: instruction paraphrases shown instead of the recorded instruction with
            `variants.probability` (training only). Variants with a word the tokenizer does not
            know (or cut by the instruction length) are left out: a fresh tokenizer learns them
            from training/instruction_variants.vocabulary_texts. None or probability 0: off.
    """

    def __init__(
        self,
        dataset: Demonstrations,
        contract: PolicyContract,
        tokenizer: InstructionTokenizer,
        episode_indices: Sequence[int] | None = None,
        variants: InstructionVariantsConfig | None = None,
    ) -> None:
        dataset.contract.check_matches(contract.sensors, what="dataset", against="policy contract")
        lengths = (tokenizer.max_instruction_tokens, tokenizer.max_reasoning_tokens)
        if lengths != (contract.max_instruction_tokens, contract.max_reasoning_tokens):
            raise ValueError(f"tokenizer lengths {lengths} differ from the contract's token lengths")
        self.contract = contract
        indices = list(range(len(dataset))) if episode_indices is None else list(episode_indices)
        if not indices:
            raise ValueError("VLADataset needs at least one episode")
        norm = contract.normalization
        state_mean, state_std = np.asarray(norm.state_mean), np.asarray(norm.state_std)  # [J]
        action_mean, action_std = np.asarray(norm.action_mean), np.asarray(norm.action_std)  # [J]
        cams = contract.sensors.camera_names
        images, states, actions, instr_ids, instr_mask, reas_ids, reas_mask, chunk_rows = ([] for _ in range(8))
        targets, target_valid, step_index = [], [], []
        self.variants = variants if variants is not None and variants.enabled else None
        variant_rows: dict[str, tuple[int, int]] = {}  # instruction -> (first row, count) in the variant table
        variant_ids, variant_mask, variant_first, variant_count = [], [], [], []
        offset = 0
        for i in indices:
            ep = dataset.episode(i)
            t = len(ep)
            images.append(np.stack([ep.images[c] for c in cams], axis=1).transpose(0, 1, 4, 2, 3))  # [T, C, 3, H, W]
            states.append((ep.joint_position - state_mean) / state_std)  # [T, J]
            actions.append((ep.action - action_mean) / action_std)  # [T, J]
            ids, mask = tokenizer.encode(ep.instruction)  # [L]
            instr_ids.append(np.broadcast_to(ids, (t, ids.shape[0])))  # [T, L]
            instr_mask.append(np.broadcast_to(mask, (t, mask.shape[0])))  # [T, L]
            if self.variants is not None:
                if ep.instruction not in variant_rows:
                    texts = instruction_variants(ep.instruction, self.variants.per_instruction, self.variants.seed)
                    readable = [tokenizer.encode(text) for text in texts if not tokenizer.read(text).unread_words]  # [L] each
                    variant_rows[ep.instruction] = (len(variant_ids), len(readable))
                    for v_ids, v_mask in readable:
                        variant_ids.append(v_ids)
                        variant_mask.append(v_mask)
                first, count = variant_rows[ep.instruction]
                variant_first.append(np.full(t, first, np.int64))  # [T]
                variant_count.append(np.full(t, count, np.int64))  # [T]
            encoded = {text: tokenizer.encode_reasoning(text) for text in set(ep.reasoning or [""])}
            texts = ep.reasoning or [""] * t
            reas_ids.append(np.stack([encoded[s][0] for s in texts]))  # [T, R]
            reas_mask.append(np.stack([encoded[s][1] for s in texts]))  # [T, R]
            steps = np.arange(t)[:, None] + np.arange(contract.chunk_length)[None, :]  # [T, H]
            chunk_rows.append(offset + np.minimum(steps, t - 1))  # [T, H] global rows, last action repeated
            known = ep.target_position is not None
            targets.append(ep.target_position if known else np.zeros((t, 3), np.float32))  # [T, 3]
            target_valid.append(np.full(t, float(known), np.float32))  # [T]
            step_index.append(np.arange(t))  # [T]
            offset += t
        self.images = torch.from_numpy(np.ascontiguousarray(np.concatenate(images)))  # [N, C, 3, H, W]
        self.states = torch.from_numpy(np.concatenate(states).astype(np.float32))  # [N, J]
        self.step_actions = torch.from_numpy(np.concatenate(actions).astype(np.float32))  # [N, J]
        self.instruction_ids = torch.from_numpy(np.concatenate(instr_ids))  # [N, L]
        self.instruction_mask = torch.from_numpy(np.concatenate(instr_mask))  # [N, L]
        self.reasoning_ids = torch.from_numpy(np.concatenate(reas_ids))  # [N, R]
        self.reasoning_mask = torch.from_numpy(np.concatenate(reas_mask))  # [N, R]
        self.chunk_rows = torch.from_numpy(np.concatenate(chunk_rows))  # [N, H]
        self.target_position = torch.from_numpy(np.concatenate(targets).astype(np.float32))  # [N, 3]
        self.target_valid = torch.from_numpy(np.concatenate(target_valid))  # [N]
        self.step_in_episode = torch.from_numpy(np.concatenate(step_index))  # [N] step t of each sample
        self.has_target = bool(self.target_valid.any())
        if self.variants is not None:
            length = contract.max_instruction_tokens
            self.variant_ids = torch.from_numpy(np.stack(variant_ids) if variant_ids else np.zeros((1, length), np.int64))  # [V, L]
            self.variant_mask = torch.from_numpy(np.stack(variant_mask) if variant_mask else np.zeros((1, length), np.int64))  # [V, L]
            self.variant_first = torch.from_numpy(np.concatenate(variant_first))  # [N]
            self.variant_count = torch.from_numpy(np.concatenate(variant_count))  # [N]
            self.variant_generator = torch.Generator().manual_seed(self.variants.seed)  # which paraphrase, when
        if not self.has_target:
            warnings.warn(NO_TARGET_WARNING, stacklevel=2)
        self.episode_indices = indices
        self.backbone_features: np.ndarray | None = None  # [N, C, P, W] once set by use_backbone_features

    def use_backbone_features(self, features: np.ndarray) -> None:
        """Batches carry BACKBONE_FEATURES rows of `features` [N, C, P, W] (a frozen backbone's
        features of `self.images`: training/feature_cache.py); the model then skips the backbone."""
        if features.shape[0] != len(self):
            raise ValueError(f"backbone features have {features.shape[0]} rows, the dataset {len(self)} samples")
        self.backbone_features = features

    @property
    def episode_starts(self) -> np.ndarray:
        """[E] the first sample (row) of each episode, in row order."""
        return np.flatnonzero(self.step_in_episode.numpy() == 0)

    def __len__(self) -> int:
        return int(self.states.shape[0])

    def batch(self, indices: torch.Tensor | Sequence[int]) -> dict[str, torch.Tensor]:
        """Samples `indices` stacked along a new batch dimension (vectorised, no collate)."""
        idx = torch.as_tensor(indices, dtype=torch.long)  # [B]
        instruction_ids, instruction_mask = self._instructions(idx)  # [B, L], [B, L]
        batch = {
            "images": self.images[idx],  # [B, C, 3, H, W]
            "state": self.states[idx],  # [B, J]
            "instruction_ids": instruction_ids,  # [B, L]
            "instruction_mask": instruction_mask,  # [B, L]
            "reasoning_ids": self.reasoning_ids[idx],  # [B, R]
            "reasoning_mask": self.reasoning_mask[idx],  # [B, R]
            "actions": self.step_actions[self.chunk_rows[idx]],  # [B, H, J]
            "target_position": self.target_position[idx],  # [B, 3]
            "target_valid": self.target_valid[idx],  # [B]
        }
        if self.backbone_features is not None:
            rows = np.ascontiguousarray(self.backbone_features[idx.numpy()], dtype=np.float32)  # [B, C, P, W]
            batch[BACKBONE_FEATURES] = torch.from_numpy(rows)
        return batch

    def _instructions(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Instruction ids and mask of samples `idx` [B]: the recorded ones, or with instruction
        variants each one replaced by a random paraphrase with the configured probability."""
        ids, mask = self.instruction_ids[idx], self.instruction_mask[idx]  # [B, L]
        if self.variants is None:
            return ids, mask
        count = self.variant_count[idx]  # [B]
        draw = torch.rand(idx.shape[0], 2, generator=self.variant_generator)  # [B, 2]
        use = (draw[:, 0] < self.variants.probability) & (count > 0)  # [B]
        row = self.variant_first[idx] + (draw[:, 1] * count).long()  # [B]
        row = row.clamp(max=self.variant_ids.shape[0] - 1)
        return (torch.where(use[:, None], self.variant_ids[row], ids),
                torch.where(use[:, None], self.variant_mask[row], mask))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.batch([i]).items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """Batched fetch for torch DataLoader (use collate_fn=lambda b: b)."""
        return self.batch(indices)


def iterate_batches(
    num_samples: int, batch_size: int, generator: torch.Generator, weights: torch.Tensor | None = None
):
    """Endless index batches [B], reproducible with `generator`.

    Without `weights`: every sample once per epoch, reshuffled every epoch. With `weights` [N]
    (non-negative, not all 0): each batch is drawn with replacement, sample i with probability
    proportional to weights[i].
    """
    if num_samples < 1 or batch_size < 1:
        raise ValueError(f"need num_samples >= 1 and batch_size >= 1, got {num_samples}, {batch_size}")
    if weights is not None:
        if weights.shape != (num_samples,) or bool((weights < 0).any()) or float(weights.sum()) <= 0:
            raise ValueError(f"weights must be {num_samples} non-negative numbers, not all 0")
        while True:
            yield torch.multinomial(weights.double(), batch_size, replacement=True, generator=generator)
    while True:
        order = torch.randperm(num_samples, generator=generator)  # [N]
        if num_samples <= batch_size:
            yield order
            continue
        for start in range(0, num_samples - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def start_weights(step_in_episode: torch.Tensor, oversampling: float, start_steps: int) -> torch.Tensor | None:
    """Sampling weights [N]: `oversampling` for steps < `start_steps`, else 1; None when uniform."""
    if oversampling == 1.0:
        return None
    return torch.where(step_in_episode < start_steps, float(oversampling), 1.0).double()  # [N]
