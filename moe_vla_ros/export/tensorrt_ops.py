"""Which ops of an ONNX graph TensorRT 10's ONNX parser cannot take (the TensorRT execution provider
then splits the graph and runs the rest on CPU, or, for unsupported attributes, fails or differs).

TENSORRT10_ONNX_OPS is the "Y" column of the onnx-tensorrt operator support matrix for
TensorRT 10.x (onnx/onnx-tensorrt, docs/operators.md, release/10.x: "TensorRT 10.15 supports
operators in the inclusive range of opset 9 to opset 24";
https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md). Restrictions from its
"Restrictions" column that our graphs can hit are checked per node (`RESTRICTIONS`):

* ScatterND: "`reduction` other than `none` is not supported" (index_add exports as
  ScatterND(reduction=add); TensorRT 8.6/9.x ignored the attribute and overwrote instead);
* TopK: "`sorted` must be 1".

Data types are not checked (our float graphs are FP32/FP16; the int8 CPU graphs are reported
with their MatMulInteger / DynamicQuantizeLinear, which TensorRT does not parse).

    report = tensorrt_op_report(onnx.load("trunk.sparse.onnx"))
    report["unsupported"]   # [] when TensorRT 10 parses the graph whole
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import onnx

TENSORRT_DOC = "onnx/onnx-tensorrt docs/operators.md (TensorRT 10.x operator support matrix)"

TENSORRT10_ONNX_OPS = frozenset(
    {
        "Abs", "Acos", "Acosh", "Add", "And", "ArgMax", "ArgMin", "Asin", "Asinh", "Atan", "Atanh",
        "Attention", "AveragePool", "BatchNormalization", "BlackmanWindow", "Cast", "CastLike", "Ceil",
        "Celu", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv", "ConvTranspose", "Cos", "Cosh",
        "CumSum", "DeformConv", "DepthToSpace", "DequantizeLinear", "Div", "Dropout", "Einsum", "Elu",
        "Equal", "Erf", "Exp", "Expand", "EyeLike", "Flatten", "Floor", "Gather", "GatherElements",
        "GatherND", "Gelu", "Gemm", "GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool", "Greater",
        "GreaterOrEqual", "GridSample", "GroupNormalization", "GRU", "HammingWindow", "HannWindow",
        "HardSigmoid", "HardSwish", "Hardmax", "Identity", "If", "ImageScaler", "InstanceNormalization",
        "IsInf", "IsNaN", "LayerNormalization", "LeakyRelu", "Less", "LessOrEqual", "Log", "LogSoftmax",
        "Loop", "LRN", "LSTM", "LpNormalization", "LpPool", "MatMul", "Max", "MaxPool", "Mean",
        "MeanVarianceNormalization", "Min", "Mish", "Mod", "Mul", "Neg", "NonMaxSuppression", "NonZero",
        "Not", "OneHot", "Or", "Pad", "ParametricSoftplus", "Pow", "PRelu", "QuantizeLinear",
        "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Range", "Reciprocal",
        "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin",
        "ReduceProd", "ReduceSum", "ReduceSumSquare", "Relu", "Reshape", "Resize", "ReverseSequence",
        "RMSNormalization", "RNN", "RoiAlign", "RotaryEmbedding", "Round", "STFT", "ScaledTanh", "Scan",
        "Scatter", "ScatterElements", "ScatterND", "Selu", "Shape", "Shrink", "Sigmoid", "Sign", "Sin",
        "Sinh", "Size", "Slice", "Softmax", "Softplus", "Softsign", "SpaceToDepth", "Split", "Sqrt",
        "Squeeze", "Sub", "Sum", "Tan", "Tanh", "TensorScatter", "ThresholdedRelu", "Tile", "TopK",
        "Transpose", "Trilu", "Unsqueeze", "Upsample", "Where", "Xor",
    }
)


def _attr(node: onnx.NodeProto, name: str, default: Any) -> Any:
    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


# op type -> (node -> why TensorRT 10 does not take it, "" when it does)
RESTRICTIONS: dict[str, Callable[[onnx.NodeProto], str]] = {
    "ScatterND": lambda n: "" if _attr(n, "reduction", "none") == "none" else f"reduction={_attr(n, 'reduction', 'none')}",
    "TopK": lambda n: "" if _attr(n, "sorted", 1) == 1 else "sorted=0",
}


def all_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Every node of `model`: the main graph's, those of subgraphs (If/Loop/Scan bodies) and of
    local functions."""
    found: list[onnx.NodeProto] = []

    def visit(nodes: Sequence[onnx.NodeProto]) -> None:
        for node in nodes:
            found.append(node)
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    visit(a.g.node)
                for g in a.graphs:
                    visit(g.node)

    visit(model.graph.node)
    for function in model.functions:
        visit(function.node)
    return found


def tensorrt_op_report(model: onnx.ModelProto) -> dict[str, Any]:
    """{"unsupported": sorted ["Op" or "Op(attr=value)" TensorRT 10 cannot parse], "source": TENSORRT_DOC}.

    Ops of other domains (com.microsoft contrib ops) are reported as "domain::Op".
    """
    unsupported: set[str] = set()
    for node in all_nodes(model):
        if node.domain not in ("", "ai.onnx"):
            unsupported.add(f"{node.domain}::{node.op_type}")
        elif node.op_type not in TENSORRT10_ONNX_OPS:
            unsupported.add(node.op_type)
        elif node.op_type in RESTRICTIONS and (why := RESTRICTIONS[node.op_type](node)):
            unsupported.add(f"{node.op_type}({why})")
    return {"unsupported": sorted(unsupported), "source": TENSORRT_DOC}
