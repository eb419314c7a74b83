"""Quantised graph variants and the gate that decides whether they ship.

* int8: `quant_pre_process` (symbolic shape inference + ORT graph optimisation), then
  `quantize_dynamic` on MatMul only (dynamic uint8 activations, int8 weights: ONNX Runtime's
  U8S8 MatMulInteger). Convolutions are never quantised. Made for every graph; meant for the
  CPU. The weights use 7 bits (`reduce_range`, values in [-64, 64]), see "Saturation" below.
* fp16: float16 conversion of the dense graphs with float32 inputs/outputs kept
  (`keep_io_types`); meant for GPUs (the CPU runs it too, which is how the gate measures it).

Saturation (why 7-bit weights). On x86 CPUs without VNNI (AVX2, AVX-512 without
avx512_vnni/avx_vnni, e.g. AMD EPYC Zen 2/3), ONNX Runtime's U8S8 kernel multiplies with
vpmaddubsw: each pair of adjacent products a[k] * b[k] + a[k+1] * b[k+1] (a uint8 activation,
b int8 weight) is summed in int16 with saturation. With 8-bit weights a pair reaches
2 * 255 * 128 = 65280 > 32767 and silently clips (a 4x8 matmul was off by 4.6 where the true
value is 0.17); with VNNI (vpdpbusd, int32 accumulation) and on ARM (widening dot products)
it cannot. With |b| <= 64 a pair is at most 2 * 255 * 64 = 32640 <= 32767 for ANY input, so
the same graph computes the same integers on every CPU. `avx2_pair_bound` computes that bound
for a weight tensor (test_quantize reproduces the saturating arithmetic in numpy), and
`make_int8` refuses to write a graph whose int8 weights could saturate. Measured (89x384 @
384x1536 @ 1536x384 FFN, 1 thread, Xeon with AVX-512 VNNI, ORT 1.31): fp32 1.47 ms; 8-bit
U8S8 0.38 ms, rel. error 0.021 (saturates on AVX2); 7-bit U8S8 0.36 ms, 0.030; 7-bit U8S8
per-channel 0.37 ms, 0.024; U8U8 (uint8 weights, no vpmaddubsw) 1.45 ms, 0.018 (no faster
than fp32 here). Per-channel weights break the MoE graphs (ORT rejects the per-column zero
point of the stacked [E, D, H] expert weights at run time), so the scheme is 7-bit per tensor.
On the seeded tiny demo model (8 held-out observations) the gate measured max action error
0.0061 rad / router agreement 0.991 with 8-bit weights and 0.0017 rad / 0.994 with 7-bit; on
the random small() model 0.0125 rad (mean 0.0038) / 0.977 with 8-bit and 0.0142 rad (mean
0.0057) / 0.984 with 7-bit (sparse graphs; VNNI CPU, where 8-bit does not saturate). Whole
small() policy, 1 thread, cached reasoning (bench_policy.py --quick): sparse fp32 21.6 ms,
sparse int8 (7-bit) 8.8 ms.
`gate_variant` compares a variant's whole pipeline with fp32 on held-out observations: action
error in contract units, router top-k agreement per MoE layer, identical reasoning tokens.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from moe_vla_ros.export.config import QuantizationGate
from moe_vla_ros.export.errors import ExportError
from moe_vla_ros.export.onnx_check import graph_op_types
from moe_vla_ros.runtime.config import CPU_PROVIDER, RuntimeConfig
from moe_vla_ros.runtime.onnx_policy import OnnxRuntimePolicy
from moe_vla_ros.runtime.providers import INT16_MAX, UINT8_MAX, cpu_description
from moe_vla_ros.runtime.telemetry import routing_agreement
from moe_vla_ros.runtime.types import Observation

logger = logging.getLogger(__name__)


def unshare_gemm_weights(model: onnx.ModelProto) -> int:
    """Give every Gemm its own copy of a weight initializer shared with other nodes; returns copies made.

    The exporter deduplicates identical initializers (e.g. two zero-initialised adapters);
    quantize_dynamic rewrites each Gemm's weight in place (transposing for transB), which
    corrupts the other users of a shared one.
    """
    uses: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    initializers = {init.name: init for init in model.graph.initializer}
    copies = 0
    for node in model.graph.node:
        if node.op_type != "Gemm" or len(node.input) < 2:
            continue
        weight = node.input[1]
        if weight in initializers and uses[weight] > 1:
            clone = onnx.TensorProto()
            clone.CopyFrom(initializers[weight])
            clone.name = f"{weight}__{node.name or copies}"
            model.graph.initializer.append(clone)
            node.input[1] = clone.name
            uses[weight] -= 1
            copies += 1
    return copies


@dataclass(frozen=True)
class Int8Scheme:
    """How `make_int8` quantises MatMul weights (activations are always dynamic uint8).

    Attributes:
        name: the name written into manifest.json (variants[].scheme.name).
        weight_bits: 7 (values in [-64, 64], `reduce_range`) or 8 ([-128, 127]).
        per_channel: one scale per output column instead of one per tensor.
        saturation_free: no int16 pair of the AVX2 U8S8 kernel can clip, for any input
            (2 * 255 * max|w| <= 32767). Only such schemes are exported.
    """

    name: str
    weight_bits: int
    per_channel: bool

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        if self.weight_bits not in (7, 8) or isinstance(self.weight_bits, bool):
            raise ValueError(f"weight_bits must be 7 or 8, got {self.weight_bits!r}")
        if not isinstance(self.per_channel, bool):
            raise ValueError(f"per_channel must be a bool, got {self.per_channel!r}")

    @property
    def saturation_free(self) -> bool:
        return 2 * UINT8_MAX * self.max_abs_weight <= INT16_MAX

    @property
    def max_abs_weight(self) -> int:
        return 64 if self.weight_bits == 7 else 128

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "activations": "uint8 dynamic", "weights": f"int{self.weight_bits} symmetric",
            "weight_bits": self.weight_bits, "per_channel": self.per_channel,
            "avx2_saturation_free": self.saturation_free,
        }


INT8_SCHEMES: dict[str, Int8Scheme] = {
    s.name: s for s in (
        Int8Scheme("u8s8_w7", 7, False),
        Int8Scheme("u8s8_w8", 8, False),  # saturates on AVX2 without VNNI: measured and refused, never shipped
    )
}
DEFAULT_INT8_SCHEME = "u8s8_w7"
PORTABLE_INT8_SCHEMES = tuple(name for name, s in INT8_SCHEMES.items() if s.saturation_free)


def avx2_pair_bound(weights: np.ndarray) -> int:
    """Largest |a[k] * b[k] + a[j] * b[j]| any uint8 activations reach with two weights of one column.

    `weights` [..., K, N] int8 (any leading axes, e.g. stacked experts). For any pairing of two
    entries of a column the worst case is 255 * (sum of the two largest positive weights) or
    255 * (sum of the two largest magnitudes of negative ones); the kernel's actual pairing is
    one of those, so a bound <= 32767 means the int16 sums cannot saturate.
    """
    w = weights.astype(np.int32)
    if w.ndim < 2 or w.shape[-2] < 2:
        return int(UINT8_MAX * np.abs(w).max(initial=0))
    pos = np.sort(np.clip(w, 0, None), axis=-2)[..., -2:, :].sum(axis=-2)  # [..., N]
    neg = np.sort(np.clip(-w, 0, None), axis=-2)[..., -2:, :].sum(axis=-2)  # [..., N]
    return int(UINT8_MAX * max(pos.max(initial=0), neg.max(initial=0)))


def int8_weight_bound(model: onnx.ModelProto) -> int:
    """avx2_pair_bound over every int8 initializer of a quantised graph (0 when it has none)."""
    bound = 0
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.INT8 and len(init.dims) >= 1:
            bound = max(bound, avx2_pair_bound(onnx.numpy_helper.to_array(init)))
    return bound


def make_int8(src: Path, dst: Path, scheme: str = DEFAULT_INT8_SCHEME, allow_saturating: bool = False) -> dict[str, Any]:
    """Dynamic int8 MatMul variant of `src` written to `dst` (see the module docstring).

    Returns the scheme record for the manifest ({"name", ..., "avx2_pair_bound"}). Raises
    ExportError for an unknown scheme, a saturating one (unless `allow_saturating`, for
    measurements and tests only) or a graph whose int8 weights could saturate.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if scheme not in INT8_SCHEMES:
        raise ExportError(f"unknown int8 scheme {scheme!r}; known: {sorted(INT8_SCHEMES)}")
    chosen = INT8_SCHEMES[scheme]
    if not chosen.saturation_free and not allow_saturating:
        raise ExportError(f"int8 scheme {scheme!r} saturates on x86 CPUs without VNNI; use one of {PORTABLE_INT8_SCHEMES}")
    model = onnx.load(str(src))
    unshare_gemm_weights(model)
    with tempfile.TemporaryDirectory(prefix="int8-", dir=dst.parent) as tmp:
        unshared, prepared = Path(tmp) / "unshared.onnx", Path(tmp) / "prepared.onnx"
        onnx.save(model, str(unshared))
        quant_logger = logging.getLogger("root")
        level = quant_logger.level
        quant_logger.setLevel(logging.ERROR)  # quant_pre_process logs every shape-inference step
        try:
            quant_pre_process(str(unshared), str(prepared))
            quantize_dynamic(str(prepared), str(dst), op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8,
                             per_channel=chosen.per_channel, reduce_range=chosen.weight_bits == 7)
        finally:
            quant_logger.setLevel(level)
    quantized = onnx.load(str(dst))
    ops = graph_op_types(quantized)
    if "ConvInteger" in ops or "MatMulInteger" not in ops:
        raise ExportError(f"{dst.name}: unexpected int8 graph (ops {sorted(ops)})")
    bound = int8_weight_bound(quantized)
    if chosen.saturation_free and bound > INT16_MAX:
        raise ExportError(f"{dst.name}: int8 weights reach an AVX2 pair sum of {bound} > {INT16_MAX} (would saturate)")
    return {**chosen.to_dict(), "avx2_pair_bound": bound}


def make_fp16(src: Path, dst: Path) -> None:
    """float16 variant of `src` (float32 inputs/outputs kept) written to `dst`."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))


def gate_variant(model_dir: Path, formulation: str, precision: str, gate: QuantizationGate,
                 observations: Sequence[Observation], tie_margin: float) -> dict[str, Any]:
    """Measure the (formulation, precision) pipeline against fp32; {"metrics", "thresholds", "passed"}.

    `model_dir` must hold a manifest that lists the variant as available (the exporter writes a
    provisional one while gating).
    """
    policies = {
        p: OnnxRuntimePolicy.load(model_dir, RuntimeConfig(providers=(CPU_PROVIDER,), formulation=formulation,
                                                           precision=p, verify_checksums=False))
        for p in ("fp32", precision)
    }
    action_errors, same_reasoning = [], 0
    agreement: dict[str, list[float]] = {s.name: [] for s in policies["fp32"].moe_layers}
    for obs in observations:
        runs = {}
        for p, policy in policies.items():
            policy.reset()
            runs[p] = policy.infer_with_router_logits(obs)
        (ref, ref_logits), (test, test_logits) = runs["fp32"], runs[precision]
        action_errors.append(float(np.max(np.abs(ref.actions - test.actions))))
        same_reasoning += int(np.array_equal(ref.reasoning.token_ids, test.reasoning.token_ids))
        for spec in policies["fp32"].moe_layers:
            agreement[spec.name].append(
                routing_agreement(ref_logits[spec.name], test_logits[spec.name], spec, tie_margin).agreement
            )
    for policy in policies.values():
        policy.close()
    per_layer = {name: float(np.mean(v)) for name, v in agreement.items()}
    metrics = {
        "observations": len(observations),
        "max_action_error": max(action_errors),
        "mean_action_error": float(np.mean(action_errors)),
        "router_agreement": min(per_layer.values(), default=1.0),
        "router_agreement_per_layer": per_layer,
        "reasoning_agreement": same_reasoning / len(observations),
    }
    passed = (
        metrics["max_action_error"] <= gate.max_action_error
        and metrics["router_agreement"] >= gate.min_router_agreement
        and metrics["reasoning_agreement"] >= gate.min_reasoning_agreement
    )
    gated_on = {**cpu_description(), "onnxruntime": ort_version(), "providers": [CPU_PROVIDER]}
    return {"metrics": metrics, "thresholds": gate.to_dict(), "passed": passed, "gated_on": gated_on}


def ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
