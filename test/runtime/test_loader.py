"""load_policy picks the backend from the config; the ONNX Runtime backend is the default."""

import pytest

from moe_vla_ros.runtime.config import RuntimeConfig
from moe_vla_ros.runtime.loader import ModelLoadError, load_policy
from moe_vla_ros.runtime.onnx_policy import OnnxRuntimePolicy
from moe_vla_ros.runtime.torch_policy import TorchPolicy


def test_backend_dispatch(demo_export):
    assert isinstance(load_policy(demo_export.model, RuntimeConfig(providers=("CPUExecutionProvider",))), OnnxRuntimePolicy)
    assert isinstance(load_policy(demo_export.model, RuntimeConfig(backend="torch")), TorchPolicy)


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_missing_folder(tmp_path, backend):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_policy(tmp_path / "missing", RuntimeConfig(backend=backend))


def test_checkpoint_folder_is_not_an_onnx_model(demo_export):
    with pytest.raises(ModelLoadError, match="has no manifest.json"):
        load_policy(demo_export.checkpoint, RuntimeConfig(providers=("CPUExecutionProvider",)))
