"""Seeded random-weight checkpoints (no training) for tests, golden values and benchmarks.

    write_random_checkpoint("build/ckpt_tiny", preset="tiny", seed=0)

The model is `ModelConfig.<preset>()` with a tokenizer trained on a fixed corpus and a contract
with non-trivial normalisation statistics (so z-scoring is exercised). Routers and AdaMoE
scale adapters get "trained-looking" weights: router logits spread over several units, so
top-k decisions are decisive and expert loads uneven, as after MoE tuning (a freshly
initialised router is almost uniform, where routing is decided by rounding noise). The
reasoning head's EOS logit is pushed down (EOS_LOGIT_BIAS), so traces run to the buffer length:
benchmarks time the longest reasoning (R - 1 decoder steps) and parity checks compare the most
tokens.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch

from moe_vla_ros.contract import NormalizationStats, PolicyContract
from moe_vla_ros.export.config import ExportConfig
from moe_vla_ros.export.pipeline import export_policy
from moe_vla_ros.model.checkpoint import save_checkpoint
from moe_vla_ros.model.config import ModelConfig
from moe_vla_ros.model.moe import MoELayer
from moe_vla_ros.model.vla import MoEVLA
from moe_vla_ros.runtime.manifest import MANIFEST_FILE
from moe_vla_ros.runtime.sample_observations import INSTRUCTIONS
from moe_vla_ros.runtime.tokenization import EOS_ID, InstructionTokenizer

PRESETS = ("tiny", "small")
EOS_LOGIT_BIAS = -10.0
DEMO_CORPUS = (
    *INSTRUCTIONS,
    "pick up the cube and place it in the bin",
    "the red square is top left . moving there",
    "the blue square is bottom right . moving there",
    "reached the green square . closing gripper",
    # the simulator's task wordings (sim/tasks.py INSTRUCTION_TEMPLATES), so its instructions are
    # known words: the node holds on instructions with unknown words (safety.max_unread_words)
    "reach the red cube", "go to the green cube", "touch the blue cube",
    "move the gripper to the red cube", "push the green cube to the left", "slide the blue cube to the right",
    "move the red cube left", "lift the green cube", "pick up the blue cube", "raise the red cube",
    "grab the green cube and lift it",
)


def random_model(
    preset: str = "tiny", seed: int = 0, router_std: float = 1.0, contract: PolicyContract | None = None
) -> tuple[MoEVLA, InstructionTokenizer]:
    """(model, tokenizer) for `preset` with seeded random weights (see the module docstring).

    contract: the policy contract (e.g. the simulator's joints and cameras); None = the preset's.
    """
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    base = getattr(ModelConfig, preset)(contract=contract)
    contract = base.contract
    tokenizer = InstructionTokenizer.train(DEMO_CORPUS, contract.max_instruction_tokens, contract.max_reasoning_tokens)
    rng = np.random.default_rng(seed)
    j = contract.sensors.num_joints
    stats = NormalizationStats(
        state_mean=rng.uniform(-0.5, 0.5, j), state_std=rng.uniform(0.2, 0.8, j),
        action_mean=rng.uniform(-0.5, 0.5, j), action_std=rng.uniform(0.2, 0.8, j),
    )
    cfg = dataclasses.replace(
        base.replace_contract(dataclasses.replace(contract, normalization=stats)), vocab_size=tokenizer.vocab_size
    )
    torch.manual_seed(seed)
    model = MoEVLA(cfg, use_moe=True).eval()
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, MoELayer):
                torch.nn.init.normal_(layer.router.weight, std=router_std)
                if layer.scale_adapter is not None:
                    torch.nn.init.normal_(layer.scale_adapter.weight, std=0.05)
        model.reasoning.lm_head.bias[EOS_ID] = EOS_LOGIT_BIAS
    return model, tokenizer


def write_random_checkpoint(
    out_dir: str | os.PathLike, preset: str = "tiny", seed: int = 0, contract: PolicyContract | None = None
) -> Path:
    """Save `random_model(preset, seed, contract=contract)` as a checkpoint folder (safetensors +
    config + tokenizer)."""
    model, tokenizer = random_model(preset, seed, contract=contract)
    return save_checkpoint(model, out_dir, tokenizer, metadata={"kind": "random", "preset": preset, "seed": seed})


def export_demo_model(root: str | os.PathLike, preset: str = "tiny", seed: int = 0,
                      cfg: ExportConfig | None = None, contract: PolicyContract | None = None,
                      tag: str = "") -> tuple[Path, Path]:
    """(checkpoint folder, exported model folder) of a random `preset` model under `root`.

    Reuses an earlier export under the same root and tag (tests share one export per session;
    the benchmark builds its default model once). `cfg` is the ExportConfig of a fresh export;
    `contract` replaces the preset's contract (name the variant with `tag`).
    """
    root = Path(root)
    suffix = f"{preset}_{seed}{'_' + tag if tag else ''}"
    checkpoint, model = root / f"checkpoint_{suffix}", root / f"model_{suffix}"
    if not (model / MANIFEST_FILE).is_file():
        if not (checkpoint / "config.json").is_file():
            write_random_checkpoint(checkpoint, preset, seed, contract)
        export_policy(checkpoint, model, cfg)
    return checkpoint, model
