"""Records both evaluators share, as plain JSON-ready dataclasses (pure: numpy, no rclpy).

The closed-loop evaluation (evaluation/sim/) and the bag evaluators (evaluation/bag/) record the
same node outputs with the same types: every published trajectory as a `CommandRecord` (what
the seam metric, evaluation/seams.py, scores), every ReasoningTrace as a `TraceRecord` and every
ExpertUsage as a `UsageRecord`. Times are float seconds on the run's clock (simulated time or
the bag's).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moe_vla_ros.errors import FailedError


class EvaluationError(FailedError):
    """The evaluation could not run (bad arguments, a node that failed, a timeout)."""


@dataclass(frozen=True)
class CommandRecord:
    """One published JointTrajectory as the seam metric and the bag metrics score it (an empty
    one is a hold).

    Attributes:
        received_s: when it reached the controller (publish / record time).
        start_s: its header stamp (received_s where the stamp is 0: "start now").
        times_s: float64 [n] absolute due time of each point.
        positions: float64 [n, J] targets, model joint order.
        obs_stamp_s: stamp of the observation it was computed from (NaN: unknown).
        chunk_id: the executor's chunk id (-1: unknown).
    """

    received_s: float
    start_s: float
    times_s: np.ndarray
    positions: np.ndarray
    obs_stamp_s: float = math.nan
    chunk_id: int = -1

    @property
    def is_hold(self) -> bool:
        return len(self.times_s) == 0


@dataclass(frozen=True)
class TraceRecord:
    """moe_vla_msgs/ReasoningTrace: the observation stamp, the text, the chunk it led to (-1: unknown)."""

    stamp_s: float
    text: str
    chunk_id: int = -1


@dataclass(frozen=True)
class UsageRecord:
    """moe_vla_msgs/ExpertUsage of one inference: its observation's stamp, {layer name: expert
    load [E]}, the chunk id (-1: unknown) and when it arrived (NaN: not recorded)."""

    stamp_s: float
    layers: Mapping[str, Sequence[float] | np.ndarray]
    chunk_id: int = -1
    received_s: float = math.nan


def write_json(path: str | Path, data: Any) -> Path:
    """Write `data` as indented JSON (numpy scalars and arrays converted); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=_json_default) + "\n")
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
