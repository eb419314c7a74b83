"""int8 / fp16 variants and their gate: a threshold that must fail fails, and the variant is dropped."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from moe_vla_ros.export.config import ExportConfig, ExportConfigError, QuantizationGate
from moe_vla_ros.export.errors import ExportError
from moe_vla_ros.export.onnx_check import graph_op_types
from moe_vla_ros.export.pipeline import export_policy
from moe_vla_ros.export.quantize import (
    avx2_pair_bound,
    gate_variant,
    int8_weight_bound,
    make_fp16,
    make_int8,
    unshare_gemm_weights,
)
from moe_vla_ros.runtime.config import RuntimeConfig
from moe_vla_ros.runtime.loader import load_policy
from moe_vla_ros.runtime.manifest import ModelLoadError, read_manifest
from moe_vla_ros.runtime.providers import INT16_MAX
from moe_vla_ros.runtime.sample_observations import random_observations


def shared_weight_model(path):
    """y = (x @ W.T) @ W.T with one W [8, 8] shared by two Gemm(transB=1) nodes (as the exporter dedups)."""
    w = np.random.default_rng(0).normal(size=(8, 8)).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "W"], ["h"], transB=1), helper.make_node("Gemm", ["h", "W"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])],
                              [numpy_helper.from_array(w, "W")])
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
                       policy_observations=1)
    manifest = export_policy(demo_export.checkpoint, tmp_path / "model", cfg)
    (variant,) = manifest.variants
    assert (variant["formulation"], variant["precision"], variant["kept"]) == ("sparse", "int8", False)
    assert variant["metrics"]["max_action_error"] > 0.0, "measured numbers are reported for dropped variants too"
    assert not list((tmp_path / "model").glob("*.int8.onnx"))
    assert all(g.precision == "fp32" for g in read_manifest(tmp_path / "model").graphs)
    with pytest.raises(ModelLoadError, match="has no int8 variant that passed"):
        load_policy(tmp_path / "model", RuntimeConfig(providers=("CPUExecutionProvider",), precision="int8"))


# ----------------------------------------------------------------------------------------------
# Saturation: ONNX Runtime's U8S8 kernel on x86 without VNNI (vpmaddubsw) adds adjacent u8 * s8
# products in int16 with saturation. Emulated in numpy so the test holds on every CPU.


def matmul_model(path, w):
    """y = x @ w, x [M, K] float, w [K, N] initializer."""
    m, k = 4, w.shape[0]
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "mm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, w.shape[1]])],
                              [numpy_helper.from_array(w, "W")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), str(path))


def quantized_weight(path):
    """(int8 weights [K, N], scale) of the single quantised MatMul in `path`."""
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    (w,) = [v for v in inits.values() if v.dtype == np.int8 and v.ndim == 2]
    (scale,) = [v for n, v in inits.items() if n.endswith("_scale") and v.dtype == np.float32]
    return w, float(scale)


def emulate_u8s8_avx2(a: np.ndarray, b: np.ndarray, saturate: bool = True) -> np.ndarray:
    """a [M, K] uint8 @ b [K, N] int8 -> [M, N] int32, as the AVX2 U8S8 kernel (vpmaddubsw) computes it.

    Adjacent products are added in pairs (k = 0,1 / 2,3 / ...) and each pair sum is clipped to
    int16 when `saturate`, then the pairs are summed in int32 (vpmaddwd). saturate=False is the
    exact product (VNNI, ARM).
    """
    a32, b32 = a.astype(np.int32), b.astype(np.int32)
    if a32.shape[1] % 2:
        a32 = np.pad(a32, ((0, 0), (0, 1)))  # [M, K + 1]
        b32 = np.pad(b32, ((0, 1), (0, 0)))  # [K + 1, N]
    pairs = a32[:, 0::2, None] * b32[None, 0::2, :] + a32[:, 1::2, None] * b32[None, 1::2, :]  # [M, K/2, N]
    if saturate:
        pairs = np.clip(pairs, -INT16_MAX - 1, INT16_MAX)
    return pairs.sum(axis=1, dtype=np.int64).astype(np.int32)  # [M, N]


def emulated_int8_matmul(x, w_q, w_scale, saturate):
    """x @ w as the dynamic U8S8 pipeline computes it (DynamicQuantizeLinear, then MatMulInteger)."""
    lo, hi = min(0.0, float(x.min())), max(0.0, float(x.max()))
    a_scale = (hi - lo) / 255.0
    a_zp = int(np.clip(np.round(-lo / a_scale), 0, 255))
    a = np.clip(np.round(x / a_scale) + a_zp, 0, 255).astype(np.uint8)  # [M, K]
    acc = emulate_u8s8_avx2(a, w_q, saturate=saturate).astype(np.int64)  # [M, N]
    acc -= a_zp * w_q.astype(np.int64).sum(axis=0)  # activation zero-point correction
    return acc * a_scale * w_scale, a_scale


def scheme_tolerance(x, w, a_scale, w_scale):
    """Largest |int8 - fp32| rounding alone can cause: per product half a weight step and one activation
    step (half for rounding, up to half more where the zero point's rounding clips the largest value)."""
    k = x.shape[1]
    return k * (a_scale * np.abs(w).max() + 0.5 * w_scale * np.abs(x).max() + 0.5 * a_scale * w_scale)


def test_old_8bit_weights_saturate_in_avx2_emulation_and_7bit_weights_cannot(tmp_path):
    rng = np.random.default_rng(3)
    w = rng.normal(scale=0.05, size=(8, 8)).astype(np.float32)
    w[0:2, 0] = 1.0  # two large weights of one column that the kernel adds as a pair
    matmul_model(tmp_path / "m.onnx", w)
    x = rng.uniform(0.0, 0.05, size=(4, 8)).astype(np.float32)
    x[:, 0:2] = 1.0  # the largest activations (uint8 255) meet the largest weights
    want = x @ w
    results = {}
    for scheme in ("u8s8_w8", "u8s8_w7"):
        info = make_int8(tmp_path / "m.onnx", tmp_path / f"{scheme}.onnx", scheme, allow_saturating=True)
        w_q, w_scale = quantized_weight(tmp_path / f"{scheme}.onnx")
        assert info["avx2_pair_bound"] == avx2_pair_bound(w_q)
        avx2, a_scale = emulated_int8_matmul(x, w_q, w_scale, saturate=True)
        exact, _ = emulated_int8_matmul(x, w_q, w_scale, saturate=False)
        tolerance = scheme_tolerance(x, w, a_scale, w_scale)
        results[scheme] = (info, np.abs(avx2 - want).max(), np.abs(exact - want).max(), tolerance)
    old, new = results["u8s8_w8"], results["u8s8_w7"]
    assert not old[0]["avx2_saturation_free"] and old[0]["avx2_pair_bound"] > 32767
    assert old[1] > 10 * old[3], "8-bit weights: the AVX2 emulation clips and misses far beyond rounding"
    assert old[2] <= old[3], "8-bit weights are fine where products accumulate in int32 (VNNI, ARM)"
    assert new[0]["avx2_saturation_free"] and new[0]["avx2_pair_bound"] <= 32767
    assert new[1] == new[2] and new[1] <= new[3], "7-bit weights: AVX2 computes the exact integers"


def test_avx2_pair_bound_is_a_bound_for_any_input():
    rng = np.random.default_rng(0)
    w = rng.integers(-64, 65, size=(16, 6)).astype(np.int8)
    assert avx2_pair_bound(w) <= 32767
    for _ in range(50):  # random and extreme activations never clip
        a = rng.choice(np.array([0, 255, 128, 1], dtype=np.uint8), size=(3, 16))
        assert np.array_equal(emulate_u8s8_avx2(a, w, saturate=True), emulate_u8s8_avx2(a, w, saturate=False))
    full = w.copy()
    full[0, 0], full[1, 0] = 127, 127
    assert avx2_pair_bound(full) == 255 * 254
    a = np.zeros((1, 16), np.uint8)
    a[0, :2] = 255
    assert emulate_u8s8_avx2(a, full, saturate=True)[0, 0] == 32767 != emulate_u8s8_avx2(a, full, saturate=False)[0, 0]


def test_ort_int8_matmul_stays_within_the_scheme_tolerance(tmp_path):
    """On any CPU (AVX2, AVX-512 VNNI, ARM) the exported scheme computes within its rounding bound."""
    rng = np.random.default_rng(5)
    w = rng.normal(size=(64, 16)).astype(np.float32)
    w[0:2, :] = 3 * np.abs(w).max()  # worst case for pairs: large weights with the largest activations
    matmul_model(tmp_path / "m.onnx", w)
    make_int8(tmp_path / "m.onnx", tmp_path / "m.int8.onnx")
    w_q, w_scale = quantized_weight(tmp_path / "m.int8.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.int8.onnx"), providers=["CPUExecutionProvider"])
    for x in (rng.normal(size=(4, 64)), np.abs(rng.normal(size=(4, 64))) + np.eye(4, 64) * 5):
        x = x.astype(np.float32)
        got = session.run(None, {"x": x})[0]
        _, a_scale = emulated_int8_matmul(x, w_q, w_scale, saturate=True)
        assert np.abs(got - x @ w).max() <= scheme_tolerance(x, w, a_scale, w_scale)


def test_saturating_scheme_is_refused_for_export(tmp_path):
    shared_weight_model(tmp_path / "m.onnx")
    with pytest.raises(ExportError, match="saturates on x86 CPUs without VNNI"):
        make_int8(tmp_path / "m.onnx", tmp_path / "m.int8.onnx", "u8s8_w8")
    with pytest.raises(ExportConfigError, match="int8_scheme"):
        ExportConfig(int8=True, int8_scheme="u8s8_w8")


def test_exported_int8_graphs_cannot_saturate_and_the_manifest_says_where_they_were_gated(demo_export):
    manifest = read_manifest(demo_export.model)
    for v in manifest.variants:
        assert {"cpu_model", "isa", "int8_kernel", "machine", "onnxruntime"} <= set(v["gated_on"])
        assert v["gated_on"]["onnxruntime"] == ort.__version__
    for v in (v for v in manifest.variants if v["precision"] == "int8"):
        assert v["scheme"]["name"] == "u8s8_w7" and v["scheme"]["avx2_saturation_free"]
        assert v["scheme"]["avx2_pair_bound"] <= 32767
    for path in demo_export.model.glob("*.int8.onnx"):
        assert int8_weight_bound(onnx.load(str(path))) <= 32767, path.name
