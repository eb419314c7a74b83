"""RuntimeConfig validation names the bad value; defaults follow the node parameters."""

from pathlib import Path

import pytest

from moe_vla_ros.runtime.config import BACKENDS, KNOWN_PROVIDERS, RuntimeConfig, RuntimeConfigError


def test_defaults_prefer_gpu_and_keep_cpu_last():
    cfg = RuntimeConfig()
    assert cfg.providers == KNOWN_PROVIDERS and cfg.wants_gpu
    assert RuntimeConfig(providers=("CUDAExecutionProvider",)).providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert not RuntimeConfig(providers=("CPUExecutionProvider",)).wants_gpu


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"backend": "tflite"}, "'tflite'"),
        ({"providers": ("OpenVINOExecutionProvider",)}, "OpenVINOExecutionProvider"),
        ({"providers": "CPUExecutionProvider"}, "got the string"),
        ({"providers": ("CPUExecutionProvider", "CPUExecutionProvider")}, "duplicates"),
        ({"intra_op_threads": -1}, "intra_op_threads .* got -1"),
        ({"trt_workspace_mb": 1}, "trt_workspace_mb .* got 1"),
        ({"formulation": "moe"}, "'moe'"),
        ({"precision": "int4"}, "'int4'"),
        ({"torch_device": "tpu"}, "'tpu'"),
        ({"max_reasoning_tokens": -3}, "got -3"),
        ({"reasoning_enabled": "yes"}, "'yes'"),
    ],
)
def test_invalid_values_are_named(kwargs, message):
    with pytest.raises(RuntimeConfigError, match=message):
        RuntimeConfig(**kwargs)


def test_engine_cache_is_per_model(tmp_path):
    assert RuntimeConfig(trt_engine_cache_dir=str(tmp_path)).engine_cache_dir("demo-123") == tmp_path / "demo-123"
    default = RuntimeConfig().engine_cache_dir("demo-123")
    assert default == Path.home() / ".cache/moe_vla_ros/trt/demo-123"


def test_triton_config_validation_and_deadline_check():
    from moe_vla_ros.runtime.config import TritonConfig, TritonConfigError

    assert RuntimeConfig().triton == TritonConfig() and "triton" in BACKENDS
    assert RuntimeConfig(backend="triton", triton=TritonConfig(url="gpu:9001")).triton.endpoint == "triton://gpu:9001"
    for kw, match in (({"url": "gpu"}, "url"), ({"url": "gpu:0"}, "url"), ({"deadline_s": 0}, "deadline_s"),
                      ({"deadline_s": float("nan")}, "deadline_s"), ({"connect_timeout_s": True}, "connect_timeout_s"),
                      ({"retry_primary_s": -1}, "retry_primary_s"), ({"model_version": "v1"}, "model_version"),
                      ({"fallback_onboard": 1}, "fallback_onboard")):
        with pytest.raises(TritonConfigError, match=match):
            TritonConfig(**kw)
    assert issubclass(TritonConfigError, RuntimeConfigError)
    with pytest.raises(RuntimeConfigError, match="triton must be a TritonConfig"):
        RuntimeConfig(triton={"url": "gpu:1"})
    cfg = TritonConfig(deadline_s=0.08)
    assert cfg.deadline_problem(10.0) == "" and "not shorter" in cfg.deadline_problem(12.5)
    with pytest.raises(TritonConfigError, match=r"gpu:1|127.0.0.1:8001.*deadline_s 80 ms is not shorter than .* 80 ms"):
        cfg.check_deadline(12.5)
