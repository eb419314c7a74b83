"""The three training stages of the MoE-VLA (after MoE-LLaVA's MoE-tuning):

1. dense warm-up  - the model is built with dense FFNs everywhere and trained end to end
                    (a frozen vision backbone, `VisionConfig.freeze_backbone`, stays frozen);
2. upcycle        - the FFNs of the layers the config marks as MoE (trunk and action head)
                    become MoE layers whose experts are copies of the trained FFN
                    (`upcycle_ffn`: zero router, so outputs are unchanged at this point);
3. MoE tuning     - vision encoder, trunk embeddings, trunk attention/norms and the trunk's
                    remaining dense FFNs are frozen; trunk MoE layers (experts, routers, scale
                    adapters), the reasoning decoder and the action head train. A fine-tuning
                    whose data brought new words (MoEVLA.grow_vocabulary) also trains their rows
                    of the instruction embedding, and only those (`learn_new_instruction_words`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from moe_vla_ros.model.vla import MoEVLA

STAGE_DENSE = "dense"
STAGE_MOE = "moe"


def dense_warmup_parameters(model: MoEVLA) -> list[nn.Parameter]:
    """Stage 1: every parameter that is not frozen by the config."""
    return [p for p in model.parameters() if p.requires_grad]


def upcycle_model(model: MoEVLA, noise_std: float = 0.0, seed: int | None = None) -> int:
    """Stage 2: upcycle the configured MoE layers in place; returns how many layers changed."""
    converted = model.upcycle(noise_std=noise_std, seed=seed)
    if not model.is_fully_moe:
        raise RuntimeError(f"after upcycling the model has {model.num_moe_layers} MoE layers, fewer than configured")
    return converted


def freeze_for_moe_tuning(model: MoEVLA) -> list[nn.Parameter]:
    """Stage 3: freeze everything except trunk MoE layers, reasoning decoder and action head.

    Returns the trainable parameters (in module order, for the optimizer).
    """
    model.requires_grad_(False)
    for block in model.trunk.blocks:
        if block.is_moe:
            block.ffn.requires_grad_(True)
    model.reasoning.requires_grad_(True)
    model.action_head.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def learn_new_instruction_words(model: MoEVLA, first_new_id: int) -> nn.Parameter:
    """Stage 3 after the vocabulary grew: the instruction embedding's rows from `first_new_id` on
    train, the known words' rows get no gradient. Returns the embedding weight [V, D]; give it to
    the optimizer without weight decay (decay would move the known rows too)."""
    weight = model.trunk.instruction_embed.weight  # [V, D]
    if not 0 < first_new_id < weight.shape[0]:
        raise ValueError(f"first_new_id must be in 1..{weight.shape[0] - 1}, got {first_new_id!r}")
    weight.requires_grad_(True)
    new_rows = torch.zeros(weight.shape[0], 1, dtype=weight.dtype, device=weight.device)  # [V, 1]
    new_rows[first_new_id:] = 1.0
    weight.register_hook(lambda grad: grad * new_rows)
    return weight


def cosine_lr(step: int, total_steps: int, base_lr: float, warmup_steps: int, min_ratio: float = 0.1) -> float:
    """Linear warm-up over `warmup_steps`, then cosine decay to `min_ratio * base_lr` at `total_steps`."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    return base_lr * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))
