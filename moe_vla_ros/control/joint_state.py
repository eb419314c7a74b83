"""Joint states (names + values in any order) to the contract's joint order, by name.

A sensor_msgs/JointState lists joints in whatever order the driver chose and may carry joints
the policy does not use (grippers, wheels, a second arm). :class:`JointStateMapper` picks the
contract's joints by name; the index mapping is computed once per distinct name list and
cached, so the per-message cost is one fancy-indexing gather.

Pure numpy: no rclpy (ros/conversions.py feeds JointState messages in).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from moe_vla_ros.errors import BadInputError


class JointStateError(BadInputError):
    """A joint state cannot be mapped: joints missing, lengths inconsistent, values not finite.

    Attributes:
        non_finite: the positions hold NaN/inf (a measured-state fault: hold at once), as opposed
            to a malformed message.
    """

    def __init__(self, message: str, non_finite: bool = False) -> None:
        super().__init__(message)
        self.non_finite = non_finite


@dataclass(frozen=True)
class JointVector:
    """Joint values in the contract's order.

    Attributes:
        positions: float64 [J], rad.
        velocities: float64 [J], rad/s, or None when the source carried no velocities.
    """

    positions: np.ndarray
    velocities: np.ndarray | None


class JointStateMapper:
    """Maps (names, positions, velocities) in any order to the contract's joint order.

    Args:
        joint_names: the contract's joints, in state/action order.
        cache_size: distinct incoming name lists whose index mapping is kept (least recently
            used ones are evicted); one or two are typical (one driver, maybe a bag).
    """

    def __init__(self, joint_names: Sequence[str], cache_size: int = 8) -> None:
        names = tuple(str(n) for n in joint_names)
        if not names:
            raise JointStateError("joint_names must not be empty")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise JointStateError(f"joint_names has duplicates: {dupes}")
        if int(cache_size) < 1:
            raise JointStateError(f"cache_size must be >= 1, got {cache_size!r}")
        self.joint_names = names
        self._cache_size = int(cache_size)
        self._cache: OrderedDict[tuple[str, ...], np.ndarray] = OrderedDict()

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def indices(self, names: Sequence[str]) -> np.ndarray:
        """Indices into `names` of the contract's joints: int64 [J] (cached per name list).

        Raises:
            JointStateError: a contract joint is absent from `names`, or `names` has duplicates.
        """
        key = tuple(names)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        position_of = {name: i for i, name in enumerate(key)}
        if len(position_of) != len(key):
            dupes = sorted({n for n in key if key.count(n) > 1})
            raise JointStateError(f"joint state lists joints more than once: {dupes}")
        missing = [n for n in self.joint_names if n not in position_of]
        if missing:
            raise JointStateError(f"joint state is missing joints {missing} (it has {list(key)})")
        index = np.array([position_of[n] for n in self.joint_names], dtype=np.int64)  # [J]
        index.setflags(write=False)
        self._cache[key] = index
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return index

    def _gather(self, what: str, values: Sequence[float], index: np.ndarray, count: int) -> np.ndarray:
        array = np.asarray(values, dtype=np.float64)  # [N]
        if array.shape != (count,):
            raise JointStateError(f"joint state has {count} names but {what} has shape {array.shape}")
        picked = array[index]  # [J]
        bad = ~np.isfinite(picked)
        if bad.any():
            joints = [f"{self.joint_names[j]}={picked[j]}" for j in np.flatnonzero(bad)]
            raise JointStateError(f"joint state {what} not finite for {', '.join(joints)}", what == "position")
        return picked

    def map(
        self,
        names: Sequence[str],
        positions: Sequence[float],
        velocities: Sequence[float] | None = None,
    ) -> JointVector:
        """Pick the contract's joints from one joint state.

        Args:
            names: joint names of the state, any order, extra joints allowed.
            positions: one position per name.
            velocities: one velocity per name, or empty/None when the source has none.

        Raises:
            JointStateError: missing joints (all listed), length mismatch, or a NaN/inf value in
                a contract joint (named). Values of extra joints are not checked.
        """
        index = self.indices(names)
        count = len(names)
        mapped_positions = self._gather("position", positions, index, count)
        mapped_velocities = None
        if velocities is not None and len(velocities) > 0:
            mapped_velocities = self._gather("velocity", velocities, index, count)
        return JointVector(mapped_positions, mapped_velocities)
