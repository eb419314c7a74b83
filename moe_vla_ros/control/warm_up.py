"""Warm-up inferences before a policy runs (pure: numpy + the Policy interface, no rclpy).

The policy node runs them at configure; the offline bag evaluator runs the same ones, so its
first measured inference is no more of a cold start than the node's.
"""

from __future__ import annotations

import numpy as np

from moe_vla_ros.control.safety import SafetyLimits
from moe_vla_ros.runtime.types import Observation, Policy


def warm_up(policy: Policy, runs: int, limits: SafetyLimits | None = None) -> None:
    """Run `runs` inferences on a neutral observation (black images; the joints at the middle of
    their position limits, else at the normalisation mean), then reset the policy."""
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
