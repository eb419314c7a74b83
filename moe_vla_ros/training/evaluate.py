"""Held-out evaluation: action error in radians, reasoning token accuracy, expert usage.

Three action errors are reported, all mean absolute joint error over every chunk step (rad):

* `action_l1_rad`               - the head sees the ground-truth reasoning at t;
* `action_l1_rad_no_reasoning`  - the head sees empty reasoning (reasoning skipped);
* `action_l1_rad_generated`     - the head sees the model's own greedy reasoning, on
                                  `generated_samples` evenly spaced samples (greedy decoding is the
                                  slow part); `action_l1_rad_generated_subset_truth` is the first
                                  metric on the same samples, for comparison, and
                                  `reasoning_exact_match` the share of traces generated exactly;
* `action_l1_rad_episode_start` - the same at the first step of each episode (up to
                                  `generated_samples` of them), where the arm is at its start pose
                                  and only the image tells where the target is: the number that
                                  predicts closed-loop success, which the average hides.

With recorded targets the target probe's error is reported too (`target_error_cm`, the mean
Euclidean error of the predicted target object position; `target_error_cm_episode_start` at the
episode starts, where the arm's pose gives nothing away).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from moe_vla_ros.model.reasoning import IGNORE_INDEX, teacher_forcing
from moe_vla_ros.model.target_probe import target_error_m
from moe_vla_ros.model.vla import MoEVLA
from moe_vla_ros.training.data import VLADataset


def _l1_rad(pred: torch.Tensor, target: torch.Tensor, action_std: torch.Tensor) -> torch.Tensor:
    """Per-sample mean absolute joint error in radians: [B, H, J] x2, [J] -> [B]."""
    return ((pred - target).abs() * action_std).mean(dim=(1, 2))


def _eval_indices(num_samples: int, max_samples: int) -> torch.Tensor:
    """Evenly spaced sample indices [n], n = min(num_samples, max_samples)."""
    n = min(num_samples, max_samples)
    return torch.linspace(0, num_samples - 1, n).round().long().unique()


@torch.no_grad()
def evaluate(
    model: MoEVLA,
    data: VLADataset,
    batch_size: int = 64,
    max_samples: int = 512,
    generated_samples: int = 64,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Metrics of `model` on `data` (see the module docstring); restores the training mode."""
    was_training = model.training
    model.eval()
    action_std = torch.tensor(data.contract.normalization.action_std, device=device)  # [J]
    sums = {"action_l1_rad": 0.0, "action_l1_rad_no_reasoning": 0.0, "reasoning_loss": 0.0, "target_error_m": 0.0}
    correct = scored = count = targets_seen = 0
    trunk_load, head_load = [], []
    dropped = {"trunk": 0, "action_head": 0}  # token slots dropped by expert capacity, all layers
    indices = _eval_indices(len(data), max_samples)
    for start in range(0, len(indices), batch_size):
        batch = {k: v.to(device) for k, v in data.batch(indices[start : start + batch_size]).items()}
        b = batch["state"].shape[0]
        trunk, target = model.encode_batch_with_target(batch)  # TrunkOutput, [B, 3]
        inputs, targets = teacher_forcing(batch["reasoning_ids"], batch["reasoning_mask"])  # [B, R]
        logits = model.reasoning(trunk.tokens, inputs).logits  # [B, R, V]
        mask = targets != IGNORE_INDEX  # [B, R]
        correct += int(((logits.argmax(-1) == targets) & mask).sum())
        scored += int(mask.sum())
        sums["reasoning_loss"] += float(
            F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="sum")
        )
        head = model.action_head(trunk.tokens, batch["state"], batch["reasoning_ids"], batch["reasoning_mask"])
        sums["action_l1_rad"] += float(_l1_rad(head.actions, batch["actions"], action_std).sum())
        empty_ids, empty_mask = model.empty_reasoning(b, device)
        bare = model.action_head(trunk.tokens, batch["state"], empty_ids, empty_mask).actions  # [B, H, J]
        sums["action_l1_rad_no_reasoning"] += float(_l1_rad(bare, batch["actions"], action_std).sum())
        count += b
        valid = batch["target_valid"] > 0  # [B]
        if valid.any():
            errors = target_error_m(target[valid], batch["target_position"][valid])  # [b']
            sums["target_error_m"] += float(errors.sum())
            targets_seen += int(valid.sum())
        dropped["trunk"] += int(trunk.dropped_tokens.sum())
        dropped["action_head"] += int(head.dropped_tokens.sum())
        if trunk.expert_load.numel():
            trunk_load.append(trunk.expert_load * b)  # [M, E]
        if head.expert_load.numel():
            head_load.append(head.expert_load * b)  # [M, E]
    metrics: dict[str, Any] = {
        "samples": count,
        "action_l1_rad": sums["action_l1_rad"] / count,
        "action_l1_rad_no_reasoning": sums["action_l1_rad_no_reasoning"] / count,
        "reasoning_loss": sums["reasoning_loss"] / max(scored, 1),
        "reasoning_accuracy": correct / max(scored, 1),
        "trunk_expert_load": (torch.stack(trunk_load).sum(0) / count).tolist() if trunk_load else [],
        "action_head_expert_load": (torch.stack(head_load).sum(0) / count).tolist() if head_load else [],
        "trunk_dropped_tokens_per_sample": dropped["trunk"] / count,
        "action_head_dropped_tokens_per_sample": dropped["action_head"] / count,
    }
    if targets_seen:
        metrics["target_error_cm"] = 100.0 * sums["target_error_m"] / targets_seen
    if generated_samples > 0:
        subset = indices[_eval_indices(len(indices), generated_samples)]  # [n] evenly spaced
        metrics.update(_generated_metrics(model, data, subset, action_std, device))
        starts = torch.nonzero(data.step_in_episode == 0).flatten()  # [episodes]
        starts = starts[_eval_indices(len(starts), generated_samples)]
        start_metrics = _generated_metrics(model, data, starts, action_std, device)
        metrics["action_l1_rad_episode_start"] = start_metrics["action_l1_rad_generated"]
        if "target_error_cm_generated" in start_metrics:
            metrics["target_error_cm_episode_start"] = start_metrics["target_error_cm_generated"]
    model.train(was_training)
    return metrics


def _generated_metrics(
    model: MoEVLA, data: VLADataset, indices: torch.Tensor, action_std: torch.Tensor, device
) -> dict[str, float]:
    """Action error with the model's own greedy reasoning, the reasoning exact-match rate and (with
    recorded targets) the target probe's error."""
    batch = {k: v.to(device) for k, v in data.batch(indices).items()}
    trunk, target = model.encode_batch_with_target(batch)  # TrunkOutput, [B, 3]
    ids, mask = model.generate_reasoning(trunk.tokens)  # [B, R] x2
    generated = model.action_head(trunk.tokens, batch["state"], ids, mask).actions  # [B, H, J]
    truth = model.action_head(trunk.tokens, batch["state"], batch["reasoning_ids"], batch["reasoning_mask"]).actions
    true_ids = torch.where(batch["reasoning_mask"] != 0, batch["reasoning_ids"], torch.zeros_like(ids))  # [B, R]
    same_length = ((mask != 0) == (batch["reasoning_mask"] != 0)).all(dim=1)  # [B]
    exact = ((ids == true_ids).all(dim=1) & same_length).float().mean()
    metrics = {
        "action_l1_rad_generated": float(_l1_rad(generated, batch["actions"], action_std).mean()),
        "action_l1_rad_generated_subset_truth": float(_l1_rad(truth, batch["actions"], action_std).mean()),
        "reasoning_exact_match": float(exact),
    }
    valid = batch["target_valid"] > 0  # [B]
    if valid.any():
        errors = target_error_m(target[valid], batch["target_position"][valid])  # [b']
        metrics["target_error_cm_generated"] = 100.0 * float(errors.mean())
    return metrics
