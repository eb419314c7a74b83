"""Stage graphs: file names, static batch-1 I/O, and the dense (TensorRT) op allowlist."""

import onnx
import pytest

from moe_vla_ros.export.errors import ExportVerificationError
from moe_vla_ros.export.graphs import check_graph_ops, graph_file
from moe_vla_ros.export.onnx_check import FORBIDDEN_DYNAMIC_OPS, TENSORRT_STATIC_OPS, graph_op_types
from moe_vla_ros.runtime.manifest import read_manifest


def test_file_names():
    assert graph_file("vision", "any") == "vision.onnx"
    assert graph_file("reasoning_step", "any", "int8") == "reasoning_step.int8.onnx"
    assert graph_file("reasoning_context", "any") == "reasoning_context.onnx"
    assert graph_file("trunk", "dense", "fp16") == "trunk.dense.fp16.onnx"
    assert graph_file("action_head", "sparse") == "action_head.sparse.onnx"


def test_every_graph_has_static_batch_one_inputs(demo_export):
    manifest = read_manifest(demo_export.model)
    c = manifest.contract
    s = c.sensors
    for g in manifest.graphs:
        for spec in g.inputs:
            assert spec.shape[0] == 1 and all(d > 0 for d in spec.shape), (g.file, spec)
    vision = manifest.find_graph("vision", "sparse", "fp32")
    assert vision.inputs[0].shape == (1, len(s.camera_names), 3, s.image_height, s.image_width)
    assert vision.inputs[0].dtype == "uint8"
    head = manifest.find_graph("action_head", "dense", "fp32")
    assert head.outputs[0].shape == (1, c.chunk_length, s.num_joints)
    assert head.outputs[1].shape == (1, c.chunk_length, 4)  # router_logits [M, N, E]


@pytest.mark.parametrize("file", ["trunk.dense.onnx", "action_head.dense.onnx", "trunk.dense.fp16.onnx",
                                  "action_head.dense.fp16.onnx"])
def test_dense_graphs_use_only_tensorrt_ops(demo_export, file):
    ops = graph_op_types(onnx.load(str(demo_export.model / file)))
    assert ops <= TENSORRT_STATIC_OPS, sorted(ops - TENSORRT_STATIC_OPS)
    assert "TopK" in ops and "MatMul" in ops


@pytest.mark.parametrize("file", ["trunk.sparse.onnx", "action_head.sparse.onnx"])
def test_sparse_graphs_loop_over_experts(demo_export, file):
    """The sparse graphs do use data-dependent ops, so the allowlist check above is not vacuous; they
    combine experts by gathers, without ScatterND (TensorRT 10 rejects its reduction=add)."""
    ops = graph_op_types(onnx.load(str(demo_export.model / file)))
    assert ops & FORBIDDEN_DYNAMIC_OPS == {"NonZero"}


def test_allowlist_check_rejects_a_sparse_graph_labelled_dense(demo_export):
    manifest = read_manifest(demo_export.model)
    sparse = manifest.find_graph("trunk", "sparse", "fp32")
    labelled_dense = type(sparse)(sparse.file, "trunk", "dense", "fp32", sparse.inputs, sparse.outputs)
    with pytest.raises(ExportVerificationError, match="outside the TensorRT allowlist.*NonZero"):
        check_graph_ops(demo_export.model / sparse.file, labelled_dense)
    report = check_graph_ops(demo_export.model / "vision.onnx", manifest.find_graph("vision", "dense", "fp32"))
    assert report["outside_tensorrt_allowlist"] == [], "vision is shared: Conv is a TensorRT op"
