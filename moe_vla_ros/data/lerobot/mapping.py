"""How a LeRobot dataset's features map onto our sensor contract (`LeRobotMapping`).

    state    = "observation.state"   the joint-position feature (observed joints)
    action   = "action"              the action feature: must be joint-position targets of the
                                     same joints (checked by name and on the data)
    joints   = {ours: theirs}        contract joint name -> name in the state/action `names`
                                     (default: every state name, unchanged); picks, renames
                                     and orders the joints
    cameras  = {ours: image key}     contract camera -> visual feature ("observation.images.X"
                                     or just "X"); default: every image/video feature, named
                                     after its last part
    image_height/image_width         size the images are resized to (0: keep the stored size;
                                     training fills in the model's size when fine-tuning)
    reasoning = "reasoning"          string feature with reasoning text per frame ("" = none)
    target   = "observation.target_position"  float [3] feature for the target probe ("" = none)
    position_scale / degrees         factor from the dataset's joint unit to SI (rad, m); many
                                     LeRobot arms record degrees: degrees=true (= pi/180)
    check_actions                    refuse actions that do not track the observed joints, and
                                     positions beyond 4 pi (not SI: degrees? a -100..100 range?)

On the command line (`moe_vla_train --lerobot-map KEY=VALUE`, repeated): `state=KEY`,
`action=KEY`, `joint.OURS=THEIRS`, `camera.OURS=KEY`, `image_size=HxW`, `reasoning=KEY`,
`target=KEY`, `scale=X`, `degrees=true`, `check_actions=false`, `action_tolerance=X`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field

from moe_vla_ros.data.lerobot.schema import ACTION_KEY, IMAGE_PREFIX, STATE_KEY, LeRobotFormatError


class LeRobotMappingError(LeRobotFormatError):
    """A LeRobot dataset cannot be read under the given mapping (missing or mismatched features)."""


@dataclass(frozen=True)
class LeRobotMapping:
    """Feature names -> our sensor contract; see the module docstring for every field.

    Attributes:
        state_key: feature with the observed joint positions.
        action_key: feature with the joint-position targets.
        joints: {contract joint: name in the state/action feature's names}; empty: all, unchanged.
        cameras: {contract camera: visual feature key}; empty: every visual feature.
        image_height: resize images to this height (0: the stored height).
        image_width: resize images to this width (0: the stored width).
        reasoning_key: string feature with per-frame reasoning ("" = none; absent = none).
        target_key: float [3] feature with the target position ("" = none; absent = none).
        position_scale: multiplies state and action values into SI units (rad, m); pi/180 for
            datasets recorded in degrees.
        check_actions: refuse actions that are not joint-position targets of the observed joints,
            and positions too large to be SI (|value| > 4 pi after scaling).
        action_tolerance: the check's bound on mean |action[t] - state[t+1]| over each joint's
            spread (std of its observed positions). The check also wants the actions' spread
            within 0.5-2x the positions' (median over moving joints): deltas or velocities
            spread far less than the positions they integrate to.
    """

    state_key: str = STATE_KEY
    action_key: str = ACTION_KEY
    joints: Mapping[str, str] = field(default_factory=dict)
    cameras: Mapping[str, str] = field(default_factory=dict)
    image_height: int = 0
    image_width: int = 0
    reasoning_key: str = "reasoning"
    target_key: str = "observation.target_position"
    position_scale: float = 1.0
    check_actions: bool = True
    action_tolerance: float = 1.0

    def __post_init__(self) -> None:
        for name in ("state_key", "action_key"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise LeRobotMappingError(f"{name} must name a feature, got {getattr(self, name)!r}")
        for name in ("joints", "cameras"):
            value = dict(getattr(self, name))
            bad = {k: v for k, v in value.items() if not (isinstance(k, str) and k and isinstance(v, str) and v)}
            if bad:
                raise LeRobotMappingError(f"{name} must map names to names, got {bad}")
            theirs = list(value.values())
            dupes = sorted({v for v in theirs if theirs.count(v) > 1})
            if dupes:
                raise LeRobotMappingError(f"{name} maps several names to {dupes}")
            object.__setattr__(self, name, value)
        for name in ("image_height", "image_width"):
            value = getattr(self, name)
            if int(value) != value or not (value == 0 or 8 <= value <= 4096):
                raise LeRobotMappingError(f"{name} must be 0 (keep) or an integer in [8, 4096], got {value!r}")
        if (self.image_height == 0) != (self.image_width == 0):
            raise LeRobotMappingError("give image_height and image_width together (or neither)")
        if not (isinstance(self.position_scale, numbers.Real) and math.isfinite(self.position_scale) and self.position_scale != 0):
            raise LeRobotMappingError(f"position_scale must be a finite non-zero number, got {self.position_scale!r}")
        if not (math.isfinite(self.action_tolerance) and self.action_tolerance > 0):
            raise LeRobotMappingError(f"action_tolerance must be positive, got {self.action_tolerance!r}")

    def camera_key(self, key: str) -> str:
        """A camera value as a full feature key ("front" -> "observation.images.front")."""
        return key if "." in key else IMAGE_PREFIX + key

    @classmethod
    def from_pairs(cls, pairs: Mapping[str, str]) -> LeRobotMapping:
        """From `--lerobot-map KEY=VALUE` pairs (see the module docstring)."""
        kwargs: dict = {}
        joints: dict[str, str] = {}
        cameras: dict[str, str] = {}
        simple = {"state": "state_key", "action": "action_key", "reasoning": "reasoning_key", "target": "target_key"}
        for key, value in pairs.items():
            if key in simple:
                kwargs[simple[key]] = value
            elif key.startswith("joint."):
                joints[key[len("joint."):]] = value
            elif key.startswith("camera."):
                cameras[key[len("camera."):]] = value
            elif key == "image_size":
                h, sep, w = value.lower().partition("x")
                if not sep or not h.isdigit() or not w.isdigit():
                    raise LeRobotMappingError(f"image_size takes HEIGHTxWIDTH, got {value!r}")
                kwargs.update(image_height=int(h), image_width=int(w))
            elif key in ("check_actions", "degrees"):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise LeRobotMappingError(f"{key} takes true or false, got {value!r}")
                flag = value.lower() in ("true", "1", "yes")
                if key == "degrees":
                    kwargs["position_scale"] = math.pi / 180.0 if flag else 1.0
                else:
                    kwargs["check_actions"] = flag
            elif key in ("action_tolerance", "scale"):
                try:
                    kwargs["action_tolerance" if key == "action_tolerance" else "position_scale"] = float(value)
                except ValueError:
                    raise LeRobotMappingError(f"{key} takes a number, got {value!r}") from None
            else:
                raise LeRobotMappingError(
                    f"unknown mapping key {key!r}; known: state, action, joint.NAME, camera.NAME, image_size, "
                    "reasoning, target, scale, degrees, check_actions, action_tolerance"
                )
        return cls(joints=joints, cameras=cameras, **kwargs)
