"""TorchPolicy: eager PyTorch from the safetensors checkpoint, for debugging and parity checks.

Loads either an exported model folder (manifest.json; its `checkpoint/` subfolder, checksums
verified like the ONNX backend does) or a plain checkpoint folder (config.json +
model.safetensors + tokenizer files). Shares the whole pipeline with OnnxRuntimePolicy
(staged_policy.py), so both produce the same reasoning and actions up to float rounding.

torch is imported lazily, inside this module's functions: importing moe_vla_ros.runtime never
imports torch; only choosing backend="torch" does.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from moe_vla_ros.contract import SensorContract
from moe_vla_ros.runtime.config import RuntimeConfig
from moe_vla_ros.runtime.manifest import MANIFEST_FILE, ModelLoadError, MoELayerSpec, read_manifest
from moe_vla_ros.runtime.staged_policy import StagedPolicy, StepFunction
from moe_vla_ros.runtime.telemetry import StageTelemetry
from moe_vla_ros.runtime.tokenization import RuntimeTokenizer, TokenizerLoadError
from moe_vla_ros.runtime.types import PolicyMetadata

if TYPE_CHECKING:
    from moe_vla_ros.model.config import ModelConfig
    from moe_vla_ros.model.vla import MoEVLA

logger = logging.getLogger(__name__)

BACKEND_NAME = "torch"


def moe_layer_specs(cfg: ModelConfig) -> tuple[MoELayerSpec, ...]:
    """MoE layers of a model config in telemetry order: trunk blocks, then action-head blocks."""
    specs = []
    parts = (("trunk", cfg.trunk, cfg.num_trunk_tokens), ("action_head", cfg.action_head, cfg.contract.chunk_length))
    for stage, part, num_tokens in parts:
        for index, block in enumerate(part.moe_layers):
            moe = part.moe
            specs.append(MoELayerSpec(
                name=f"{stage}.blocks.{block}.ffn", stage=stage, index=index, num_experts=moe.num_experts,
                top_k=moe.top_k, router=moe.router, capacity_factor=moe.capacity_factor, num_tokens=num_tokens,
            ))
    return tuple(specs)


def _checkpoint_dir(path: Path, cfg: RuntimeConfig) -> tuple[Path, tuple[MoELayerSpec, ...] | None, str | None]:
    """(checkpoint folder, MoE specs from the manifest or None, model_id or None) for `path`."""
    if (path / MANIFEST_FILE).is_file():
        manifest = read_manifest(path, verify_checksums=cfg.verify_checksums)
        if not manifest.checkpoint_dir:
            raise ModelLoadError(f"{path}: the export kept no checkpoint, the torch backend cannot load it")
        return path / manifest.checkpoint_dir, manifest.moe_layers, manifest.model_id
    return path, None, None


class TorchPolicy(StagedPolicy):
    """Runs MoEVLA's four submodules eagerly; build with `load`."""

    def __init__(self, model: MoEVLA, device: Any, tokenizer: RuntimeTokenizer, specs: tuple[MoELayerSpec, ...],
                 cfg: RuntimeConfig, metadata: PolicyMetadata) -> None:
        super().__init__(model.cfg.contract, tokenizer, specs, cfg, metadata)
        self.model = model
        self.device = device

    @classmethod
    def load(cls, path: str | os.PathLike, cfg: RuntimeConfig | None = None,
             expected_contract: SensorContract | None = None) -> TorchPolicy:
        import torch

        from moe_vla_ros.model.checkpoint import CheckpointError, load_checkpoint

        cfg = cfg or RuntimeConfig(backend=BACKEND_NAME)
        path = Path(path)
        if not path.is_dir():
            raise ModelLoadError(f"model folder {path} does not exist")
        ckpt_dir, specs, model_id = _checkpoint_dir(path, cfg)
        device, fallback = cfg.torch_device, False
        if device.startswith("cuda") and not torch.cuda.is_available():
            logger.warning("CPU FALLBACK: torch_device=%r requested but CUDA is unavailable; running on CPU", device)
            device, fallback = "cpu", True
        try:
            model = load_checkpoint(ckpt_dir, expected_contract=expected_contract, device=device)
            tokenizer = RuntimeTokenizer.load(ckpt_dir if (ckpt_dir / "tokenizer.json").is_file() else path)
        except (CheckpointError, TokenizerLoadError) as e:
            raise ModelLoadError(str(e)) from None
        formulation = cfg.formulation if cfg.formulation != "auto" else ("dense" if device != "cpu" else "sparse")
        model.set_moe_formulation(formulation)
        if cfg.intra_op_threads > 0:
            torch.set_num_threads(cfg.intra_op_threads)  # process-wide
        metadata = PolicyMetadata(
            model_id=model_id or f"{ckpt_dir.name}-checkpoint", backend=BACKEND_NAME,
            execution_providers=(f"torch:{device}",), cpu_fallback=fallback, formulation=formulation,
        )
        return cls(model, torch.device(device), tokenizer, specs or moe_layer_specs(model.cfg), cfg, metadata)

    # ----------------------------------------------------------------------------- stages
    def _tensor(self, array: np.ndarray):
        import torch

        return torch.from_numpy(np.array(array)).to(self.device)  # a writable copy (inputs may be read-only)

    @staticmethod
    def _telemetry(out) -> StageTelemetry:
        return StageTelemetry(*(t.float().cpu().numpy() for t in (out.router_logits, out.expert_load, out.router_entropy)))

    def _run_vision(self, images: np.ndarray):
        import torch

        with torch.no_grad():
            return self.model.vision(self._tensor(images)).tokens  # [1, Nv, D]

    def _run_trunk(self, vision_tokens, instruction_ids, instruction_mask, state):
        import torch

        with torch.no_grad():
            out = self.model.trunk(vision_tokens, self._tensor(instruction_ids), self._tensor(instruction_mask), self._tensor(state))
        return out.tokens, self._telemetry(out)  # [1, S, D], telemetry

    def _reasoning_step(self, trunk_tokens) -> StepFunction:
        import torch

        def step(tokens: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return self.model.reasoning(trunk_tokens, self._tensor(tokens)).logits.float().cpu().numpy()  # [1, R, V]

        return step

    def _run_action_head(self, trunk_tokens, state, reasoning_ids, reasoning_mask):
        import torch

        with torch.no_grad():
            out = self.model.action_head(trunk_tokens, self._tensor(state), self._tensor(reasoning_ids),
                                         self._tensor(reasoning_mask))
        return out.actions.float().cpu().numpy(), self._telemetry(out)  # [1, H, J], telemetry

    def _release(self) -> None:
        self.model = None  # type: ignore[assignment]
