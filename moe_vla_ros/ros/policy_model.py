"""Model loading for the policy node: the spec's RuntimeConfig -> Policy, logged, and warm-up.
No subscriptions or publishers here; what the parameters ask for is spec/policy_node.py's."""

from __future__ import annotations

import numpy as np

from moe_vla_ros.control.safety import SafetyLimits
from moe_vla_ros.ros.telemetry_msgs import placement_text
from moe_vla_ros.runtime.loader import load_policy
from moe_vla_ros.runtime.types import Observation, Policy
from moe_vla_ros.spec.policy_node import PolicyNodeConfig


def load_configured_policy(cfg: PolicyNodeConfig, logger) -> Policy:
    """Load the model named by the parameters (empty model.path: the bundled default model)."""
    model = cfg.model
    path = model.model_path()
    logger.info(f"loading model {path} (backend {model.backend}, providers {list(model.providers)})")
    policy = load_policy(path, cfg.runtime_config())
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
