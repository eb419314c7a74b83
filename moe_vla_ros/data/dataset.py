"""The demonstration dataset format: written by the simulator's scripted expert and by the
bag converter, read by training and evaluation.

Layout of a dataset folder::

    <root>/meta.json                      format, version, sensor contract, episode index,
                                          `complete` (false while a writer runs or after it
                                          was interrupted; datasets without it count as complete),
                                          optional `vocabulary`: every word the data's texts can
                                          hold (a generator's closed vocabulary), so a tokenizer
                                          learned from them also knows words a sample happens to miss
    <root>/episodes/episode_000000.npz    one compressed npz per episode (no pickle)

Arrays of one episode of T steps, J joints, cameras C (names from the contract):

    image_<camera>   uint8   [T, H, W, 3]  RGB, already at the contract's image size
    joint_position   float32 [T, J]        observed joint positions (contract unit: SI, rad or m)
    action           float32 [T, J]        joint-position target commanded at step t
    timestamp        float64 [T]           seconds since the episode start, 1/control_rate apart
    reasoning        str     [T]           reasoning text valid at step t ("" when none)
    instruction      str     []            the language instruction of the episode
    task             str     []            task family (e.g. "reach", "push"), may be ""
    success          bool    []            whether the episode reached its goal
    target_position  float32 [T, 3]        optional: the task's target object position in the robot
                                           base frame (m), e.g. from a simulator; trains the
                                           policy's auxiliary target probe. Absent when unknown.

Pure numpy: no torch, no rclpy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from moe_vla_ros.contract import SensorContract
from moe_vla_ros.errors import BadInputError

FORMAT_NAME = "moe_vla_dataset"
FORMAT_VERSION = 1


class DatasetError(BadInputError):
    """A dataset (or an episode being written to it) is malformed or does not match its contract."""


@dataclass
class Episode:
    """One demonstration; see the module docstring for shapes."""

    images: dict[str, np.ndarray]
    joint_position: np.ndarray
    action: np.ndarray
    timestamp: np.ndarray
    instruction: str
    reasoning: list[str] = field(default_factory=list)
    task: str = ""
    success: bool = True
    target_position: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.joint_position.shape[0])

    def validate(self, contract: SensorContract) -> None:
        """Raise DatasetError naming the first array whose shape, dtype or values are wrong."""
        t, j = len(self), contract.num_joints
        if t < 1:
            raise DatasetError("episode has no steps")
        if set(self.images) != set(contract.camera_names):
            raise DatasetError(
                f"episode cameras {sorted(self.images)} != contract cameras {list(contract.camera_names)}"
            )
        want_img = (t, contract.image_height, contract.image_width, 3)
        for cam, img in self.images.items():
            if img.dtype != np.uint8 or img.shape != want_img:
                raise DatasetError(f"image_{cam} must be uint8 {want_img}, got {img.dtype} {img.shape}")
        for name in ("joint_position", "action"):
            arr = getattr(self, name)
            if arr.shape != (t, j):
                raise DatasetError(f"{name} must have shape {(t, j)}, got {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise DatasetError(f"{name} contains NaN or inf")
        if self.timestamp.shape != (t,):
            raise DatasetError(f"timestamp must have shape {(t,)}, got {self.timestamp.shape}")
        if t > 1 and np.any(np.diff(self.timestamp) <= 0):
            raise DatasetError("timestamps are not strictly increasing")
        if len(self.reasoning) not in (0, t):
            raise DatasetError(f"reasoning has {len(self.reasoning)} entries, expected 0 or {t}")
        if not self.instruction.strip():
            raise DatasetError("instruction is empty")
        if self.target_position is not None:
            if self.target_position.shape != (t, 3):
                raise DatasetError(f"target_position must have shape {(t, 3)}, got {self.target_position.shape}")
            if not np.all(np.isfinite(self.target_position)):
                raise DatasetError("target_position contains NaN or inf")

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {f"image_{cam}": np.ascontiguousarray(img) for cam, img in self.images.items()}
        reasoning = self.reasoning or [""] * len(self)
        arrays.update(
            joint_position=self.joint_position.astype(np.float32),
            action=self.action.astype(np.float32),
            timestamp=self.timestamp.astype(np.float64),
            reasoning=np.asarray(reasoning, dtype=np.str_),
            instruction=np.asarray(self.instruction, dtype=np.str_),
            task=np.asarray(self.task, dtype=np.str_),
            success=np.asarray(bool(self.success)),
        )
        if self.target_position is not None:
            arrays["target_position"] = self.target_position.astype(np.float32)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], camera_names) -> Episode:
        return cls(
            images={cam: arrays[f"image_{cam}"] for cam in camera_names},
            joint_position=arrays["joint_position"],
            action=arrays["action"],
            timestamp=arrays["timestamp"],
            instruction=str(arrays["instruction"]),
            reasoning=[str(r) for r in arrays["reasoning"]],
            task=str(arrays["task"]),
            success=bool(arrays["success"]),
            target_position=arrays["target_position"] if "target_position" in arrays else None,
        )


class DatasetWriter:
    """Writes episodes to a new dataset folder; never overwrites existing data.

    `meta.json` is rewritten after every episode (atomically), so an interrupted run leaves a
    readable dataset with the episodes written so far, marked ``"complete": false``. Use as a
    context manager: leaving it without an exception marks the dataset complete.
    """

    def __init__(self, root: str | os.PathLike, contract: SensorContract, source: str = "",
                 vocabulary: Sequence[str] = ()) -> None:
        self.root = Path(root)
        self.contract = contract
        self.source = source
        self.vocabulary = sorted(set(vocabulary))
        if (self.root / "meta.json").exists() or (self.root / "episodes").exists():
            raise DatasetError(f"{self.root} already holds a dataset; refusing to overwrite it")
        (self.root / "episodes").mkdir(parents=True, exist_ok=False)
        self._index: list[dict] = []
        self._complete = False
        self._write_meta()

    def add_episode(self, episode: Episode) -> Path:
        episode.validate(self.contract)
        path = self.root / "episodes" / f"episode_{len(self._index):06d}.npz"
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **episode.to_arrays())
        os.replace(tmp, path)
        self._index.append(
            {
                "file": path.name,
                "length": len(episode),
                "instruction": episode.instruction,
                "task": episode.task,
                "success": bool(episode.success),
            }
        )
        self._write_meta()
        return path

    def _write_meta(self) -> None:
        meta = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "source": self.source,
            "contract": self.contract.to_dict(),
            **({"vocabulary": self.vocabulary} if self.vocabulary else {}),
            "num_episodes": len(self._index),
            "num_steps": sum(e["length"] for e in self._index),
            "episodes": self._index,
            "complete": self._complete,
        }
        tmp = self.root / "meta.json.tmp"
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, self.root / "meta.json")

    def close(self, complete: bool = True) -> None:
        """Write the final meta.json; `complete` False: the writing was cut short."""
        self._complete = complete
        self._write_meta()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(complete=exc_type is None)


class DemoDataset:
    """Read access to a dataset folder: metadata, contract, and episodes loaded on demand."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if not meta_path.is_file():
            raise DatasetError(f"{self.root} is not a dataset: {meta_path} is missing")
        try:
            self.meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as e:
            raise DatasetError(f"{meta_path} is not valid JSON: {e}") from None
        if self.meta.get("format") != FORMAT_NAME:
            raise DatasetError(f"{meta_path}: format is {self.meta.get('format')!r}, expected {FORMAT_NAME!r}")
        if self.meta.get("version") != FORMAT_VERSION:
            raise DatasetError(f"{meta_path}: version {self.meta.get('version')} is not supported")
        self.contract = SensorContract.from_dict(self.meta["contract"])
        self.episode_index: list[dict] = list(self.meta["episodes"])

    @property
    def complete(self) -> bool:
        """False when the writer was interrupted (or still runs): episodes may be missing."""
        return bool(self.meta.get("complete", True))

    def __len__(self) -> int:
        return len(self.episode_index)

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """Every word the dataset's texts can hold, when its writer declared it (else empty)."""
        return tuple(self.meta.get("vocabulary", ()))

    @property
    def num_steps(self) -> int:
        return sum(e["length"] for e in self.episode_index)

    def episode(self, i: int) -> Episode:
        path = self.root / "episodes" / self.episode_index[i]["file"]
        try:
            with np.load(path, allow_pickle=False) as z:
                ep = Episode.from_arrays({k: z[k] for k in z.files}, self.contract.camera_names)
        except (OSError, KeyError, ValueError) as e:
            raise DatasetError(f"cannot read episode {path}: {e}") from None
        ep.validate(self.contract)
        return ep

    def __iter__(self) -> Iterator[Episode]:
        for i in range(len(self)):
            yield self.episode(i)
