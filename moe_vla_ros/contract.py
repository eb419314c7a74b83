"""The input/output contract shared by recording, datasets, training, export and serving.

A contract says which cameras (and at what image size), which joints (in which order and
unit) and at which control rate a policy works. Every stage checks it: a dataset written
for one robot cannot silently train a policy for another, and a node refuses a model whose
contract does not match its parameters.

Pure Python (no torch, no rclpy): the robot side imports this.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from moe_vla_ros.errors import BadInputError

# "SI" = ROS REP 103 units: radians for revolute joints, metres for prismatic joints.
POSITION_UNITS = ("SI",)


class ContractError(BadInputError):
    """A contract is invalid, or two contracts that must agree do not."""


def _as_str_tuple(name: str, values: Sequence[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ContractError(f"{name} must be a list of names, got the string {values!r}")
    out = tuple(str(v) for v in values)
    if not out:
        raise ContractError(f"{name} must not be empty")
    if any(not v for v in out):
        raise ContractError(f"{name} contains an empty name: {list(out)}")
    dupes = sorted({v for v in out if out.count(v) > 1})
    if dupes:
        raise ContractError(f"{name} has duplicates: {dupes}")
    return out


def _as_float_tuple(name: str, values: Sequence[float], length: int) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    if len(out) != length:
        raise ContractError(f"{name} has {len(out)} values, expected {length} (one per joint)")
    if not all(math.isfinite(v) for v in out):
        raise ContractError(f"{name} has non-finite values: {list(out)}")
    return out


@dataclass(frozen=True)
class SensorContract:
    """What the robot (or simulator, or bag) provides and accepts.

    Attributes:
        camera_names: cameras the policy reads, in the order the model stacks them.
        image_height: height in pixels of every image fed to the model (after resizing).
        image_width: width in pixels of every image fed to the model (after resizing).
        joint_names: commanded joints, in the order of state and action vectors.
        control_rate_hz: rate of the action steps inside a chunk (and of dataset steps).
        position_unit: unit of joint positions in states and actions; only "SI" (REP 103:
            rad for revolute joints, m for prismatic joints such as a gripper's fingers).
    """

    camera_names: tuple[str, ...]
    image_height: int
    image_width: int
    joint_names: tuple[str, ...]
    control_rate_hz: float
    position_unit: str = "SI"

    def __post_init__(self) -> None:
        object.__setattr__(self, "camera_names", _as_str_tuple("camera_names", self.camera_names))
        object.__setattr__(self, "joint_names", _as_str_tuple("joint_names", self.joint_names))
        for name in ("image_height", "image_width"):
            value = getattr(self, name)
            if int(value) != value or not 8 <= int(value) <= 4096:
                raise ContractError(f"{name} must be an integer in [8, 4096], got {value!r}")
            object.__setattr__(self, name, int(value))
        if not (math.isfinite(self.control_rate_hz) and 0.0 < self.control_rate_hz <= 1000.0):
            raise ContractError(f"control_rate_hz must be in (0, 1000], got {self.control_rate_hz!r}")
        object.__setattr__(self, "control_rate_hz", float(self.control_rate_hz))
        if self.position_unit not in POSITION_UNITS:
            raise ContractError(f"position_unit must be one of {POSITION_UNITS}, got {self.position_unit!r}")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def control_period_s(self) -> float:
        return 1.0 / self.control_rate_hz

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["camera_names"] = list(self.camera_names)
        d["joint_names"] = list(self.joint_names)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SensorContract:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ContractError(f"unknown sensor contract fields: {unknown}")
        return cls(**{k: d[k] for k in d})

    def check_matches(self, other: SensorContract, *, what: str = "model", against: str = "config") -> None:
        """Raise ContractError naming every field where `other` differs from this contract."""
        problems = []
        for name in ("camera_names", "image_height", "image_width", "joint_names", "position_unit"):
            a, b = getattr(self, name), getattr(other, name)
            if a != b:
                problems.append(f"{name}: {what} has {_fmt(a)}, {against} has {_fmt(b)}")
        if not math.isclose(self.control_rate_hz, other.control_rate_hz, rel_tol=1e-6):
            problems.append(
                f"control_rate_hz: {what} has {self.control_rate_hz}, {against} has {other.control_rate_hz}"
            )
        if problems:
            raise ContractError(f"{what} contract does not match {against}: " + "; ".join(problems))


def _fmt(v: Any) -> str:
    return repr(list(v)) if isinstance(v, tuple) else repr(v)


@dataclass(frozen=True)
class NormalizationStats:
    """Per-joint mean/std used to normalise states and actions (z-score), in contract units (SI).

    std values are floored at `min_std` so a joint that never moved in the data does not
    blow up the normalised values.
    """

    state_mean: tuple[float, ...]
    state_std: tuple[float, ...]
    action_mean: tuple[float, ...]
    action_std: tuple[float, ...]
    min_std: float = 1e-3

    def __post_init__(self) -> None:
        n = len(self.state_mean)
        for name in ("state_mean", "state_std", "action_mean", "action_std"):
            object.__setattr__(self, name, _as_float_tuple(name, getattr(self, name), n))
        for name in ("state_std", "action_std"):
            if any(v <= 0 for v in getattr(self, name)):
                raise ContractError(f"{name} must be positive, got {list(getattr(self, name))}")

    @classmethod
    def identity(cls, num_joints: int) -> NormalizationStats:
        zeros, ones = (0.0,) * num_joints, (1.0,) * num_joints
        return cls(zeros, ones, zeros, ones)

    @classmethod
    def from_arrays(cls, states, actions, min_std: float = 1e-3) -> NormalizationStats:
        """Compute stats from [N, J] arrays of states and actions (numpy or anything array-like)."""
        import numpy as np

        s = np.asarray(states, dtype=np.float64)
        a = np.asarray(actions, dtype=np.float64)
        return cls(
            tuple(s.mean(0)),
            tuple(np.maximum(s.std(0), min_std)),
            tuple(a.mean(0)),
            tuple(np.maximum(a.std(0), min_std)),
            min_std,
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NormalizationStats:
        return cls(**dict(d))


@dataclass(frozen=True)
class PolicyContract:
    """Everything a served policy promises about its inputs and outputs.

    Attributes:
        sensors: cameras, image size, joints, control rate.
        chunk_length: number of future joint-position targets predicted per inference,
            spaced 1/control_rate_hz apart, the first one step after the observation.
        normalization: statistics used to normalise states and de-normalise actions.
        max_instruction_tokens: instructions are truncated/padded to this many tokens.
        max_reasoning_tokens: upper bound on generated reasoning tokens.
    """

    sensors: SensorContract
    chunk_length: int = 16
    normalization: NormalizationStats | None = None
    max_instruction_tokens: int = 16
    max_reasoning_tokens: int = 24
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= int(self.chunk_length) <= 1024:
            raise ContractError(f"chunk_length must be in [1, 1024], got {self.chunk_length!r}")
        for name in ("max_instruction_tokens", "max_reasoning_tokens"):
            if not 1 <= int(getattr(self, name)) <= 4096:
                raise ContractError(f"{name} must be in [1, 4096], got {getattr(self, name)!r}")
        if self.normalization is None:
            object.__setattr__(self, "normalization", NormalizationStats.identity(self.sensors.num_joints))
        elif len(self.normalization.state_mean) != self.sensors.num_joints:
            raise ContractError(
                f"normalization has {len(self.normalization.state_mean)} joints, "
                f"sensors have {self.sensors.num_joints} ({list(self.sensors.joint_names)})"
            )

    @property
    def chunk_duration_s(self) -> float:
        return self.chunk_length / self.sensors.control_rate_hz

    def to_dict(self) -> dict[str, Any]:
        return {
            "sensors": self.sensors.to_dict(),
            "chunk_length": self.chunk_length,
            "normalization": self.normalization.to_dict(),
            "max_instruction_tokens": self.max_instruction_tokens,
            "max_reasoning_tokens": self.max_reasoning_tokens,
            "extras": dict(self.extras),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PolicyContract:
        d = dict(d)
        try:
            sensors = SensorContract.from_dict(d.pop("sensors"))
        except KeyError:
            raise ContractError("policy contract has no 'sensors' section") from None
        norm = d.pop("normalization", None)
        return cls(sensors=sensors, normalization=NormalizationStats.from_dict(norm) if norm else None, **d)
