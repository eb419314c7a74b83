"""Random inputs with the exact shapes and dtypes of a model config, e.g. for export dummies,
benchmarks and tests. Keys are `moe_vla_ros.model.vla.BATCH_KEYS`:

    images [B, C, 3, H, W] uint8, state [B, J] float32, instruction_ids/mask [B, L] int64,
    reasoning_ids/mask [B, R] int64 (random lengths in [0, R - 1]), actions [B, H, J] float32
"""

from __future__ import annotations

import torch

from moe_vla_ros.model.config import ModelConfig
from moe_vla_ros.runtime.tokenization import PAD_ID, UNK_ID


def example_batch(cfg: ModelConfig, batch_size: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random, well-formed batch for `cfg` (same seed -> same batch)."""
    g = torch.Generator().manual_seed(seed)
    c, s = cfg.contract, cfg.contract.sensors
    b, L, R, J = batch_size, c.max_instruction_tokens, c.max_reasoning_tokens, s.num_joints

    def padded(length: int, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = torch.randint(0, max_len + 1, (b,), generator=g)  # [B]
        mask = (torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)).long()  # [B, length]
        words = torch.randint(UNK_ID + 1, cfg.vocab_size, (b, length), generator=g)  # [B, length]
        return torch.where(mask.bool(), words, torch.full_like(words, PAD_ID)), mask

    instruction_ids, instruction_mask = padded(L, L)
    instruction_mask[:, 0] = 1  # every instruction has at least one word
    instruction_ids[:, 0] = torch.randint(UNK_ID + 1, cfg.vocab_size, (b,), generator=g)
    reasoning_ids, reasoning_mask = padded(R, R - 1)
    return {
        "images": torch.randint(0, 256, (b, len(s.camera_names), 3, s.image_height, s.image_width), generator=g,
                                dtype=torch.uint8),
        "state": torch.randn(b, J, generator=g),
        "instruction_ids": instruction_ids,
        "instruction_mask": instruction_mask,
        "reasoning_ids": reasoning_ids,
        "reasoning_mask": reasoning_mask,
        "actions": torch.randn(b, c.chunk_length, J, generator=g),
        "target_position": torch.rand(b, 3, generator=g) * 0.5,  # [B, 3] m
        "target_valid": torch.ones(b),
    }
