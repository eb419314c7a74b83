"""Provider selection with the onnxruntime-gpu wheel on a machine without a usable GPU: sessions are
created, run on CPU, and the fallback is reported in metadata and logged exactly once per policy."""

import logging

import onnxruntime as ort
import pytest

from moe_vla_ros.runtime.config import KNOWN_PROVIDERS, RuntimeConfig
from moe_vla_ros.runtime.loader import load_policy
from moe_vla_ros.runtime.manifest import ModelLoadError
from moe_vla_ros.runtime.providers import (
    SessionFactory,
    cpu_description,
    int8_variant_problem,
    provider_options,
    session_options,
)

GRAPHS = ("vision.onnx", "trunk.sparse.onnx", "reasoning_context.onnx", "reasoning_step.onnx", "action_head.sparse.onnx")
needs_gpu_wheel = pytest.mark.skipif(
    "CUDAExecutionProvider" not in ort.get_available_providers(), reason="needs the onnxruntime-gpu wheel"
)


def fallback_warnings(caplog):
    return [r for r in caplog.records if r.levelno == logging.WARNING and "CPU FALLBACK" in r.getMessage()]


@needs_gpu_wheel
def test_gpu_wheel_lists_providers_it_cannot_load():
    """The premise: get_available_providers() is not a usable check on this machine."""
    assert {"TensorrtExecutionProvider", "CUDAExecutionProvider"} <= set(ort.get_available_providers())


@needs_gpu_wheel
def test_factory_falls_back_to_cpu_and_warns_once(demo_export, tmp_path, caplog):
    cfg = RuntimeConfig(providers=KNOWN_PROVIDERS, trt_engine_cache_dir=str(tmp_path))
    factory = SessionFactory(cfg, cfg.engine_cache_dir("demo"))
    with caplog.at_level(logging.WARNING, logger="moe_vla_ros.runtime.providers"):
        sessions = [factory.create(demo_export.model / g) for g in GRAPHS]
    assert all(s.get_providers() == ["CPUExecutionProvider"] for s in sessions)
    assert factory.providers_in_use == ("CPUExecutionProvider",)
    assert factory.cpu_fallback and not factory.gpu_in_use
    assert len(fallback_warnings(caplog)) == 1
    assert (tmp_path / "demo").is_dir(), "TensorRT was requested: its engine cache folder exists"


@needs_gpu_wheel
def test_policy_reports_fallback_in_metadata(demo_export, tmp_path, caplog):
    cfg = RuntimeConfig(trt_engine_cache_dir=str(tmp_path))  # TensorRT, CUDA, CPU
    with caplog.at_level(logging.WARNING, logger="moe_vla_ros.runtime.providers"):
        policy = load_policy(demo_export.model, cfg)
    assert policy.metadata.execution_providers == ("CPUExecutionProvider",)
    assert policy.metadata.cpu_fallback is True
    assert policy.metadata.formulation == "sparse", "auto picks the loop-over-experts graphs on CPU"
    assert len(fallback_warnings(caplog)) == 1


def test_cpu_only_request_is_not_a_fallback(demo_export, caplog):
    with caplog.at_level(logging.WARNING, logger="moe_vla_ros.runtime.providers"):
        policy = load_policy(demo_export.model, RuntimeConfig(providers=("CPUExecutionProvider",)))
    assert policy.metadata.cpu_fallback is False
    assert policy.metadata.execution_providers == ("CPUExecutionProvider",)
    assert not fallback_warnings(caplog)


def test_tensorrt_options_cache_engines(tmp_path):
    cfg = RuntimeConfig(trt_fp16=False, trt_workspace_mb=512, device_id=1)
    options = dict(provider_options(cfg, tmp_path))
    trt = options["TensorrtExecutionProvider"]
    assert trt["trt_engine_cache_enable"] and trt["trt_engine_cache_path"] == str(tmp_path)
    assert trt["trt_timing_cache_enable"] and trt["trt_timing_cache_path"] == str(tmp_path)
    assert trt["trt_fp16_enable"] is False and trt["trt_max_workspace_size"] == 512 << 20
    assert trt["device_id"] == 1 and options["CUDAExecutionProvider"] == {"device_id": 1}
    assert list(options) == list(KNOWN_PROVIDERS)


def test_session_options_never_spin():
    options = session_options(3)
    assert options.intra_op_num_threads == 3
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL


def test_unloadable_graph_is_a_load_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match="ONNX Runtime cannot load"):
        SessionFactory(RuntimeConfig(providers=("CPUExecutionProvider",))).create(bad)


AVX2_ONLY = {"machine": "x86_64", "cpu_model": "AMD EPYC 7R32", "isa": ["avx2"], "int8_kernel": "avx2_int16_pairs"}
VNNI = {"machine": "x86_64", "cpu_model": "Xeon", "isa": ["avx2", "avx512_vnni"], "int8_kernel": "vnni"}
ARM = {"machine": "aarch64", "cpu_model": "Orin", "isa": ["asimd", "asimddp"], "int8_kernel": "arm"}


def test_cpu_description_names_model_isa_and_int8_kernel():
    cpu = cpu_description()
    assert set(cpu) == {"machine", "cpu_model", "isa", "int8_kernel"}
    assert cpu["int8_kernel"] in ("vnni", "avx2_int16_pairs", "arm", "unknown")


def test_int8_variant_without_a_saturation_free_scheme_is_a_problem_only_without_vnni():
    old = {"formulation": "sparse", "precision": "int8", "kept": True}  # manifest written before schemes
    new = {**old, "scheme": {"name": "u8s8_w7", "avx2_saturation_free": True}}
    assert "saturates" in int8_variant_problem(old, AVX2_ONLY) and "AMD EPYC 7R32" in int8_variant_problem(old, AVX2_ONLY)
    assert int8_variant_problem(old, VNNI) == "" and int8_variant_problem(old, ARM) == ""
    assert all(int8_variant_problem(new, cpu) == "" for cpu in (AVX2_ONLY, VNNI, ARM))


def test_old_int8_variant_is_refused_on_an_avx2_cpu_and_loads_with_vnni(demo_export, tmp_path, monkeypatch):
    import json
    import shutil

    from moe_vla_ros.runtime import providers

    model = tmp_path / "model"
    shutil.copytree(demo_export.model, model)
    raw = json.loads((model / "manifest.json").read_text())
    for v in raw["variants"]:
        v.pop("scheme", None)
        v.pop("gated_on", None)  # as written by an older exporter: still loadable
    (model / "manifest.json").write_text(json.dumps(raw))
    cfg = RuntimeConfig(providers=("CPUExecutionProvider",), precision="int8", formulation="sparse")
    monkeypatch.setattr(providers, "cpu_description", lambda: AVX2_ONLY)
    with pytest.raises(ModelLoadError, match="saturates.*re-export"):
        load_policy(model, cfg)
    load_policy(model, RuntimeConfig(providers=("CPUExecutionProvider",))).close()  # fp32 still loads
    monkeypatch.setattr(providers, "cpu_description", lambda: VNNI)
    load_policy(model, cfg).close()
    shutil.copy(demo_export.model / "manifest.json", model / "manifest.json")
    monkeypatch.setattr(providers, "cpu_description", lambda: AVX2_ONLY)
    load_policy(model, cfg).close()  # the exported 7-bit scheme runs everywhere
