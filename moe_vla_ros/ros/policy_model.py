"""Model loading for the policy node: the spec's RuntimeConfig -> Policy, logged (warm-up: control/warm_up.py).
No subscriptions or publishers here; what the parameters ask for is spec/policy_node.py's."""

from __future__ import annotations

from moe_vla_ros.ros.telemetry_msgs import placement_text
from moe_vla_ros.runtime.loader import load_policy
from moe_vla_ros.runtime.types import Policy
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
