"""The exported model folder and its manifest.json (written by `moe_vla_ros.export`).

A model folder holds one ONNX graph per pipeline stage (and per MoE formulation / precision
variant for the stages with MoE layers), the tokenizer, the checkpoint it was exported from
(so the torch backend loads from the same folder) and manifest.json::

    manifest.json
    vision.onnx                      images [1, C, 3, H, W] uint8 -> vision_tokens [1, Nv, D]
    trunk.sparse.onnx                -> trunk_tokens [1, S, D] + telemetry     (loop over experts)
    trunk.dense.onnx                 same I/O, static shapes, TensorRT ops only
    reasoning_context.onnx           trunk_tokens -> cross_kv [Lr, 2, 1, Hr, S, Dh] (once per trace)
    reasoning_step.onnx              cross_kv, tokens [1, R] -> logits [1, R, V] (once per token)
    action_head.{sparse,dense}.onnx  -> actions [1, H, J] (action-normalised) + telemetry
    *.int8.onnx / *.fp16.onnx        quantised variants that passed the export gate
    tokenizer.json, tokenizer_config.json
    checkpoint/config.json, checkpoint/model.safetensors

Telemetry outputs of a MoE stage with M MoE layers over N routed tokens and E experts:
router_logits [M, N, E], expert_load [M, E], router_entropy [M]; `moe_layers` lists the
layers in that order (trunk layers first, then action-head layers).

Reading a manifest validates everything that can be checked without building sessions: format
and version, required keys, every listed file present with its sha256, every graph's opset
equal to the manifest's and supported. Failures raise ModelLoadError naming the file and the
value. numpy-free; no torch.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moe_vla_ros.contract import ContractError, PolicyContract
from moe_vla_ros.errors import BadInputError
from moe_vla_ros.runtime.onnx_file import OnnxHeaderError, read_header
from moe_vla_ros.validation import read_json, require_choice

FORMAT_NAME = "moe_vla_onnx_model"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
CHECKPOINT_SUBDIR = "checkpoint"
SUPPORTED_OPSETS = range(17, 22)  # default-domain opsets this runtime accepts: 17..21

STAGES = ("vision", "trunk", "reasoning_context", "reasoning_step", "action_head")  # one graph each
MOE_STAGES = ("trunk", "action_head")
FORMULATIONS = ("sparse", "dense")
ANY_FORMULATION = "any"  # graphs without MoE layers serve both formulations
PRECISIONS = ("fp32", "int8", "fp16")
TELEMETRY_OUTPUTS = ("router_logits", "expert_load", "router_entropy")
STAGE_INPUTS: dict[str, tuple[str, ...]] = {
    "vision": ("images",),
    "trunk": ("vision_tokens", "instruction_ids", "instruction_mask", "state"),
    "reasoning_context": ("trunk_tokens",),
    "reasoning_step": ("cross_kv", "tokens"),
    "action_head": ("trunk_tokens", "state", "reasoning_ids", "reasoning_mask"),
}
STAGE_OUTPUTS: dict[str, tuple[str, ...]] = {
    "vision": ("vision_tokens",),
    "trunk": ("trunk_tokens", *TELEMETRY_OUTPUTS),
    "reasoning_context": ("cross_kv",),
    "reasoning_step": ("logits",),
    "action_head": ("actions", *TELEMETRY_OUTPUTS),
}


class ModelLoadError(BadInputError, RuntimeError):
    """A model folder is missing, corrupt, or does not match its manifest or this runtime."""


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output: name, static shape, numpy dtype name ("float32", "int64", ...)."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TensorSpec:
        return cls(str(d["name"]), tuple(int(v) for v in d["shape"]), str(d["dtype"]))


@dataclass(frozen=True)
class GraphEntry:
    """One ONNX file of the folder.

    Attributes:
        file: path relative to the model folder.
        stage: one of STAGES.
        formulation: "sparse" | "dense" for MoE stages, "any" otherwise.
        precision: one of PRECISIONS.
        inputs, outputs: in graph order.
    """

    file: str
    stage: str
    formulation: str
    precision: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def __post_init__(self) -> None:
        require_choice(f"graph {self.file}: stage", self.stage, STAGES, error=ModelLoadError)
        formulations = FORMULATIONS if self.stage in MOE_STAGES else (ANY_FORMULATION,)
        require_choice(f"graph {self.file}: formulation", self.formulation, formulations, error=ModelLoadError)
        require_choice(f"graph {self.file}: precision", self.precision, PRECISIONS, error=ModelLoadError)
        for kind, specs, want in (("inputs", self.inputs, STAGE_INPUTS), ("outputs", self.outputs, STAGE_OUTPUTS)):
            names = tuple(s.name for s in specs)
            if names != want[self.stage]:
                raise ModelLoadError(f"graph {self.file}: {kind} are {list(names)}, a {self.stage} graph has {list(want[self.stage])}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file, "stage": self.stage, "formulation": self.formulation, "precision": self.precision,
            "inputs": [s.to_dict() for s in self.inputs], "outputs": [s.to_dict() for s in self.outputs],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GraphEntry:
        return cls(
            str(d["file"]), str(d["stage"]), str(d["formulation"]), str(d["precision"]),
            tuple(TensorSpec.from_dict(s) for s in d["inputs"]), tuple(TensorSpec.from_dict(s) for s in d["outputs"]),
        )


@dataclass(frozen=True)
class MoELayerSpec:
    """A MoE layer whose telemetry a stage graph outputs.

    Attributes:
        name: module path in the torch model, e.g. "trunk.blocks.1.ffn".
        stage: "trunk" or "action_head".
        index: row of this layer in its stage's telemetry outputs (the M axis).
        num_experts, top_k, router, capacity_factor: routing of the layer (MoEConfig fields).
        num_tokens: N, tokens routed per inference (batch 1).
    """

    name: str
    stage: str
    index: int
    num_experts: int
    top_k: int
    router: str
    capacity_factor: float | None
    num_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MoELayerSpec:
        cf = d.get("capacity_factor")
        return cls(
            str(d["name"]), str(d["stage"]), int(d["index"]), int(d["num_experts"]), int(d["top_k"]),
            str(d["router"]), None if cf is None else float(cf), int(d["num_tokens"]),
        )


@dataclass
class Manifest:
    """Everything manifest.json says about a model folder (see the module docstring).

    Attributes:
        model_id: "<name>-<first 10 hex of the weights digest>" (export.pipeline.weights_digest).
        name: human-readable model name.
        opset: default-domain opset of every graph.
        contract: the policy contract (sensors, chunk length, normalisation, token lengths).
        graphs: every ONNX file with its stage, formulation, precision and I/O.
        moe_layers: MoE layers in the order their telemetry rows appear.
        tokenizer_files: tokenizer files (relative paths).
        checkpoint_dir: folder (relative) with the safetensors checkpoint, or "" if not kept.
        files: relative path -> sha256 of every file except manifest.json.
        exporter: versions of the packages that exported the graphs.
        verification: export-time parity results (torch vs ONNX Runtime).
        variants: per (formulation, precision) gate results of quantised variants: "kept",
            "metrics", "thresholds", "gated_on" (CPU model, ISA flags, int8 kernel, ONNX Runtime
            version, providers) and for int8 "scheme" (weight bits, per channel, whether AVX2
            can saturate). Manifests written before "gated_on"/"scheme" existed still load;
            their int8 variants are refused on x86 CPUs without VNNI (runtime/providers.py).
        golden: the golden outputs for on-target verification (runtime/golden.py): "file",
            "sha256", "observations", "reference" (how they were made), "formulation",
            "precision", "providers". Empty in manifests written before they existed (they still
            load; on-target verification then reports itself unavailable).
    """

    model_id: str
    name: str
    opset: int
    contract: PolicyContract
    graphs: tuple[GraphEntry, ...]
    moe_layers: tuple[MoELayerSpec, ...]
    tokenizer_files: tuple[str, ...]
    checkpoint_dir: str = CHECKPOINT_SUBDIR
    files: dict[str, str] = field(default_factory=dict)
    exporter: dict[str, Any] = field(default_factory=dict)
    verification: dict[str, Any] = field(default_factory=dict)
    variants: list[dict[str, Any]] = field(default_factory=list)
    golden: dict[str, Any] = field(default_factory=dict)

    # ----------------------------------------------------------------------------- queries
    def formulations(self) -> tuple[str, ...]:
        """MoE formulations for which every MoE stage has an fp32 graph."""
        return tuple(
            f for f in FORMULATIONS
            if all(self.find_graph(s, f, "fp32") is not None for s in MOE_STAGES)
        )

    def find_graph(self, stage: str, formulation: str, precision: str) -> GraphEntry | None:
        """The graph of `stage` for `formulation` ("any" graphs match every formulation) and `precision`."""
        for g in self.graphs:
            if g.stage == stage and g.precision == precision and g.formulation in (formulation, ANY_FORMULATION):
                return g
        return None

    def available_variants(self) -> tuple[tuple[str, str], ...]:
        """(formulation, precision) pipelines this folder serves: fp32 ones and gated variants kept."""
        kept = tuple(
            (v["formulation"], v["precision"]) for v in self.variants
            if v.get("kept") and v.get("formulation") in self.formulations()
        )
        return tuple((f, "fp32") for f in self.formulations()) + kept

    def variant(self, formulation: str, precision: str) -> dict[str, Any] | None:
        """The `variants` entry (gate result, int8 scheme, hardware it was gated on) of a quantised pipeline."""
        for v in self.variants:
            if v.get("formulation") == formulation and v.get("precision") == precision:
                return v
        return None

    def select_graphs(self, formulation: str, precision: str) -> dict[str, GraphEntry]:
        """One graph per stage of an available variant: its precision where the folder has it, else fp32."""
        if formulation not in self.formulations():
            raise ModelLoadError(f"model {self.model_id} has no {formulation!r} graphs (has {list(self.formulations())})")
        if (formulation, precision) not in self.available_variants():
            raise ModelLoadError(
                f"model {self.model_id} has no {precision} variant of the {formulation} graphs that passed its "
                f"export gate (available: {[f'{f}/{p}' for f, p in self.available_variants()]})"
            )
        selected = {}
        for stage in STAGES:
            entry = self.find_graph(stage, formulation, precision) or self.find_graph(stage, formulation, "fp32")
            if entry is None:
                raise ModelLoadError(f"model {self.model_id} has no fp32 {stage} graph for formulation {formulation!r}")
            selected[stage] = entry
        return selected

    # ----------------------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "model_id": self.model_id,
            "name": self.name,
            "opset": self.opset,
            "contract": self.contract.to_dict(),
            "graphs": [g.to_dict() for g in self.graphs],
            "moe_layers": [layer.to_dict() for layer in self.moe_layers],
            "tokenizer_files": list(self.tokenizer_files),
            "checkpoint_dir": self.checkpoint_dir,
            "files": dict(sorted(self.files.items())),
            "exporter": self.exporter,
            "verification": self.verification,
            "variants": self.variants,
            "golden": self.golden,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "manifest") -> Manifest:
        if d.get("format") != FORMAT_NAME:
            raise ModelLoadError(f"{source}: format is {d.get('format')!r}, expected {FORMAT_NAME!r}")
        if d.get("version") != FORMAT_VERSION:
            raise ModelLoadError(f"{source}: version {d.get('version')!r} is not supported (this runtime reads {FORMAT_VERSION})")
        required = ("model_id", "name", "opset", "contract", "graphs", "moe_layers", "tokenizer_files", "files")
        missing = [k for k in required if k not in d]
        if missing:
            raise ModelLoadError(f"{source}: missing keys {missing}")
        try:
            contract = PolicyContract.from_dict(d["contract"])
        except (ContractError, TypeError, KeyError) as e:
            raise ModelLoadError(f"{source}: invalid contract: {e}") from None
        try:
            graphs = tuple(GraphEntry.from_dict(g) for g in d["graphs"])
            layers = tuple(MoELayerSpec.from_dict(m) for m in d["moe_layers"])
        except (KeyError, TypeError, ValueError) as e:
            raise ModelLoadError(f"{source}: malformed graph or moe_layers entry: {e!r}") from None
        check_unique_graphs(graphs)
        return cls(
            model_id=str(d["model_id"]), name=str(d["name"]), opset=int(d["opset"]), contract=contract,
            graphs=graphs, moe_layers=layers, tokenizer_files=tuple(d["tokenizer_files"]),
            checkpoint_dir=str(d.get("checkpoint_dir", "")), files=dict(d["files"]),
            exporter=dict(d.get("exporter", {})), verification=dict(d.get("verification", {})),
            variants=list(d.get("variants", [])), golden=dict(d.get("golden") or {}),
        )

    def write(self, model_dir: str | os.PathLike) -> Path:
        """Write manifest.json atomically into `model_dir`."""
        path = Path(model_dir) / MANIFEST_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        os.replace(tmp, path)
        return path


def hash_files(model_dir: str | os.PathLike) -> dict[str, str]:
    """relative path -> sha256 of every file under `model_dir` except manifest.json."""
    root = Path(model_dir)
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).as_posix() != MANIFEST_FILE
    }


def read_manifest(model_dir: str | os.PathLike, verify_checksums: bool = True) -> Manifest:
    """Load and validate `model_dir/manifest.json` (see the module docstring); ModelLoadError on failure."""
    root = Path(model_dir)
    path = root / MANIFEST_FILE
    if not root.is_dir():
        raise ModelLoadError(f"model folder {root} does not exist")
    raw = read_json(path, f"{root} has no {MANIFEST_FILE}: not an exported model folder", error=ModelLoadError)
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{path} does not hold a JSON object")
    manifest = Manifest.from_dict(raw, source=str(path))
    _check_files(root, manifest, verify_checksums)
    _check_opsets(root, manifest)
    return manifest


def _check_files(root: Path, manifest: Manifest, verify_checksums: bool) -> None:
    needed: list[str] = [g.file for g in manifest.graphs] + list(manifest.tokenizer_files)
    unlisted = sorted(set(needed) - set(manifest.files))
    if unlisted:
        raise ModelLoadError(f"{root}/{MANIFEST_FILE} lists no sha256 for {unlisted}")
    for rel, expected in sorted(manifest.files.items()):
        path = root / rel
        if not path.is_file():
            raise ModelLoadError(f"{root}: file {rel} listed in {MANIFEST_FILE} is missing")
        if verify_checksums:
            actual = sha256_file(path)
            if actual != expected:
                raise ModelLoadError(
                    f"{root}: {rel} was modified after export: sha256 {actual[:16]}..., manifest says {expected[:16]}..."
                )


def _check_opsets(root: Path, manifest: Manifest) -> None:
    if manifest.opset not in SUPPORTED_OPSETS:
        raise ModelLoadError(
            f"{root}: manifest opset {manifest.opset} is not supported by this runtime "
            f"({SUPPORTED_OPSETS.start}..{SUPPORTED_OPSETS.stop - 1})"
        )
    for g in manifest.graphs:
        try:
            opset = read_header(root / g.file).default_opset
        except (OnnxHeaderError, OSError) as e:
            raise ModelLoadError(f"{root}: {g.file} is not a readable ONNX model: {e}") from None
        if opset != manifest.opset:
            raise ModelLoadError(f"{root}: {g.file} has opset {opset}, the manifest says {manifest.opset}")


def check_unique_graphs(graphs: Sequence[GraphEntry]) -> None:
    """Raise ModelLoadError when two graphs claim the same (stage, formulation, precision)."""
    seen: dict[tuple[str, str, str], str] = {}
    for g in graphs:
        key = (g.stage, g.formulation, g.precision)
        if key in seen:
            raise ModelLoadError(f"graphs {seen[key]} and {g.file} are both {key}")
        seen[key] = g.file
