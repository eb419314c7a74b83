"""Seeded, well-formed observations for a contract: export verification, quantisation gates,
benchmarks and tests (numpy only).

Images look like a table top: a noisy grey background with two coloured squares at random
places (structured input exercises routing more like a real scene than uniform noise); joint
positions are drawn around the contract's state mean; instructions have different lengths,
one longer than the contract's instruction window (truncation).
"""

from __future__ import annotations

import numpy as np

from moe_vla_ros.contract import PolicyContract
from moe_vla_ros.runtime.types import Observation

INSTRUCTIONS = (
    "reach the red square",
    "go to the blue square",
    "move",
    "move to the green square then go to the red square and then go to the blue square and stop",
)
COLOURS = ((220, 40, 40), (40, 200, 60), (40, 70, 230))


def scene_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """[H, W, 3] uint8: noisy grey background with two coloured squares."""
    image = rng.integers(90, 130, size=(height, width, 3)).astype(np.uint8)  # [H, W, 3]
    size = max(2, min(height, width) // 5)
    for colour in rng.choice(len(COLOURS), size=2, replace=False):
        y, x = int(rng.integers(0, height - size)), int(rng.integers(0, width - size))
        image[y : y + size, x : x + size] = COLOURS[int(colour)]
    return image


def random_observation(contract: PolicyContract, seed: int, instruction: str | None = None, stamp: float = 0.0) -> Observation:
    """One observation; the same (contract, seed, instruction) always gives the same one."""
    rng = np.random.default_rng(seed)
    s = contract.sensors
    images = {name: scene_image(rng, s.image_height, s.image_width) for name in s.camera_names}
    mean = np.asarray(contract.normalization.state_mean)
    std = np.asarray(contract.normalization.state_std)
    joints = mean + std * rng.uniform(-1.5, 1.5, size=s.num_joints)  # [J]
    text = instruction if instruction is not None else INSTRUCTIONS[int(rng.integers(0, len(INSTRUCTIONS)))]
    return Observation(images=images, joint_positions=joints, instruction=text, stamp=stamp)


def random_observations(contract: PolicyContract, count: int, seed: int) -> list[Observation]:
    """`count` observations cycling through INSTRUCTIONS (every length is covered when count >= 4)."""
    return [
        random_observation(contract, seed * 1000 + i, INSTRUCTIONS[i % len(INSTRUCTIONS)], stamp=0.1 * i)
        for i in range(count)
    ]
