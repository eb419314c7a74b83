"""Quantised graph variants and the gate that decides whether they ship.

* int8: `quant_pre_process` (symbolic shape inference + ORT graph optimisation), then
  `quantize_dynamic` on MatMul only (dynamic int8 activations, int8 weights). Convolutions
  are never quantised. Made for every graph; meant for the CPU.
* fp16: float16 conversion of the dense graphs with float32 inputs/outputs kept
  (`keep_io_types`); meant for GPUs (the CPU runs it too, which is how the gate measures it).

`gate_variant` compares a variant's whole pipeline with fp32 on held-out observations: action
error in contract units, router top-k agreement per MoE layer, identical reasoning tokens.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnx

from moe_vla_ros.export.config import QuantizationGate
from moe_vla_ros.export.errors import ExportError
from moe_vla_ros.model.onnx_check import graph_op_types
from moe_vla_ros.runtime.config import CPU_PROVIDER, RuntimeConfig
from moe_vla_ros.runtime.onnx_policy import OnnxRuntimePolicy
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


def make_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 MatMul variant of `src` written to `dst` (see the module docstring)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

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
            quantize_dynamic(str(prepared), str(dst), op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8)
        finally:
            quant_logger.setLevel(level)
    ops = graph_op_types(onnx.load(str(dst)))
    if "ConvInteger" in ops or "MatMulInteger" not in ops:
        raise ExportError(f"{dst.name}: unexpected int8 graph (ops {sorted(ops)})")


def make_fp16(src: Path, dst: Path) -> None:
    """float16 variant of `src` (float32 inputs/outputs kept) written to `dst`."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))


def gate_variant(model_dir: Path, formulation: str, precision: str, gate: QuantizationGate,
                 observations: Sequence[Observation], tie_margin: float) -> dict[str, Any]:  # fmt: skip
    """Measure the (formulation, precision) pipeline against fp32; {"metrics", "thresholds", "passed"}.

    `model_dir` must hold a manifest that lists the variant as available (the exporter writes a
    provisional one while gating).
    """
    policies = {
        p: OnnxRuntimePolicy.load(model_dir, RuntimeConfig(providers=(CPU_PROVIDER,), formulation=formulation,
                                                           precision=p, verify_checksums=False))  # fmt: skip
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
    return {"metrics": metrics, "thresholds": gate.to_dict(), "passed": passed}
