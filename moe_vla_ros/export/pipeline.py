"""export_policy: checkpoint folder -> verified model folder (graphs, tokenizer, checkpoint, manifest).

    manifest = export_policy("runs/ckpt", "models/demo", ExportConfig(int8=True))

Steps, all inside a temporary folder next to `out_dir` (nothing appears at `out_dir` unless
every check passed):

1. export every stage graph (trunk/action head once per formulation), check the op
   allowlist of the dense ones and record, per graph, the ops TensorRT 10 cannot parse
   (verification.tensorrt[file].unsupported; export/tensorrt_ops.py);
2. verify every graph against PyTorch (export/verify.py);
3. copy tokenizer files and (optionally) the checkpoint, write a manifest;
4. verify the whole ONNX Runtime policy against the torch policy, then record the golden
   outputs (golden.npz, manifest `golden`: GOLDEN_OBSERVATIONS seeded observations and the fp32
   ONNX graphs' outputs on the CPU; runtime/golden.py) the robot verifies its variant against;
5. optional int8 / fp16 variants, each gated against fp32 on held-out observations; only
   variants that pass are kept and listed, the measured numbers are reported either way,
   with the int8 scheme and the hardware the gate ran on (CPU model, ISA flags, ORT version);
   a kept variant must also pass its gate against the golden outputs here (`golden_check`),
   so that on-target verification on the export machine never rejects what the export kept;
6. write the final manifest (sha256 of every file) and move the folder into place (replacing
   an existing one only with `force`, by an atomic directory exchange where the OS has one).
"""

from __future__ import annotations

import ctypes
import dataclasses
import datetime
import hashlib
import logging
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort
import torch

import moe_vla_ros
from moe_vla_ros.export.config import ExportConfig
from moe_vla_ros.export.errors import ExportError
from moe_vla_ros.export.graphs import check_graph_ops, example_inputs, export_stage, graph_file
from moe_vla_ros.export.quantize import INT8_SCHEMES, gate_variant, make_fp16, make_int8
from moe_vla_ros.export.tensorrt_ops import tensorrt_op_report
from moe_vla_ros.export.verify import verify_graphs, verify_policy_parity
from moe_vla_ros.model.checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, load_checkpoint
from moe_vla_ros.model.vla import MoEVLA
from moe_vla_ros.runtime.config import CPU_PROVIDER, RuntimeConfig
from moe_vla_ros.runtime.golden import GOLDEN_OBSERVATIONS, GOLDEN_SEED, load_golden, target_gate, verify_on_target, write_golden
from moe_vla_ros.runtime.manifest import (
    CHECKPOINT_SUBDIR,
    MOE_STAGES,
    STAGES,
    GraphEntry,
    Manifest,
    hash_files,
)
from moe_vla_ros.runtime.onnx_policy import OnnxRuntimePolicy
from moe_vla_ros.runtime.providers import cpu_description
from moe_vla_ros.runtime.sample_observations import random_observations
from moe_vla_ros.runtime.tokenization import TOKENIZER_FILES
from moe_vla_ros.runtime.torch_policy import moe_layer_specs

logger = logging.getLogger(__name__)


def export_policy(checkpoint_dir: str | os.PathLike, out_dir: str | os.PathLike, cfg: ExportConfig | None = None) -> Manifest:
    """Export and verify `checkpoint_dir` into `out_dir` (see the module docstring); returns the manifest.

    Raises ExportError (bad checkpoint, occupied output folder) or ExportVerificationError.
    """
    cfg = cfg or ExportConfig()
    checkpoint_dir, out_dir = Path(checkpoint_dir), Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not cfg.force:
        raise ExportError(f"output folder {out_dir} is not empty; pass force (--force) to replace it")
    missing = [f for f in (CONFIG_FILE, WEIGHTS_FILE, *TOKENIZER_FILES) if not (checkpoint_dir / f).is_file()]
    if missing:
        raise ExportError(f"checkpoint {checkpoint_dir} lacks {missing}")
    try:
        model = load_checkpoint(checkpoint_dir)
    except CheckpointError as e:
        raise ExportError(str(e)) from None
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.export-", dir=out_dir.parent))
    os.chmod(staging, 0o755)  # mkdtemp makes it private; the model folder is read by other users (the node)
    try:
        manifest = _build(model, checkpoint_dir, staging, cfg)
        _move_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("exported %s to %s", manifest.model_id, out_dir)
    return manifest


def _build(model: MoEVLA, checkpoint_dir: Path, staging: Path, cfg: ExportConfig) -> Manifest:
    specs = moe_layer_specs(model.cfg)
    inputs = example_inputs(model, cfg.seed)
    entries: list[GraphEntry] = []
    for stage in STAGES:
        for formulation in cfg.formulations if stage in MOE_STAGES else ("any",):
            entries.append(export_stage(model, stage, formulation, inputs[stage], staging, cfg.opset))
    ops = {e.file: check_graph_ops(staging / e.file, e) for e in entries}
    tensorrt = {e.file: graph_tensorrt_report(staging / e.file) for e in entries}
    graph_report = verify_graphs(model, staging, entries, specs, cfg)
    for name in TOKENIZER_FILES:
        shutil.copy2(checkpoint_dir / name, staging / name)
    if cfg.keep_checkpoint:
        (staging / CHECKPOINT_SUBDIR).mkdir()
        for name in (CONFIG_FILE, WEIGHTS_FILE, *TOKENIZER_FILES):
            shutil.copy2(checkpoint_dir / name, staging / CHECKPOINT_SUBDIR / name)
    name = cfg.name or checkpoint_dir.resolve().name
    manifest = Manifest(
        model_id=f"{name}-{weights_digest(checkpoint_dir / WEIGHTS_FILE)[:10]}", name=name, opset=cfg.opset,
        contract=model.cfg.contract, graphs=tuple(entries), moe_layers=specs, tokenizer_files=TOKENIZER_FILES,
        checkpoint_dir=CHECKPOINT_SUBDIR if cfg.keep_checkpoint else "", exporter=_exporter_info(),
        verification={**graph_report, "ops": ops, "tensorrt": tensorrt, "tolerance": cfg.tolerance,
                      "tie_margin": cfg.tie_margin},
    )
    _finalise(manifest, staging)
    manifest.verification["policy_parity"] = verify_policy_parity(model, staging, cfg.formulations, cfg)
    manifest.verification["action_tolerance"] = cfg.action_tolerance
    manifest.golden = _write_golden(manifest, staging, cfg)
    if cfg.int8 or cfg.fp16:
        _add_variants(manifest, staging, cfg)
    _finalise(manifest, staging)
    return manifest


def _add_variants(manifest: Manifest, staging: Path, cfg: ExportConfig) -> None:
    """Make, gate and keep (or drop) the int8 / fp16 variants; records every result in manifest.variants."""
    base = {(g.stage, g.formulation): g for g in manifest.graphs if g.precision == "fp32"}
    candidates: list[tuple[str, str]] = []  # (formulation, precision)
    new_entries: list[GraphEntry] = []
    int8_bound = 0  # largest AVX2 pair sum over every int8 graph (export/quantize.py)
    for precision, wanted in (("int8", cfg.int8), ("fp16", cfg.fp16)):
        if not wanted:
            continue
        formulations = cfg.formulations if precision == "int8" else ("dense",)
        for (stage, formulation), entry in base.items():
            if precision == "fp16" and formulation != "dense":
                continue  # fp16: dense graphs only; vision and reasoning stay fp32
            file = graph_file(stage, formulation, precision)
            if precision == "int8":
                scheme = make_int8(staging / entry.file, staging / file, cfg.int8_scheme)
                int8_bound = max(int8_bound, scheme["avx2_pair_bound"])
            else:
                make_fp16(staging / entry.file, staging / file)
            new_entries.append(dataclasses.replace(entry, file=file, precision=precision))
            manifest.verification.setdefault("tensorrt", {})[file] = graph_tensorrt_report(staging / file)
            if precision == "fp16":  # int8 graphs (DynamicQuantizeLinear, MatMulInteger) are CPU graphs
                manifest.verification["ops"][file] = check_graph_ops(staging / file, new_entries[-1])
        candidates += [(f, precision) for f in formulations]
    manifest.graphs = manifest.graphs + tuple(new_entries)
    gates = {"int8": cfg.int8_gate, "fp16": cfg.fp16_gate}
    observations = random_observations(manifest.contract, cfg.gate_observations, seed=cfg.seed + 1000)
    results = []
    for formulation, precision in candidates:
        scheme = {"scheme": {**INT8_SCHEMES[cfg.int8_scheme].to_dict(), "avx2_pair_bound": int8_bound}}
        scheme = scheme if precision == "int8" else {}
        # provisional: lists the candidate (with its int8 scheme, which the runtime checks) so the runtime can load it
        manifest.variants = [{"formulation": formulation, "precision": precision, "kept": True, **scheme}]
        _finalise(manifest, staging)
        result = gate_variant(staging, formulation, precision, gates[precision], observations, cfg.tie_margin)
        record = {"formulation": formulation, "precision": precision, "kept": result["passed"], **result, **scheme}
        results.append(record)
        level = logging.INFO if result["passed"] else logging.WARNING
        logger.log(level, "%s/%s variant %s: %s", formulation, precision,
                   "kept" if result["passed"] else "DROPPED (gate failed)", result["metrics"])
    manifest.variants = results
    _finalise(manifest, staging)
    for record in results:
        if record["kept"]:
            _check_against_golden(manifest, staging, record, cfg)
    kept = {(r["formulation"], r["precision"]) for r in results if r["kept"]}
    used = [
        g for g in manifest.graphs
        if g.precision == "fp32" or any(p == g.precision and g.formulation in (f, "any") for f, p in kept)
    ]
    for g in manifest.graphs:
        if g not in used:
            (staging / g.file).unlink()
    manifest.graphs = tuple(used)


def _golden_cfg(formulation: str, precision: str = "fp32") -> RuntimeConfig:
    return RuntimeConfig(providers=(CPU_PROVIDER,), formulation=formulation, precision=precision,
                         verify_checksums=False, report_placement=False)


def _write_golden(manifest: Manifest, staging: Path, cfg: ExportConfig) -> dict[str, Any]:
    """golden.npz from the fp32 graphs of the first formulation on the CPU; returns the manifest entry."""
    formulation = cfg.formulations[0]
    policy = OnnxRuntimePolicy.load(staging, _golden_cfg(formulation))
    try:
        observations = random_observations(manifest.contract, GOLDEN_OBSERVATIONS, seed=cfg.seed + GOLDEN_SEED)
        reference = (f"fp32 ONNX graphs ({formulation}) run by ONNX Runtime {ort.__version__} on the export "
                     f"machine's CPU (not torch), at export")
        entry = write_golden(staging, policy, observations, reference)
    finally:
        policy.close()
    entry["made_on"] = {k: v for k, v in cpu_description().items() if k in ("machine", "cpu_model", "int8_kernel")}
    return entry


def _check_against_golden(manifest: Manifest, staging: Path, record: dict[str, Any], cfg: ExportConfig) -> None:
    """Run a kept variant against the golden outputs with its own gate; drop it (kept=False) if it misses."""
    formulation, precision = record["formulation"], record["precision"]
    policy = OnnxRuntimePolicy.load(staging, _golden_cfg(formulation, precision))
    try:
        golden = load_golden(staging, manifest)
        result = verify_on_target(policy, golden, target_gate(manifest, formulation, precision),
                                  manifest.verification.get("tie_margin"))
    finally:
        policy.close()
    record["golden_check"] = {"passed": result.passed, "metrics": dict(result.metrics), "reason": result.reason}
    if not result.passed:
        record["kept"] = False
        logger.warning("%s/%s variant DROPPED: passed its gate but misses it against the golden outputs: %s",
                       formulation, precision, result.reason)


def graph_tensorrt_report(path: Path) -> dict[str, Any]:
    """tensorrt_op_report of one graph file (ops TensorRT 10 cannot parse; export/tensorrt_ops.py)."""
    return tensorrt_op_report(onnx.load(str(path), load_external_data=False))


def weights_digest(weights_file: Path) -> str:
    """sha256 over the tensors of a safetensors file (name, dtype, shape, bytes, in name order).

    Equal weights give equal digests; the file bytes themselves are not reproducible (the
    tensor layout inside the file can change between saves of the same model).
    """
    from safetensors.torch import load_file

    digest = hashlib.sha256()
    for name, tensor in sorted(load_file(str(weights_file)).items()):
        digest.update(f"{name}|{tensor.dtype}|{list(tensor.shape)}|".encode())
        digest.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _finalise(manifest: Manifest, staging: Path) -> None:
    manifest.files = hash_files(staging)
    manifest.write(staging)


def _exporter_info() -> dict[str, Any]:
    import onnxscript

    return {
        "moe_vla_ros": moe_vla_ros.__version__, "torch": torch.__version__, "onnx": onnx.__version__,
        "onnxscript": onnxscript.__version__, "onnxruntime": ort.__version__, "python": platform.python_version(),
        "exported_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with renameat2(RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Rename `staging` to `out_dir`; an existing non-empty `out_dir` is swapped out, then deleted."""
    if not out_dir.exists() or (out_dir.is_dir() and not any(out_dir.iterdir())):
        os.replace(staging, out_dir)
        return
    if out_dir.is_dir() and _exchange(staging, out_dir):
        shutil.rmtree(staging)  # now holds the previous contents
        return
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    os.replace(out_dir, old)
    os.replace(staging, out_dir)
    shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
