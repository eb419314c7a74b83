"""OnnxRuntimePolicy: the robot backend. One ONNX Runtime session per stage of an exported model folder.

    policy = OnnxRuntimePolicy.load("models/demo", RuntimeConfig(), expected_contract=sensors)
    out = policy.infer(observation)          # PolicyOutput: actions [H, J] rad, reasoning, usage

Loading validates the folder (manifest.read_manifest), checks the contract against the caller's,
creates the vision session first to learn which providers really work, picks the MoE graphs
("auto": dense with a GPU provider in use, else sparse) and the precision variants, creates the
remaining sessions and checks every session's inputs/outputs against the manifest. Sparse MoE
graphs that TensorRT 10 cannot parse (ScatterND with reduction, in folders exported before the
scatter-free combine) are refused when the TensorRT provider is in use, and int8 variants that
can saturate are refused on x86 CPUs without VNNI. Any problem raises ModelLoadError (or
ContractError) here, never later during inference.
numpy + onnxruntime + tokenizers only.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from moe_vla_ros.contract import SensorContract
from moe_vla_ros.runtime.config import CPU_PROVIDER, GPU_PROVIDERS, TENSORRT_PROVIDER, RuntimeConfig
from moe_vla_ros.runtime.manifest import MOE_STAGES, STAGES, GraphEntry, Manifest, ModelLoadError, read_manifest
from moe_vla_ros.runtime.providers import SessionFactory, check_session_io, int8_variant_problem, session_placement
from moe_vla_ros.runtime.sample_observations import random_observation
from moe_vla_ros.runtime.staged_policy import StagedPolicy, StepFunction
from moe_vla_ros.runtime.telemetry import StageTelemetry
from moe_vla_ros.runtime.tokenization import RuntimeTokenizer, TokenizerLoadError
from moe_vla_ros.runtime.types import PolicyMetadata

logger = logging.getLogger(__name__)

BACKEND_NAME = "onnxruntime"


def check_contract(manifest: Manifest, expected: SensorContract | None, model_dir: str | os.PathLike) -> None:
    """ContractError naming both values of every field where the model differs from `expected`."""
    if expected is None:
        return
    if not isinstance(expected, SensorContract):
        raise TypeError(f"expected_contract must be a SensorContract, got {type(expected).__name__}")
    manifest.contract.sensors.check_matches(expected, what=f"model {model_dir}", against="expected contract")


def load_tokenizer(model_dir: Path, manifest: Manifest) -> RuntimeTokenizer:
    """The folder's tokenizer; ModelLoadError if it is unreadable or disagrees with the contract."""
    try:
        tokenizer = RuntimeTokenizer.load(model_dir)
    except TokenizerLoadError as e:
        raise ModelLoadError(str(e)) from None
    c = manifest.contract
    got = (tokenizer.max_instruction_tokens, tokenizer.max_reasoning_tokens)
    want = (c.max_instruction_tokens, c.max_reasoning_tokens)
    if got != want:
        raise ModelLoadError(f"{model_dir}: tokenizer pads to (instruction, reasoning) = {got}, the contract to {want}")
    return tokenizer


def check_tensorrt_graphs(manifest: Manifest, graphs: dict[str, GraphEntry], providers_in_use: tuple[str, ...],
                          model_dir: str | os.PathLike) -> None:
    """ModelLoadError when TensorRT is in use and a selected MoE graph has ops TensorRT 10 cannot parse.

    The export records them per graph (manifest verification.tensorrt, export/tensorrt_ops.py).
    Sparse graphs exported before that record existed combine experts with ScatterND
    (reduction=add): TensorRT 10 rejects it (the graph splits into many pieces) and TensorRT
    8.6/9.x overwrite instead of add (wrong actions), so they are refused too. Dense graphs
    were always limited to TensorRT ops by the export.
    """
    if TENSORRT_PROVIDER not in providers_in_use:
        return
    report = manifest.verification.get("tensorrt")
    for stage in MOE_STAGES:
        entry = graphs[stage]
        if entry.formulation != "sparse":
            continue
        known = isinstance(report, dict) and isinstance(report.get(entry.file), dict)
        unsupported = report[entry.file].get("unsupported", []) if known else ["ScatterND(reduction=add) (assumed: "
                                                                              "exported before the TensorRT op report)"]
        if unsupported:
            raise ModelLoadError(
                f"{model_dir}/{entry.file}: the sparse MoE graphs cannot run under the TensorRT provider: TensorRT 10 "
                f"does not parse {unsupported}; use formulation 'dense' (or 'auto') with TensorRT, or re-export the "
                "model (current sparse graphs combine experts without ScatterND)"
            )


class OnnxRuntimePolicy(StagedPolicy):
    """Runs the four stage graphs with ONNX Runtime; build with `load`."""

    def __init__(self, model_dir: Path, manifest: Manifest, graphs: dict[str, GraphEntry], sessions: dict[str, Any],
                 tokenizer: RuntimeTokenizer, cfg: RuntimeConfig, metadata: PolicyMetadata) -> None:
        super().__init__(manifest.contract, tokenizer, manifest.moe_layers, cfg, metadata)
        self.model_dir = model_dir
        self.manifest = manifest
        self.graphs = graphs
        self._sessions = sessions

    @classmethod
    def load(cls, model_dir: str | os.PathLike, cfg: RuntimeConfig | None = None,
             expected_contract: SensorContract | None = None) -> OnnxRuntimePolicy:
        """Validate `model_dir`, create the sessions (see the module docstring)."""
        cfg = cfg or RuntimeConfig()
        model_dir = Path(model_dir)
        manifest = read_manifest(model_dir, verify_checksums=cfg.verify_checksums)
        check_contract(manifest, expected_contract, model_dir)
        tokenizer = load_tokenizer(model_dir, manifest)
        candidates = cls._candidate_formulations(manifest, cfg, model_dir)
        profile_dir = Path(tempfile.mkdtemp(prefix="moe_vla_placement-")) if cfg.report_placement else None
        try:
            return cls._load(model_dir, manifest, tokenizer, candidates, cfg, profile_dir)
        finally:
            if profile_dir is not None:
                shutil.rmtree(profile_dir, ignore_errors=True)

    @classmethod
    def _load(cls, model_dir: Path, manifest: Manifest, tokenizer: RuntimeTokenizer, candidates: list[str],
              cfg: RuntimeConfig, profile_dir: Path | None) -> OnnxRuntimePolicy:
        factory = SessionFactory(cfg, cfg.engine_cache_dir(manifest.model_id) if cfg.wants_gpu else None, profile_dir)
        # The vision graph serves every formulation: its session shows which providers really work.
        vision_entry = manifest.select_graphs(candidates[0], cfg.precision)["vision"]
        sessions = {"vision": factory.create(model_dir / vision_entry.file, label="the vision graph")}
        preferred = "dense" if factory.gpu_in_use else "sparse"
        formulation = preferred if preferred in candidates else candidates[0]
        graphs = manifest.select_graphs(formulation, cfg.precision)
        check_tensorrt_graphs(manifest, graphs, factory.providers_in_use, model_dir)
        for stage in STAGES:
            if stage not in sessions or graphs[stage] != vision_entry:
                sessions[stage] = factory.create(model_dir / graphs[stage].file)
        for stage in STAGES:
            check_session_io(sessions[stage], graphs[stage], model_dir)
        precisions = sorted({g.precision for g in graphs.values()})
        metadata = PolicyMetadata(
            model_id=manifest.model_id, backend=BACKEND_NAME, execution_providers=factory.providers_in_use,
            cpu_fallback=factory.cpu_fallback, formulation=formulation,
        )
        policy = cls(model_dir, manifest, graphs, sessions, tokenizer, cfg, metadata)
        if profile_dir is not None:
            policy._measure_placement(factory)
        logger.info("loaded %s: %s graphs, precision %s, providers %s, placement %s", manifest.model_id, formulation,
                    "/".join(precisions), list(policy.metadata.execution_providers),
                    dict(policy.metadata.provider_placement))
        return policy

    def _measure_placement(self, factory: SessionFactory) -> None:
        """One profiled warm-up inference; the profiles say which provider ran which nodes.

        Sets metadata.provider_placement ({stage: {provider: nodes}}) and makes
        execution_providers the providers that ran nodes (in preference order) and cpu_fallback
        true when a GPU provider was requested but ran none.
        """
        try:
            self.infer(random_observation(self.contract, seed=0), generate_reasoning=True)
        except Exception as e:
            raise ModelLoadError(f"{self.model_dir}: the warm-up inference failed: {e}") from None
        finally:
            self.reset()
            placement = {stage: session_placement(session) for stage, session in self._sessions.items()}
        ran = {p for counts in placement.values() for p, n in counts.items() if n > 0}
        order = list(self.cfg.providers)
        in_use = tuple(sorted(ran, key=lambda p: order.index(p) if p in order else len(order))) or factory.providers_in_use
        gpu_ran = any(p in GPU_PROVIDERS for p in in_use)
        for stage, counts in placement.items():
            cpu_nodes, total = counts.get(CPU_PROVIDER, 0), sum(counts.values())
            if gpu_ran and cpu_nodes:
                logger.warning("%s graph: %d of %d nodes run on %s, not on the GPU provider (%s)", stage, cpu_nodes,
                               total, CPU_PROVIDER, counts)
        self._metadata = dataclasses.replace(
            self._metadata, execution_providers=in_use, provider_placement=placement,
            cpu_fallback=self.cfg.wants_gpu and not gpu_ran,
        )

    @staticmethod
    def _candidate_formulations(manifest: Manifest, cfg: RuntimeConfig, model_dir: Path) -> list[str]:
        """Formulations that have the configured precision (just the configured one unless "auto")."""
        served = manifest.available_variants()
        candidates = [f for f in manifest.formulations() if (f, cfg.precision) in served]
        if cfg.formulation != "auto":
            candidates = [f for f in candidates if f == cfg.formulation]
        if cfg.precision == "int8":
            problems = {f: int8_variant_problem(manifest.variant(f, "int8")) for f in candidates}
            candidates = [f for f in candidates if not problems[f]]
            if not candidates and any(problems.values()):
                raise ModelLoadError(f"{model_dir}: {next(p for p in problems.values() if p)}")
        if not candidates:
            which = "" if cfg.formulation == "auto" else f" of the {cfg.formulation} graphs"
            raise ModelLoadError(
                f"{model_dir} has no {cfg.precision} variant{which} that passed its export gate "
                f"(available: {[f'{f}/{p}' for f, p in served]})"
            )
        return candidates

    # ----------------------------------------------------------------------------- stages
    def _run_vision(self, images: np.ndarray) -> np.ndarray:
        return self._sessions["vision"].run(None, {"images": images})[0]  # [1, Nv, D]

    def _run_trunk(self, vision_tokens, instruction_ids, instruction_mask, state):
        tokens, logits, load, entropy = self._sessions["trunk"].run(None, {
            "vision_tokens": vision_tokens, "instruction_ids": instruction_ids,
            "instruction_mask": instruction_mask, "state": state,
        })
        return tokens, StageTelemetry(logits, load, entropy)  # [1, S, D], ([M, N, E], [M, E], [M])

    def _reasoning_step(self, trunk_tokens: np.ndarray) -> StepFunction:
        # Cross-attention keys/values of the trunk tokens, once per trace: [Lr, 2, 1, Hr, S, Dh].
        cross_kv = self._sessions["reasoning_context"].run(None, {"trunk_tokens": trunk_tokens})[0]
        session = self._sessions["reasoning_step"]

        def step(tokens: np.ndarray) -> np.ndarray:
            return session.run(["logits"], {"cross_kv": cross_kv, "tokens": tokens})[0]  # [1, R, V]

        return step

    def _run_action_head(self, trunk_tokens, state, reasoning_ids, reasoning_mask):
        actions, logits, load, entropy = self._sessions["action_head"].run(None, {
            "trunk_tokens": trunk_tokens, "state": state,
            "reasoning_ids": reasoning_ids, "reasoning_mask": reasoning_mask,
        })
        return actions, StageTelemetry(logits, load, entropy)  # [1, H, J], telemetry

    def _release(self) -> None:
        self._sessions.clear()
