"""int8 / fp16 variants and their gate: a threshold that must fail fails, and the variant is dropped."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from moe_vla_ros.export.config import ExportConfig, QuantizationGate
from moe_vla_ros.export.pipeline import export_policy
from moe_vla_ros.export.quantize import gate_variant, make_fp16, make_int8, unshare_gemm_weights
from moe_vla_ros.model.onnx_check import graph_op_types
from moe_vla_ros.runtime.config import RuntimeConfig
from moe_vla_ros.runtime.loader import load_policy
from moe_vla_ros.runtime.manifest import ModelLoadError, read_manifest
from moe_vla_ros.runtime.sample_observations import random_observations


def shared_weight_model(path):
    """y = (x @ W.T) @ W.T with one W [8, 8] shared by two Gemm(transB=1) nodes (as the exporter dedups)."""
    w = np.random.default_rng(0).normal(size=(8, 8)).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "W"], ["h"], transB=1), helper.make_node("Gemm", ["h", "W"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])],
                              [numpy_helper.from_array(w, "W")])  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), str(path))
    return w


def test_unshare_gives_each_gemm_its_own_weight(tmp_path):
    shared_weight_model(tmp_path / "m.onnx")
    model = onnx.load(str(tmp_path / "m.onnx"))
    assert unshare_gemm_weights(model) == 1
    assert len({n.input[1] for n in model.graph.node}) == 2
    assert unshare_gemm_weights(model) == 0


def test_int8_and_fp16_variants_run_and_stay_close(tmp_path):
    w = shared_weight_model(tmp_path / "m.onnx")
    make_int8(tmp_path / "m.onnx", tmp_path / "m.int8.onnx")
    make_fp16(tmp_path / "m.onnx", tmp_path / "m.fp16.onnx")
    assert "MatMulInteger" in graph_op_types(onnx.load(str(tmp_path / "m.int8.onnx")))
    x = np.random.default_rng(1).normal(size=(4, 8)).astype(np.float32)
    want = (x @ w.T) @ w.T
    for name, tolerance in (("m.int8.onnx", 0.1), ("m.fp16.onnx", 0.01)):
        session = ort.InferenceSession(str(tmp_path / name), providers=["CPUExecutionProvider"])
        got = session.run(None, {"x": x})[0]
        assert got.dtype == np.float32
        assert np.max(np.abs(got - want)) < tolerance * np.max(np.abs(want)), name


def test_gate_measures_and_compares(demo_export):
    contract = read_manifest(demo_export.model).contract
    observations = random_observations(contract, 2, seed=5)
    strict = gate_variant(demo_export.model, "sparse", "int8", QuantizationGate(0.0, 1.0), observations, 1e-4)
    lenient = gate_variant(demo_export.model, "sparse", "int8", QuantizationGate(10.0, 0.0), observations, 1e-4)
    assert not strict["passed"] and lenient["passed"]
    m = strict["metrics"]
    assert 0.0 < m["max_action_error"] < 0.05 and 0.0 <= m["router_agreement"] <= 1.0
    assert set(m["router_agreement_per_layer"]) == {"trunk.blocks.1.ffn", "action_head.blocks.0.ffn"}
    assert strict["thresholds"]["max_action_error"] == 0.0
    fp16 = gate_variant(demo_export.model, "dense", "fp16", QuantizationGate(0.0, 1.0), observations, 1e-4)
    assert not fp16["passed"] and fp16["metrics"]["max_action_error"] > 0.0


def test_fixture_export_kept_its_variants_and_reports_numbers(demo_export):
    manifest = read_manifest(demo_export.model)
    variants = {(v["formulation"], v["precision"]): v for v in manifest.variants}
    assert set(variants) == {("sparse", "int8"), ("dense", "int8"), ("dense", "fp16")}
    assert all(v["kept"] for v in variants.values())
    assert variants[("dense", "fp16")]["metrics"]["max_action_error"] < 0.01
    assert set(manifest.available_variants()) == {("sparse", "fp32"), ("dense", "fp32"), *variants}


def test_failing_gate_drops_the_variant(demo_export, tmp_path):
    cfg = ExportConfig(formulations=("sparse",), int8=True, int8_gate=QuantizationGate(0.0, 1.0), gate_observations=2,
                       policy_observations=1)  # fmt: skip
    manifest = export_policy(demo_export.checkpoint, tmp_path / "model", cfg)
    (variant,) = manifest.variants
    assert (variant["formulation"], variant["precision"], variant["kept"]) == ("sparse", "int8", False)
    assert variant["metrics"]["max_action_error"] > 0.0, "measured numbers are reported for dropped variants too"
    assert not list((tmp_path / "model").glob("*.int8.onnx"))
    assert all(g.precision == "fp32" for g in read_manifest(tmp_path / "model").graphs)
    with pytest.raises(ModelLoadError, match="has no int8 variant that passed"):
        load_policy(tmp_path / "model", RuntimeConfig(providers=("CPUExecutionProvider",), precision="int8"))
