"""Checkpoints: safetensors weights + JSON config (never pickle).

A checkpoint folder holds::

    model.safetensors       every parameter of MoEVLA (MoE layers included)
    config.json             {"format", "version", "model": ModelConfig.to_dict() (contract
                            included), "metadata": {...free-form, e.g. training summary}}
    tokenizer.json          the instruction/reasoning tokenizer (InstructionTokenizer.save)
    tokenizer_config.json

Loading checks the checkpoint's sensor contract against the one the caller expects (joint
names, cameras, image size, control rate) and raises `ContractError` naming every difference.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

from moe_vla_ros.contract import ContractError, SensorContract
from moe_vla_ros.errors import BadInputError
from moe_vla_ros.model.config import ModelConfig
from moe_vla_ros.model.vla import MoEVLA
from moe_vla_ros.runtime.tokenization import InstructionTokenizer
from moe_vla_ros.validation import read_json

FORMAT_NAME = "moe_vla_checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class CheckpointError(BadInputError):
    """A checkpoint folder is missing files or holds something this version cannot read."""


def save_checkpoint(
    model: MoEVLA,
    directory: str | os.PathLike,
    tokenizer: InstructionTokenizer | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write `model` (and `tokenizer`) to `directory` (created if needed); returns the folder."""
    if not model.is_fully_moe:
        raise CheckpointError(
            f"model has {model.num_moe_layers} MoE layers but its config marks "
            f"{len(model.cfg.trunk.moe_layers) + len(model.cfg.action_head.moe_layers)}: upcycle before saving"
        )
    cfg = model.cfg
    if tokenizer is not None:
        _check_tokenizer(tokenizer, cfg)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_model(model, str(directory / WEIGHTS_FILE), metadata={"format": FORMAT_NAME, "version": str(FORMAT_VERSION)})
    config = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "model": cfg.to_dict(), "metadata": metadata or {}}
    tmp = directory / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(config, indent=1))
    os.replace(tmp, directory / CONFIG_FILE)
    if tokenizer is not None:
        tokenizer.save(directory)
    return directory


def read_checkpoint_config(directory: str | os.PathLike) -> tuple[ModelConfig, dict[str, Any]]:
    """(ModelConfig, metadata) from `directory/config.json`."""
    path = Path(directory) / CONFIG_FILE
    raw = read_json(path, f"{directory} is not a checkpoint: {path} is missing", error=CheckpointError)
    if raw.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: format is {raw.get('format')!r}, expected {FORMAT_NAME!r}")
    if raw.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: version {raw.get('version')!r} is not supported (expected {FORMAT_VERSION})")
    return ModelConfig.from_dict(raw["model"]), dict(raw.get("metadata", {}))


def load_checkpoint(
    directory: str | os.PathLike,
    expected_contract: SensorContract | None = None,
    device: str | torch.device = "cpu",
) -> MoEVLA:
    """Build the model from config.json, load model.safetensors (strict), return it in eval mode.

    Raises ContractError when `expected_contract` differs from the checkpoint's sensor contract,
    CheckpointError when files are missing or malformed.
    """
    directory = Path(directory)
    cfg, _ = read_checkpoint_config(directory)
    if expected_contract is not None:
        if not isinstance(expected_contract, SensorContract):
            raise TypeError(f"expected_contract must be a SensorContract, got {type(expected_contract).__name__}")
        cfg.contract.sensors.check_matches(expected_contract, what=f"checkpoint {directory}", against="expected contract")
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{directory} has no {WEIGHTS_FILE}")
    # The weights come from the file: skip downloading/copying pretrained backbone weights.
    build_cfg = dataclasses.replace(cfg, vision=dataclasses.replace(cfg.vision, pretrained=False))
    model = MoEVLA(build_cfg, use_moe=True)
    model.cfg = cfg
    try:
        missing, unexpected = load_model(model, str(weights), strict=False, device=str(device))
    except RuntimeError as e:  # shape mismatch between file and config
        raise CheckpointError(f"{weights} does not fit the model of config.json: {e}") from None
    if missing or unexpected:
        raise CheckpointError(
            f"{weights} does not fit the model of config.json: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    return model.to(device).eval()


def load_tokenizer(directory: str | os.PathLike) -> InstructionTokenizer:
    """The tokenizer saved in a checkpoint folder (no torch needed: InstructionTokenizer.load)."""
    return InstructionTokenizer.load(directory)


def _check_tokenizer(tokenizer: InstructionTokenizer, cfg: ModelConfig) -> None:
    if tokenizer.vocab_size != cfg.vocab_size:
        raise CheckpointError(f"tokenizer has {tokenizer.vocab_size} tokens, the model config {cfg.vocab_size}")
    lengths = (tokenizer.max_instruction_tokens, tokenizer.max_reasoning_tokens)
    want = (cfg.contract.max_instruction_tokens, cfg.contract.max_reasoning_tokens)
    if lengths != want:
        raise ContractError(f"tokenizer pads to (instruction, reasoning) = {lengths}, the contract to {want}")
