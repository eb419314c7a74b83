"""Golden outputs and on-target verification: does the selected variant compute, on THIS machine's
providers, what the fp32 graphs computed on the export machine?

The export gate of a quantised variant ran on the export machine's CPU; int8 kernels differ per
CPU and TensorRT picks fp16 kernels per device, so the robot checks again. A model folder carries
`golden.npz` (manifest `golden`: file, sha256, how it was made):

    images_<camera>    [K, H, W, 3] uint8   K recorded observations (3 by default)
    joint_positions    [K, J] float64
    instructions       [K] unicode
    actions            [K, H, J] float64    fp32 ONNX graph output (absolute targets, rad)
    reasoning_ids      [K, R] int64         generated reasoning tokens (PAD-padded)
    router_logits_<i>  [K, N, E] float32    router logits of MoE layer i (manifest moe_layers order)

The reference is the fp32 ONNX graphs run by ONNX Runtime on the CPU (not torch): that is what
every variant's export gate compares against. `verify_on_target` runs a loaded policy on the
golden observations and applies the variant's own export gate (manifest `variants[].thresholds`;
fp32 graphs: FP32_TARGET_GATE, or the fp16 gate when TensorRT builds fp16 engines). numpy only.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moe_vla_ros.runtime.config import TENSORRT_PROVIDER
from moe_vla_ros.runtime.manifest import Manifest, ModelLoadError, sha256_file
from moe_vla_ros.runtime.telemetry import routing_agreement
from moe_vla_ros.runtime.types import Observation

GOLDEN_FILE = "golden.npz"
GOLDEN_OBSERVATIONS = 3
GOLDEN_SEED = 4242
# fp32 graphs on another CPU/GPU: the same routing, actions within 1 mrad of the reference. Reasoning
# tokens are reported, not gated (as in the export gates: a greedy near-tie may flip on another
# device; a different trace that matters shows up in the actions, which follow it).
FP32_TARGET_GATE = {"max_action_error": 1e-3, "min_router_agreement": 0.97, "min_reasoning_agreement": 0.0}
# Thresholds when a variant's manifest entry records none (the export defaults, export/config.py).
DEFAULT_GATES = {
    "int8": {"max_action_error": 0.05, "min_router_agreement": 0.9, "min_reasoning_agreement": 0.0},
    "fp16": {"max_action_error": 0.01, "min_router_agreement": 0.97, "min_reasoning_agreement": 0.0},
}
DEFAULT_TIE_MARGIN = 1e-4


class GoldenError(ModelLoadError):
    """The golden file is missing, corrupted (sha256 mismatch) or does not fit the model."""


@dataclass(frozen=True)
class Golden:
    """Recorded observations and the fp32 reference outputs (see the module docstring)."""

    observations: tuple[Observation, ...]
    actions: np.ndarray  # [K, H, J] float64
    reasoning_ids: np.ndarray  # [K, R] int64
    router_logits: Mapping[str, np.ndarray] = field(default_factory=dict)  # layer name -> [K, N, E]


@dataclass(frozen=True)
class VerificationResult:
    """Outcome of verify_on_target for one variant."""

    variant: str  # "sparse/int8"
    passed: bool
    metrics: Mapping[str, Any]
    thresholds: Mapping[str, float]
    reason: str  # "" when passed, else what missed the gate
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "passed": self.passed, "metrics": dict(self.metrics),
                "thresholds": dict(self.thresholds), "reason": self.reason, "seconds": self.seconds}


# --------------------------------------------------------------------------------- recording
def record_golden(policy, observations: Sequence[Observation]) -> dict[str, np.ndarray]:
    """Arrays of golden.npz from running `policy` (an fp32 StagedPolicy) on `observations`."""
    cams = policy.contract.sensors.camera_names
    actions, reasoning, logits = [], [], {s.name: [] for s in policy.moe_layers}
    for obs in observations:
        policy.reset()
        out, layer_logits = policy.infer_with_router_logits(obs)
        actions.append(out.actions)
        r = policy.contract.max_reasoning_tokens
        reasoning.append(out.reasoning.token_ids if out.reasoning is not None else np.zeros(r, np.int64))
        for name in logits:
            logits[name].append(np.asarray(layer_logits[name], np.float32))
    policy.reset()
    arrays: dict[str, np.ndarray] = {f"images_{c}": np.stack([o.images[c] for o in observations]) for c in cams}
    arrays["joint_positions"] = np.stack([np.asarray(o.joint_positions, np.float64) for o in observations])
    arrays["instructions"] = np.array([o.instruction for o in observations])
    arrays["actions"] = np.stack(actions).astype(np.float64)
    arrays["reasoning_ids"] = np.stack(reasoning).astype(np.int64)
    for i, spec in enumerate(policy.moe_layers):
        arrays[f"router_logits_{i}"] = np.stack(logits[spec.name])
    return arrays


def write_golden(model_dir: str | Path, policy, observations: Sequence[Observation], reference: str) -> dict[str, Any]:
    """Write golden.npz into `model_dir`; returns the manifest `golden` entry (file, sha256, provenance)."""
    path = Path(model_dir) / GOLDEN_FILE
    arrays = record_golden(policy, observations)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    meta = policy.metadata
    return {
        "file": GOLDEN_FILE, "sha256": sha256_file(path), "observations": len(observations),
        "reference": reference, "formulation": meta.formulation, "precision": "fp32",
        "providers": list(meta.execution_providers),
    }


# --------------------------------------------------------------------------------- loading
def load_golden(model_dir: str | Path, manifest: Manifest) -> Golden | None:
    """The folder's golden outputs; None when the manifest lists none (exported before they existed).

    GoldenError when the file is missing, its sha256 differs from the manifest's (corrupted or
    replaced), or it does not fit the contract / MoE layers. The sha256 is always checked.
    """
    entry = manifest.golden
    if not entry:
        return None
    root = Path(model_dir)
    path = root / str(entry.get("file", GOLDEN_FILE))
    if not path.is_file():
        raise GoldenError(f"{root}: golden file {path.name} listed in the manifest is missing")
    actual = sha256_file(path)
    if actual != entry.get("sha256"):
        raise GoldenError(
            f"{root}: golden file {path.name} is corrupted: sha256 {actual[:16]}..., manifest says "
            f"{str(entry.get('sha256'))[:16]}...; refusing on-target verification against it"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise GoldenError(f"{root}: golden file {path.name} is unreadable: {e}") from None
    return _golden_from_arrays(arrays, manifest, f"{root}/{path.name}")


def _golden_from_arrays(arrays: Mapping[str, np.ndarray], manifest: Manifest, source: str) -> Golden:
    c = manifest.contract
    s = c.sensors
    needed = [f"images_{cam}" for cam in s.camera_names] + ["joint_positions", "instructions", "actions", "reasoning_ids"]
    needed += [f"router_logits_{i}" for i in range(len(manifest.moe_layers))]
    missing = [k for k in needed if k not in arrays]
    if missing:
        raise GoldenError(f"{source} lacks {missing}")
    k = len(arrays["instructions"])
    want = {"actions": (k, c.chunk_length, s.num_joints), "joint_positions": (k, s.num_joints),
            "reasoning_ids": (k, c.max_reasoning_tokens)}
    want.update({f"images_{cam}": (k, s.image_height, s.image_width, 3) for cam in s.camera_names})
    for name, shape in want.items():
        if tuple(arrays[name].shape) != shape:
            raise GoldenError(f"{source}: {name} has shape {list(arrays[name].shape)}, the contract gives {list(shape)}")
    if k == 0:
        raise GoldenError(f"{source} holds no observations")
    observations = tuple(
        Observation(images={cam: arrays[f"images_{cam}"][i] for cam in s.camera_names},
                    joint_positions=arrays["joint_positions"][i], instruction=str(arrays["instructions"][i]),
                    stamp=0.1 * i)
        for i in range(k)
    )
    logits = {spec.name: arrays[f"router_logits_{i}"] for i, spec in enumerate(manifest.moe_layers)}
    return Golden(observations, arrays["actions"], arrays["reasoning_ids"], logits)


# --------------------------------------------------------------------------------- gates
def target_gate(manifest: Manifest, formulation: str, precision: str, providers_in_use: Sequence[str] = (),
                trt_fp16: bool = False) -> dict[str, float]:
    """The thresholds a (formulation, precision) pipeline must meet against the golden outputs.

    Quantised variants: their own export gate (manifest variants[].thresholds). fp32 graphs:
    FP32_TARGET_GATE, except when TensorRT builds fp16 engines (trt_fp16) and runs part of
    them: then the fp16 gate applies (the dense fp16 variant's, else the export default).
    """
    if precision != "fp32":
        recorded = (manifest.variant(formulation, precision) or {}).get("thresholds")
        return dict(recorded) if isinstance(recorded, Mapping) else dict(DEFAULT_GATES[precision])
    if trt_fp16 and TENSORRT_PROVIDER in providers_in_use:
        recorded = (manifest.variant("dense", "fp16") or {}).get("thresholds")
        return dict(recorded) if isinstance(recorded, Mapping) else dict(DEFAULT_GATES["fp16"])
    return dict(FP32_TARGET_GATE)


def verify_on_target(policy, golden: Golden, gate: Mapping[str, float], tie_margin: float | None = None) -> VerificationResult:
    """Run `policy` (a loaded StagedPolicy, on its actual providers) on the golden observations and
    compare with the fp32 reference: max action error, router top-k agreement (per layer, the
    lowest counts), identical reasoning tokens. Passed when every metric meets `gate`."""
    start = time.perf_counter()
    margin = DEFAULT_TIE_MARGIN if tie_margin is None else tie_margin
    errors, same_reasoning = [], 0
    agreement: dict[str, list[float]] = {s.name: [] for s in policy.moe_layers}
    for i, obs in enumerate(golden.observations):
        policy.reset()
        out, logits = policy.infer_with_router_logits(obs)
        errors.append(float(np.max(np.abs(out.actions - golden.actions[i]), initial=0.0)))
        ids = out.reasoning.token_ids if out.reasoning is not None else np.zeros_like(golden.reasoning_ids[i])
        same_reasoning += int(np.array_equal(ids, golden.reasoning_ids[i]))
        for spec in policy.moe_layers:
            if spec.name in golden.router_logits:
                ref = golden.router_logits[spec.name][i]
                agreement[spec.name].append(routing_agreement(ref, logits[spec.name], spec, margin).agreement)
    policy.reset()
    n = len(golden.observations)
    per_layer = {name: float(np.mean(v)) for name, v in agreement.items() if v}
    metrics = {
        "observations": n, "max_action_error": max(errors), "mean_action_error": float(np.mean(errors)),
        "router_agreement": min(per_layer.values(), default=1.0), "reasoning_agreement": same_reasoning / n,
    }
    misses = []
    if not metrics["max_action_error"] <= gate["max_action_error"]:  # NaN misses too
        misses.append(f"max action error {metrics['max_action_error']:.3g} rad > {gate['max_action_error']:.3g}")
    if metrics["router_agreement"] < gate["min_router_agreement"]:
        misses.append(f"router agreement {metrics['router_agreement']:.3f} < {gate['min_router_agreement']:.3f}")
    if metrics["reasoning_agreement"] < gate["min_reasoning_agreement"]:
        misses.append(f"reasoning agreement {metrics['reasoning_agreement']:.2f} < {gate['min_reasoning_agreement']:.2f}")
    meta = policy.metadata
    variant = f"{meta.formulation}/{_precision_of(policy)}"
    return VerificationResult(variant, not misses, metrics, dict(gate), "; ".join(misses), time.perf_counter() - start)


def _precision_of(policy) -> str:
    graphs = getattr(policy, "graphs", None)
    if graphs:
        precisions = {g.precision for g in graphs.values()} - {"fp32"}
        return next(iter(precisions), "fp32")
    return getattr(getattr(policy, "cfg", None), "precision", "fp32")
