"""The dependency-free ONNX header reader agrees with the onnx package and rejects non-models."""

import onnx
import pytest
from onnx import TensorProto, helper

from moe_vla_ros.runtime.onnx_file import OnnxHeaderError, parse_header, read_header


def tiny_model(opset: int, extra_domain: bool = False) -> bytes:
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("com.microsoft", 1)] if extra_domain else [])
    return helper.make_model(graph, opset_imports=opsets, producer_name="test").SerializeToString()


@pytest.mark.parametrize("opset", [17, 18, 21])
def test_header_matches_onnx(opset):
    data = tiny_model(opset, extra_domain=True)
    header = parse_header(data)
    model = onnx.load_from_string(data)
    assert header.ir_version == model.ir_version
    assert header.default_opset == opset
    assert header.opsets == {"": opset, "com.microsoft": 1}


def test_exported_graph(demo_export):
    assert read_header(demo_export.model / "trunk.sparse.onnx").default_opset == 18


@pytest.mark.parametrize(
    "data",
    [b"", b"not a model at all", b"\x08\x07", tiny_model(18)[:-5], b"\xff" * 40],
    ids=["empty", "text", "ir_version_only", "truncated", "bad_varint"],
)
def test_rejects_non_models(data):
    with pytest.raises(OnnxHeaderError):
        parse_header(data)
