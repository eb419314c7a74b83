"""A synthetic reach task whose motion depends on the image AND the instruction.

Every episode shows two coloured squares (two of red / green / blue) at random places in the
first camera's image; the instruction names one of them ("reach the red square"). The arm
joints move from a random start towards a pose that is a fixed linear function of the named
square's image position; the gripper (last joint) closes once the pose is reached. Other
cameras show a wrist view: the target colour, brighter as the arm gets closer. Reasoning
texts say where the target is and what the arm does ("the red square is top left . moving
there" / "reached the red square . closing gripper"). The recorded target position is the
named square's centre (u, v, 0) in image coordinates, for the target probe.

Episodes are written with `DatasetWriter`, so tests exercise the real data path. Pure numpy.
"""

from __future__ import annotations

import os

import numpy as np

from moe_vla_ros.contract import SensorContract
from moe_vla_ros.data.dataset import DatasetWriter, DemoDataset, Episode

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 70, 230)}
TEMPLATES = ("reach the {} square", "move to the {} square", "go to the {} square")
GRIPPER_CLOSED = 0.8
REACHED_TOLERANCE = 0.05  # rad, max joint error at which the target counts as reached


def target_pose(u: float, v: float, num_arm_joints: int) -> np.ndarray:
    """Arm joint targets [J_arm] for a square centred at (u, v) in [0, 1] image coordinates."""
    mixing = np.random.default_rng(1234).uniform(-1.0, 1.0, size=(num_arm_joints, 3))  # fixed task map
    return mixing @ np.array([u - 0.5, v - 0.5, 0.25]) * 1.5  # [J_arm]


def _place_squares(rng: np.random.Generator, size: int, height: int, width: int) -> list[tuple[int, int]]:
    """Top-left corners of two non-overlapping squares."""
    while True:
        corners = [(int(rng.integers(0, height - size)), int(rng.integers(0, width - size))) for _ in range(2)]
        (y0, x0), (y1, x1) = corners
        if abs(y0 - y1) >= size or abs(x0 - x1) >= size:
            return corners


def _where(u: float, v: float) -> str:
    return f"{'top' if v < 0.5 else 'bottom'} {'left' if u < 0.5 else 'right'}"


def make_episode(rng: np.random.Generator, sensors: SensorContract, length: int) -> Episode:
    """One episode of the synthetic task for `sensors` (any cameras, >= 1 joints)."""
    h, w, num_joints = sensors.image_height, sensors.image_width, sensors.num_joints
    num_arm = max(num_joints - 1, 1)
    has_gripper = num_joints > 1
    names = list(rng.choice(list(COLOURS), size=2, replace=False))
    target_colour = names[int(rng.integers(0, 2))]
    size = max(h, w) // 6
    corners = _place_squares(rng, size, h, w)
    background = (rng.integers(90, 130, size=(h, w, 3))).astype(np.uint8)  # [H, W, 3] noisy grey
    scene = background.copy()
    for (y, x), name in zip(corners, names):
        scene[y : y + size, x : x + size] = COLOURS[name]
    y, x = corners[names.index(target_colour)]
    u, v = (x + size / 2) / w, (y + size / 2) / h
    goal = target_pose(u, v, num_arm)  # [J_arm]

    q = np.zeros((length, num_joints))  # [T, J] observed joints
    action = np.zeros((length, num_joints))  # [T, J] commanded targets
    q[0, :num_arm] = rng.uniform(-0.5, 0.5, size=num_arm)
    reasoning, wrist = [], []
    for t in range(length):
        error = goal - q[t, :num_arm]  # [J_arm]
        reached = bool(np.abs(error).max() < REACHED_TOLERANCE)
        action[t, :num_arm] = q[t, :num_arm] + np.clip(0.3 * error, -0.1, 0.1)
        if has_gripper:
            action[t, -1] = GRIPPER_CLOSED if reached else 0.0
        if t + 1 < length:
            q[t + 1] = q[t] + 0.8 * (action[t] - q[t])  # first-order tracking of the command
        if reached:
            reasoning.append(f"reached the {target_colour} square . closing gripper")
        else:
            reasoning.append(f"the {target_colour} square is {_where(u, v)} . moving there")
        closeness = float(np.exp(-np.abs(error).sum()))
        view = background * (1 - 0.5 * closeness) + np.asarray(COLOURS[target_colour]) * 0.5 * closeness
        wrist.append(view.astype(np.uint8))  # [H, W, 3]
    images = {}
    for k, cam in enumerate(sensors.camera_names):
        frames = [scene] * length if k == 0 else wrist
        images[cam] = np.stack(frames).astype(np.uint8)  # [T, H, W, 3]
    template = TEMPLATES[int(rng.integers(0, len(TEMPLATES)))]
    return Episode(
        images=images,
        joint_position=q.astype(np.float32),
        action=action.astype(np.float32),
        timestamp=np.arange(length) / sensors.control_rate_hz,
        instruction=template.format(target_colour),
        reasoning=reasoning,
        task="reach",
        success=True,
        target_position=np.tile(np.array([u, v, 0.0], np.float32), (length, 1)),  # [T, 3]
    )


def generate_synthetic_dataset(
    root: str | os.PathLike, sensors: SensorContract, num_episodes: int = 20, episode_length: int = 30, seed: int = 0
) -> DemoDataset:
    """Write `num_episodes` synthetic episodes to a new dataset folder `root`; returns it opened."""
    if num_episodes < 1 or episode_length < 1:
        raise ValueError(f"need num_episodes >= 1 and episode_length >= 1, got {num_episodes}, {episode_length}")
    if min(sensors.image_height, sensors.image_width) < 12:
        raise ValueError(f"images must be at least 12x12 for the squares, got {sensors.image_height}x{sensors.image_width}")
    rng = np.random.default_rng(seed)
    with DatasetWriter(root, sensors, source=f"synthetic reach task, seed {seed}") as writer:
        for _ in range(num_episodes):
            writer.add_episode(make_episode(rng, sensors, episode_length))
    return DemoDataset(root)
