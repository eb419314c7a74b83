"""Model loading for the policy node: parameters -> RuntimeConfig -> Policy, contract checks
against the robot parameters, and warm-up. No subscriptions or publishers here."""

from __future__ import annotations

import numpy as np

from moe_vla_ros.contract import ContractError, PolicyContract
from moe_vla_ros.control.safety import SafetyLimits
from moe_vla_ros.paths import bundled_model_dir
from moe_vla_ros.ros.policy_node_config import ModelParams, RobotParams
from moe_vla_ros.ros.telemetry_msgs import placement_text
from moe_vla_ros.runtime.config import RuntimeConfig
from moe_vla_ros.runtime.loader import load_policy
from moe_vla_ros.runtime.types import Observation, Policy


def runtime_config(model: ModelParams, reasoning_enabled: bool = True) -> RuntimeConfig:
    return RuntimeConfig(
        backend=model.backend,
        providers=tuple(model.providers),
        device_id=model.device_id,
        trt_fp16=model.trt_fp16,
        trt_engine_cache_dir=model.trt_engine_cache_dir,
        trt_workspace_mb=model.trt_workspace_mb,
        intra_op_threads=model.intra_op_threads,
        formulation=model.formulation,
        precision=model.precision,
        torch_device=model.device,
        reasoning_enabled=reasoning_enabled,
        verify_on_target=model.verify_on_target and model.backend == "onnxruntime",
    )


def load_configured_policy(model: ModelParams, logger, reasoning_enabled: bool = True) -> Policy:
    """Load the model named by the parameters (empty path: the bundled default model)."""
    path = model.path or str(bundled_model_dir())
    logger.info(f"loading model {path} (backend {model.backend}, providers {list(model.providers)})")
    policy = load_policy(path, runtime_config(model, reasoning_enabled))
    meta = policy.metadata
    if meta.cpu_fallback:
        logger.warning(
            f"requested providers {list(model.providers)} unavailable: running on {list(meta.execution_providers)}"
        )
    if meta.provider_placement:
        logger.info(f"provider placement (nodes per graph): {placement_text(meta.provider_placement)}")
    verification = meta.verification
    if verification.get("status") in ("fallback", "unavailable"):
        logger.warning(f"on-target verification: {verification['summary']}")
    elif verification:
        logger.info(f"on-target verification {verification['summary']} "
                    f"({verification['seconds'] * 1e3:.0f} ms, load + verification {verification['load_seconds']:.2f} s)")
    return policy


def check_robot_against_contract(robot: RobotParams, contract: PolicyContract) -> None:
    """The robot parameters (when set) must name the model's joints and cameras, in order."""
    sensors = contract.sensors
    if robot.joint_names and tuple(robot.joint_names) != sensors.joint_names:
        raise ContractError(
            f"model contract does not match parameters: joint_names: model has {list(sensors.joint_names)}, "
            f"robot.joint_names has {list(robot.joint_names)}"
        )
    if robot.camera_names and tuple(robot.camera_names) != sensors.camera_names:
        raise ContractError(
            f"model contract does not match parameters: camera_names: model has {list(sensors.camera_names)}, "
            f"robot.camera_names has {list(robot.camera_names)}"
        )


def warm_up(policy: Policy, runs: int, limits: SafetyLimits | None = None) -> None:
    """Run `runs` inferences on a neutral observation so the first real one is not a cold start."""
    if runs <= 0:
        return
    s = policy.contract.sensors
    if limits is not None and limits.has_position_limits:
        q = 0.5 * (limits.arrays["lower"] + limits.arrays["upper"])
    else:
        q = np.asarray(policy.contract.normalization.state_mean, dtype=np.float64)
    images = {c: np.zeros((s.image_height, s.image_width, 3), np.uint8) for c in s.camera_names}
    obs = Observation(images, q, "warm up", 0.0)
    for _ in range(runs):
        policy.infer(obs, generate_reasoning=True)
    policy.reset()
