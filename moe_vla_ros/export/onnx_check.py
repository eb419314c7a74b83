"""Export a torch module to ONNX, run it with ONNX Runtime and compare with PyTorch.

Small reusable pieces for tests and export verification:

    model = export_onnx(module, (x,), path, input_names=["x"], output_names=["y"],
                        dynamic_shapes=({1: torch.export.Dim("tokens")},))
    session = ort_session(path)
    report = compare_with_onnxruntime(module, session, [(x_small,), (x_large,)])
    assert report.max_abs_error <= 1e-4 and not report.integer_mismatches
    assert graph_op_types(model) <= TENSORRT_STATIC_OPS

Uses torch.no_grad() (not inference_mode, which breaks export) and CPUExecutionProvider with
spinning disabled, so several sessions (or torch) in one process do not fight for cores.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import Tensor, nn

__all__ = [
    "ComparisonReport",
    "FORBIDDEN_DYNAMIC_OPS",
    "TENSORRT_STATIC_OPS",
    "compare_with_onnxruntime",
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
    found: set[str] = set()

    def visit(nodes: Sequence[onnx.NodeProto]) -> None:
        for node in nodes:
            found.add(node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}")
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    visit(attr.g.node)
                for graph in attr.graphs:
                    visit(graph.node)

    visit(model.graph.node)
    for function in model.functions:
        visit(function.node)
    return frozenset(found)


def ort_session(path: str | Path, intra_op_threads: int = 1) -> ort.InferenceSession:
    """An ONNX Runtime CPU session (spinning off); raises if CPU is not the provider in use."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    if session.get_providers()[0] != "CPUExecutionProvider":
        raise RuntimeError(f"expected CPUExecutionProvider, session uses {session.get_providers()}")
    return session


@dataclass
class ComparisonReport:
    """PyTorch vs ONNX Runtime over several input sets.

    max_abs_error: largest |torch - ort| over all float outputs and input sets.
    per_output_error: output name -> largest abs error over the input sets.
    integer_mismatches: "output[input set]" for integer outputs that differ anywhere.
    shape_mismatches: "output[input set]: torch shape vs ort shape".
    """

    max_abs_error: float = 0.0
    per_output_error: dict[str, float] = field(default_factory=dict)
    integer_mismatches: list[str] = field(default_factory=list)
    shape_mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.integer_mismatches and not self.shape_mismatches


def _flatten_outputs(result: Any) -> list[Tensor]:
    if isinstance(result, Tensor):
        return [result]
    return [t for t in result]


def compare_with_onnxruntime(
    module: nn.Module,
    session: ort.InferenceSession,
    input_sets: Sequence[tuple[Tensor, ...]],
) -> ComparisonReport:
    """Run ``module`` (eval, no_grad) and ``session`` on each input set and compare outputs in order."""
    input_names = [i.name for i in session.get_inputs()]
    output_names = [o.name for o in session.get_outputs()]
    report = ComparisonReport(per_output_error={name: 0.0 for name in output_names})
    was_training = module.training
    module.eval()
    try:
        for set_index, inputs in enumerate(input_sets):
            with torch.no_grad():
                expected = _flatten_outputs(module(*inputs))
            feeds = {name: t.detach().cpu().numpy() for name, t in zip(input_names, inputs)}
            actual = session.run(output_names, feeds)
            for name, want, got in zip(output_names, expected, actual):
                want_np = want.detach().cpu().numpy()
                tag = f"{name}[{set_index}]"
                if want_np.shape != got.shape:
                    report.shape_mismatches.append(f"{tag}: torch {want_np.shape} vs ort {got.shape}")
                    continue
                if np.issubdtype(want_np.dtype, np.floating):
                    err = float(np.max(np.abs(want_np - got), initial=0.0))
                    report.per_output_error[name] = max(report.per_output_error[name], err)
                    report.max_abs_error = max(report.max_abs_error, err)
                elif not np.array_equal(want_np, got):
                    report.integer_mismatches.append(tag)
    finally:
        module.train(was_training)
    return report
