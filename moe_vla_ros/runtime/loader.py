"""load_policy: a model folder + RuntimeConfig -> a ready Policy (ONNX Runtime or torch backend).

    from moe_vla_ros.runtime.loader import load_policy
    policy = load_policy("models/demo", RuntimeConfig(), expected_contract=node_sensor_contract)

Everything that can be wrong with a model folder (missing or modified files, unreadable ONNX,
unsupported or inconsistent opset, graph I/O that does not match the manifest) raises
ModelLoadError here; a contract that differs from `expected_contract` raises ContractError
naming both values. The torch backend is imported only when asked for.
"""

from __future__ import annotations

import os

from moe_vla_ros.contract import SensorContract
from moe_vla_ros.runtime.config import RuntimeConfig
from moe_vla_ros.runtime.manifest import ModelLoadError
from moe_vla_ros.runtime.types import Policy

__all__ = ["ModelLoadError", "load_policy"]


def load_policy(
    model_dir: str | os.PathLike,
    cfg: RuntimeConfig | None = None,
    expected_contract: SensorContract | None = None,
) -> Policy:
    """Load the policy in `model_dir` with the backend named by `cfg.backend` (see RuntimeConfig)."""
    cfg = cfg or RuntimeConfig()
    if cfg.backend == "torch":
        from moe_vla_ros.runtime.torch_policy import TorchPolicy

        return TorchPolicy.load(model_dir, cfg, expected_contract)
    from moe_vla_ros.runtime.onnx_policy import OnnxRuntimePolicy

    return OnnxRuntimePolicy.load(model_dir, cfg, expected_contract)
