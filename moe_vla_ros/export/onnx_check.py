"""Export a torch module to ONNX, run it with ONNX Runtime and check its ops.

Small reusable pieces for the export and its tests:

    model = export_onnx(module, (x,), path, input_names=["x"], output_names=["y"],
                        dynamic_shapes=({1: torch.export.Dim("tokens")},))
    session = ort_session(path)
    assert graph_op_types(model) <= TENSORRT_STATIC_OPS

Uses torch.no_grad() (not inference_mode, which breaks export) and CPUExecutionProvider with
spinning disabled, so several sessions (or torch) in one process do not fight for cores.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort
import torch
from torch import Tensor, nn

from moe_vla_ros.export.tensorrt_ops import all_nodes

__all__ = [
    "FORBIDDEN_DYNAMIC_OPS",
    "TENSORRT_STATIC_OPS",
    "export_onnx",
    "graph_op_types",
    "ort_session",
]

# Default-domain ONNX ops that TensorRT 10 parses with static shapes and no data-dependent
# control flow: what the dense MoE formulation (and the rest of an exported policy) may use.
TENSORRT_STATIC_OPS = frozenset(
    {
        "Abs", "Add", "And", "ArgMax", "ArgMin", "Cast", "CastLike", "Ceil", "Clip", "Concat",
        "Constant", "ConstantOfShape", "Conv", "CumSum", "Div", "Equal", "Erf", "Exp", "Expand",
        "Flatten", "Floor", "Gather", "GatherElements", "Gelu", "Gemm", "Greater", "GreaterOrEqual",
        "Identity", "LayerNormalization", "Less", "LessOrEqual", "Log", "LogSoftmax", "MatMul", "Max",
        "Min", "Mul", "Neg", "Not", "Or", "Pow", "Range", "Reciprocal", "ReduceL2", "ReduceLogSumExp",
        "ReduceMax", "ReduceMean", "ReduceMin", "ReduceSum", "ReduceSumSquare", "Relu", "Reshape",
        "Shape", "Sigmoid", "Slice", "Softmax", "Split", "Sqrt", "Squeeze", "Sub", "Tanh", "Tile",
        "TopK", "Transpose", "Trilu", "Unsqueeze", "Where",
    }
)
# Data-dependent shapes or control flow: must not appear in a TensorRT-friendly graph.
FORBIDDEN_DYNAMIC_OPS = frozenset({"NonZero", "ScatterND", "ScatterElements", "Loop", "If", "Scan", "Compress"})


def export_onnx(
    module: nn.Module,
    args: tuple[Tensor, ...],
    path: str | Path,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_shapes: Any = None,
    opset_version: int = 18,
) -> onnx.ModelProto:
    """torch.onnx.export(dynamo=True) ``module(*args)`` in eval mode to ``path``; returns the model."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # torch's own pytree deprecation notice, raised inside the exporter.
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            program = torch.onnx.export(
                module,
                args,
                dynamo=True,
                opset_version=opset_version,
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_shapes=dynamic_shapes,
                verbose=False,
            )
        program.save(str(path))
    finally:
        module.train(was_training)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    return model


def graph_op_types(model: onnx.ModelProto) -> frozenset[str]:
    """Op types used anywhere in the model (subgraphs and local functions included).

    Default-domain ops are plain names ("MatMul"); other domains are "domain::Op".
    """
    return frozenset(
        node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}" for node in all_nodes(model)
    )


def ort_session(path: str | Path, intra_op_threads: int = 1) -> ort.InferenceSession:
    """An ONNX Runtime CPU session (spinning off); raises if CPU is not the provider in use."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    if session.get_providers()[0] != "CPUExecutionProvider":
        raise RuntimeError(f"expected CPUExecutionProvider, session uses {session.get_providers()}")
    return session
