"""TorchPolicy loads from the exported folder or the checkpoint, and matches the ONNX Runtime policy."""

import numpy as np
import pytest

from moe_vla_ros.runtime.config import RuntimeConfig
from moe_vla_ros.runtime.loader import load_policy
from moe_vla_ros.runtime.manifest import ModelLoadError
from moe_vla_ros.runtime.onnx_policy import OnnxRuntimePolicy
from moe_vla_ros.runtime.sample_observations import random_observations
from moe_vla_ros.runtime.torch_policy import TorchPolicy, moe_layer_specs


@pytest.fixture(scope="module")
def torch_policy(demo_export):
    return load_policy(demo_export.model, RuntimeConfig(backend="torch"))


def test_loads_from_model_folder_and_checkpoint(demo_export, torch_policy):
    assert isinstance(torch_policy, TorchPolicy)
    meta = torch_policy.metadata
    assert (meta.backend, meta.execution_providers, meta.cpu_fallback, meta.formulation) == (
        "torch", ("torch:cpu",), False, "sparse")
    onnx_meta = load_policy(demo_export.model, RuntimeConfig(providers=("CPUExecutionProvider",))).metadata
    assert meta.model_id == onnx_meta.model_id, "both backends report the same model"
    from_checkpoint = TorchPolicy.load(demo_export.checkpoint, RuntimeConfig(backend="torch"))
    assert from_checkpoint.moe_layers == torch_policy.moe_layers == moe_layer_specs(torch_policy.model.cfg)


@pytest.mark.parametrize("formulation", ["sparse", "dense"])
def test_onnx_runtime_and_torch_agree(demo_export, torch_policy, formulation):
    onnx_policy = OnnxRuntimePolicy.load(
        demo_export.model, RuntimeConfig(providers=("CPUExecutionProvider",), formulation=formulation)
    )
    torch_policy.model.set_moe_formulation(formulation)
    for obs in random_observations(onnx_policy.contract, 3, seed=11):
        onnx_policy.reset()
        torch_policy.reset()
        a, b = onnx_policy.infer(obs), torch_policy.infer(obs)
        assert a.reasoning.text == b.reasoning.text
        np.testing.assert_array_equal(a.reasoning.token_ids, b.reasoning.token_ids)
        np.testing.assert_allclose(a.actions, b.actions, atol=1e-4, rtol=0)
        for ua, ub in zip(a.expert_usage, b.expert_usage):
            assert ua.layer_name == ub.layer_name and ua.num_tokens == ub.num_tokens
            np.testing.assert_allclose(ua.expert_load, ub.expert_load, atol=1e-6)
            assert ua.router_entropy == pytest.approx(ub.router_entropy, abs=1e-4)
    torch_policy.model.set_moe_formulation("sparse")


def test_cuda_request_without_cuda_falls_back(demo_export, caplog):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    policy = load_policy(demo_export.model, RuntimeConfig(backend="torch", torch_device="cuda"))
    assert policy.metadata.cpu_fallback and policy.metadata.execution_providers == ("torch:cpu",)
    assert "CPU FALLBACK" in caplog.text


def test_checkpoint_errors_are_load_errors(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="format"):
        load_policy(tmp_path, RuntimeConfig(backend="torch"))
