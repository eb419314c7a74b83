"""The TensorRT 10 op report: per graph, the ops TensorRT's ONNX parser cannot take."""

import onnx
from onnx import TensorProto, helper

from moe_vla_ros.export.onnx_check import TENSORRT_STATIC_OPS
from moe_vla_ros.export.tensorrt_ops import TENSORRT10_ONNX_OPS, tensorrt_op_report
from moe_vla_ros.paths import bundled_model_dir
from moe_vla_ros.runtime.manifest import read_manifest


def one_node_model(op: str, **attrs) -> onnx.ModelProto:
    node = helper.make_node(op, ["data", "indices", "updates"], ["y"], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                                            for n in ("data", "indices", "updates")],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(graph)


def test_scatter_with_reduction_and_integer_ops_are_reported():
    assert tensorrt_op_report(one_node_model("ScatterND"))["unsupported"] == []
    assert tensorrt_op_report(one_node_model("ScatterND", reduction="add"))["unsupported"] == ["ScatterND(reduction=add)"]
    assert tensorrt_op_report(one_node_model("MatMulInteger"))["unsupported"] == ["MatMulInteger"]
    assert "operators.md" in tensorrt_op_report(one_node_model("Add"))["source"]


def test_static_allowlist_is_inside_tensorrt_and_has_conv():
    assert "Conv" in TENSORRT_STATIC_OPS and TENSORRT_STATIC_OPS <= TENSORRT10_ONNX_OPS


def test_bundled_graphs_report():
    """Dense and shared graphs: all supported. The bundled sparse graphs were exported with the
    index_add combine (ScatterND reduction=add), which the runtime refuses under TensorRT."""
    model_dir = bundled_model_dir()
    manifest = read_manifest(model_dir, verify_checksums=False)
    reports = {g.file: tensorrt_op_report(onnx.load(str(model_dir / g.file), load_external_data=False))
               for g in manifest.graphs}
    dense = {f: r["unsupported"] for f, r in reports.items() if ".sparse." not in f}
    assert dense == {f: [] for f in dense} and "vision.onnx" in dense and "trunk.dense.onnx" in dense
    sparse = {f: r["unsupported"] for f, r in reports.items() if ".sparse." in f}
    assert set(sparse) == {"trunk.sparse.onnx", "action_head.sparse.onnx"}
    assert all(u in ([], ["ScatterND(reduction=add)"]) for u in sparse.values()), sparse


def test_export_writes_the_report_and_every_fp32_graph_parses_whole(demo_export):
    manifest = read_manifest(demo_export.model)
    report = manifest.verification["tensorrt"]
    assert set(report) == {g.file for g in manifest.graphs}
    for g in manifest.graphs:
        if g.precision == "int8":  # CPU graphs: MatMulInteger / DynamicQuantizeLinear are not TensorRT ops
            assert "MatMulInteger" in report[g.file]["unsupported"]
        else:
            assert report[g.file]["unsupported"] == [], (g.file, report[g.file])
