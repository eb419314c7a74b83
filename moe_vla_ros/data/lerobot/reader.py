"""A LeRobotDataset v3.0 folder read as our demonstrations (`LeRobotDemoDataset`).

It offers what training reads from a `DemoDataset`: `contract`, `len()`, `episode(i)` (an
`Episode` in contract units), iteration, `episode_index` and `num_steps`, plus
`state_action(i)` (no image decoding). Features are mapped by a `LeRobotMapping` (mapping.py):
joints picked and renamed by name, image keys assigned to contract cameras, frames decoded from
the mp4 files (PyAV) or the embedded PNGs and resized to the contract's image size.

Refused, with the reason (LeRobotFormatError and its subclasses, all bad input):
- a codebase_version other than v3.0 (LeRobotVersionError);
- a mapped feature or camera the dataset lacks, a dataset without image features;
- actions that are not joint-position targets of the observed joints: other names than the
  state's, or values that do not track the observed positions (mapping `check_actions`);
- sizes that do not match: action vs state length, names vs shape, frames vs info.json.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from moe_vla_ros.contract import SensorContract
from moe_vla_ros.data.dataset import Episode
from moe_vla_ros.data.lerobot.mapping import LeRobotMapping, LeRobotMappingError
from moe_vla_ros.data.lerobot.schema import (
    EPISODES_DIR,
    IMAGE_PREFIX,
    TASKS_PATH,
    VISUAL_DTYPES,
    LeRobotFormatError,
    read_info,
)
from moe_vla_ros.data.lerobot.video import VideoReader

TIMESTAMP_TOLERANCE_S = 1e-4


class LeRobotActionError(LeRobotMappingError):
    """The dataset's actions are not joint-position targets of its observed joints."""


def _names(feature: dict[str, Any], size: int) -> list[str] | None:
    """Per-dimension names of a vector feature, or None where it has none usable: absent, one
    label for the whole vector (ported datasets write e.g. ["dim"]), or duplicates."""
    names = feature.get("names")
    if isinstance(names, dict):  # older datasets: {"motors": [...]}
        lists = [v for v in names.values() if isinstance(v, list)]
        names = lists[0] if len(lists) == 1 else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    if len(names) != size or len(set(names)) != size:
        return None
    return names


def stored_image_size(feature: dict[str, Any], key: str) -> tuple[int, int]:
    """(height, width) of a visual feature: [h, w, c] with names ending in channel(s) (LeRobot's
    robots), [c, h, w] with names starting with it (ported datasets); 3 channels."""
    shape, names = feature.get("shape"), feature.get("names") or []
    if not (isinstance(shape, list) and len(shape) == 3):
        raise LeRobotMappingError(f"image feature {key!r} shape {shape} is not 3-D")
    channel = ("c", "channel", "channels")
    first, last = (str(names[0]), str(names[-1])) if isinstance(names, list) and names else ("", "")
    channel_first = first in channel or (last not in channel and shape[2] != 3 and shape[0] == 3)
    c, h, w = shape if channel_first else (shape[2], shape[0], shape[1])
    if c != 3:
        raise LeRobotMappingError(f"image feature {key!r} has {c} channels (shape {shape}, names {names}); RGB is needed")
    return int(h), int(w)


def _vector_column(column, width: int, key: str) -> np.ndarray:
    """A fixed-size or variable list column -> float64 [N, width]."""
    import pyarrow as pa

    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_fixed_size_list(column.type) or pa.types.is_list(column.type):
        values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
        if values.size != len(column) * width:
            raise LeRobotMappingError(
                f"feature {key!r} has {values.size // max(len(column), 1)} values per frame, info.json says {width}: sizes do not match"
            )
        return values.reshape(len(column), width)
    values = column.to_numpy(zero_copy_only=False).astype(np.float64)
    if width != 1:
        raise LeRobotMappingError(f"feature {key!r} is a scalar column, info.json says {width} values")
    return values.reshape(-1, 1)


class LeRobotDemoDataset:
    """Read access to a LeRobot v3.0 dataset as our episodes; see the module docstring.

    Args:
        root: the dataset folder (meta/info.json, data/, videos/).
        mapping: feature names -> our contract (default: LeRobot's standard names).
        image_size: (height, width) to resize to; overrides the mapping's (training passes the
            model's size when fine-tuning).
    """

    def __init__(self, root: str | Path, mapping: LeRobotMapping | None = None,
                 image_size: tuple[int, int] | None = None) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.root = Path(root)
        self.mapping = mapping = mapping or LeRobotMapping()
        self.info = info = read_info(self.root)
        features: dict[str, dict] = info.get("features") or {}
        self.features = features
        fps = info.get("fps")
        if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not fps > 0:
            raise LeRobotFormatError(f"{self.root}: info.json fps {fps!r} is not a positive number")
        self.fps = float(fps)

        # joints
        state_ft, action_ft = features.get(mapping.state_key), features.get(mapping.action_key)
        for key, ft in ((mapping.state_key, state_ft), (mapping.action_key, action_ft)):
            if ft is None:
                raise LeRobotMappingError(
                    f"{self.root} has no feature {key!r} (features: {sorted(features)}); name it with --lerobot-map"
                )
            if ft.get("dtype") not in ("float32", "float64") or len(ft.get("shape", [])) != 1:
                raise LeRobotMappingError(f"feature {key!r} must be a float vector, got {ft.get('dtype')} {ft.get('shape')}")
        n_state, n_action = state_ft["shape"][0], action_ft["shape"][0]
        if n_action != n_state:
            raise LeRobotMappingError(
                f"{mapping.action_key!r} has {n_action} values per frame, {mapping.state_key!r} {n_state}: sizes do not "
                "match (actions must be joint-position targets of the observed joints)"
            )
        named_state, named_action = _names(state_ft, n_state), _names(action_ft, n_action)
        state_names = named_state or [f"joint_{i}" for i in range(n_state)]
        action_names = named_action or state_names  # unnamed: the data check below decides
        if named_state is None and named_action is not None:
            state_names = action_names
        if action_names != state_names:
            raise LeRobotActionError(
                f"actions are not joint-position targets of the observed joints: {mapping.action_key!r} names "
                f"{action_names} differ from {mapping.state_key!r} names {state_names}"
            )
        joints = mapping.joints or {n: n for n in state_names}
        unknown = {ours: theirs for ours, theirs in joints.items() if theirs not in state_names}
        if unknown:
            raise LeRobotMappingError(f"joints {unknown} are not names of {mapping.state_key!r}: {state_names}")
        self._joint_columns = np.array([state_names.index(t) for t in joints.values()])
        self._state_names = state_names

        # cameras
        visual = [k for k, f in features.items() if f.get("dtype") in VISUAL_DTYPES]
        if not visual:
            raise LeRobotMappingError(f"{self.root} has no image or video features; the policy needs cameras")
        if mapping.cameras:
            cameras = {ours: mapping.camera_key(key) for ours, key in mapping.cameras.items()}
            missing = {ours: key for ours, key in cameras.items() if key not in visual}
            if missing:
                raise LeRobotMappingError(f"cameras {missing} are missing from {self.root}; its image features: {visual}")
        else:
            cameras = {k.removeprefix(IMAGE_PREFIX).split(".")[-1]: k for k in visual}
            if len(cameras) != len(visual):
                raise LeRobotMappingError(f"image features {visual} give duplicate camera names; map them with camera.NAME=KEY")
        self.cameras = cameras
        self._stored_sizes = {key: stored_image_size(features[key], key) for key in cameras.values()}
        stored = self._stored_sizes[cameras[next(iter(cameras))]]
        size = image_size or ((mapping.image_height, mapping.image_width) if mapping.image_height else stored)
        self.contract = SensorContract(
            camera_names=tuple(cameras), image_height=int(size[0]), image_width=int(size[1]),
            joint_names=tuple(joints), control_rate_hz=self.fps,
        )

        # tasks and episodes
        tasks_path = self.root / TASKS_PATH
        if not tasks_path.is_file():
            raise LeRobotFormatError(f"{self.root}: {TASKS_PATH} is missing")
        tasks = pq.read_table(tasks_path)
        name_column = "task" if "task" in tasks.column_names else next(
            (c for c in tasks.column_names if pa.types.is_string(tasks.schema.field(c).type)), None
        )
        if name_column is None or "task_index" not in tasks.column_names:
            raise LeRobotFormatError(f"{tasks_path} lacks task / task_index columns: {tasks.column_names}")
        self.tasks = dict(zip(tasks["task_index"].to_pylist(), tasks[name_column].to_pylist()))
        files = sorted((self.root / EPISODES_DIR).glob("*/*.parquet"))
        if not files:
            raise LeRobotFormatError(f"{self.root}: no {EPISODES_DIR}/chunk-*/file-*.parquet")
        episodes = pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
        episodes = episodes.drop_columns([c for c in episodes.column_names if c.startswith("stats/")])
        rows = sorted(episodes.to_pylist(), key=lambda r: r["episode_index"])
        self._rows = rows

        # frame data (everything but video frames), in global index order
        data_files = sorted((self.root / "data").glob("*/*.parquet"))
        if not data_files:
            raise LeRobotFormatError(f"{self.root}: no data/chunk-*/file-*.parquet")
        wanted = [mapping.state_key, mapping.action_key, "timestamp", "frame_index", "index", "task_index"]
        self._reasoning_key = mapping.reasoning_key if features.get(mapping.reasoning_key, {}).get("dtype") == "string" else ""
        target = features.get(mapping.target_key) if mapping.target_key else None
        self._target_key = mapping.target_key if target and list(target.get("shape", [])) == [3] else ""
        image_keys = [k for k in cameras.values() if features[k]["dtype"] == "image"]
        extra = [k for k in (self._reasoning_key, self._target_key) if k] + image_keys
        tables = []
        for path in data_files:
            schema = pq.read_schema(path)
            missing = [c for c in wanted + extra if c not in schema.names]
            if missing:
                raise LeRobotFormatError(f"{path} lacks columns {missing}")
            tables.append(pq.read_table(path, columns=wanted + extra))
        table = pa.concat_tables(tables)
        index = table["index"].to_numpy()
        order = np.argsort(index, kind="stable")
        if not np.array_equal(index[order], np.arange(len(index))):
            raise LeRobotFormatError(f"{self.root}: the data's index column is not 0..{len(index) - 1}")
        table = table.take(pa.array(order))
        self._state = _vector_column(table[mapping.state_key], n_state, mapping.state_key) * mapping.position_scale
        self._action = _vector_column(table[mapping.action_key], n_action, mapping.action_key) * mapping.position_scale
        self._timestamp = table["timestamp"].to_numpy().astype(np.float64)
        self._frame_index = table["frame_index"].to_numpy()
        self._task_index = table["task_index"].to_numpy()
        self._reasoning = table[self._reasoning_key].to_pylist() if self._reasoning_key else None
        self._target = _vector_column(table[self._target_key], 3, self._target_key) if self._target_key else None
        self._images = {k: table[k] for k in image_keys}
        for row in rows:
            a, b = row["dataset_from_index"], row["dataset_to_index"]
            if not (0 <= a < b <= len(index)) or b - a != row["length"]:
                raise LeRobotFormatError(f"episode {row['episode_index']}: rows {a}..{b} do not hold its {row['length']} frames")
        self.episode_index = [
            {"length": int(r["length"]), "instruction": self._instruction(r), "task": str(r.get("task_family") or ""),
             "success": bool(r["success"]) if r.get("success") is not None else True}
            for r in rows
        ]
        self._videos: dict[Path, VideoReader] = {}
        if mapping.check_actions:
            self._check_actions()

    # -- helpers ---------------------------------------------------------------------------------
    def _instruction(self, row: dict) -> str:
        a = row["dataset_from_index"]
        return str(self.tasks.get(int(self._task_index[a]), row["tasks"][0] if row.get("tasks") else ""))

    def _check_actions(self) -> None:
        """Refuse actions that do not track the observed joints (deltas, velocities, other joints)."""
        cols = self._joint_columns
        errors, states, actions = [], [], []
        for row in self._rows:
            a, b = row["dataset_from_index"], row["dataset_to_index"]
            s, u = self._state[a:b, cols], self._action[a:b, cols]
            if b - a >= 2:
                errors.append(np.abs(u[:-1] - s[1:]))  # action at t vs the position observed at t+1
            states.append(s)
            actions.append(u)
        largest = max(float(np.abs(np.concatenate(states)).max()), float(np.abs(np.concatenate(actions)).max()))
        if largest > 4 * np.pi:
            raise LeRobotActionError(
                f"joint positions/targets reach {largest:.4g} (after position_scale {self.mapping.position_scale:g}): not "
                "SI units (rad, m); degrees? pass degrees=true (or scale=FACTOR) to --lerobot-map"
            )
        if not errors:
            return
        spread = np.concatenate(states).std(axis=0)  # [J]
        moving = spread > 1e-4
        if not moving.any():
            return
        err = np.concatenate(errors).mean(axis=0)[moving] / spread[moving]
        scale = np.concatenate(actions).std(axis=0)[moving] / spread[moving]
        tol = self.mapping.action_tolerance
        if np.median(err) > tol or not 0.5 <= np.median(scale) <= 2.0:  # targets spread like the positions they reach
            raise LeRobotActionError(
                f"actions are not joint-position targets of the observed joints: mean |action[t] - state[t+1]| is "
                f"{np.median(err):.2f} x the joints' spread (allowed {tol}), action spread {np.median(scale):.2f} x the "
                "state's (deltas, velocities or another space?); pass check_actions=false to --lerobot-map only if "
                "they are absolute joint-position targets"
            )

    def _video_frames(self, key: str, row: dict, length: int) -> np.ndarray:
        path = self.root / self.info["video_path"].format(
            video_key=key, chunk_index=int(row[f"videos/{key}/chunk_index"]), file_index=int(row[f"videos/{key}/file_index"])
        )
        reader = self._videos.get(path)
        if reader is None:
            reader = self._videos[path] = VideoReader(path)
        start = float(row[f"videos/{key}/from_timestamp"]) + float(self._timestamp[row["dataset_from_index"]])
        return reader.read(start, length, self.fps)

    def _image_frames(self, key: str, a: int, b: int) -> np.ndarray:
        import cv2

        out = []
        for item in self._images[key].slice(a, b - a).to_pylist():
            img = cv2.imdecode(np.frombuffer(item["bytes"], np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                raise LeRobotFormatError(f"{self.root}: an embedded {key} image cannot be decoded")
            out.append(img[..., ::-1])
        return np.stack(out)

    def _resize(self, frames: np.ndarray, key: str) -> np.ndarray:
        import cv2

        stored = self._stored_sizes[key]
        if frames.shape[1:3] != stored:
            raise LeRobotMappingError(
                f"{key} frames are {frames.shape[1]}x{frames.shape[2]}, info.json says {stored[0]}x{stored[1]}: sizes do not match"
            )
        h, w = self.contract.image_height, self.contract.image_width
        if stored == (h, w):
            return np.ascontiguousarray(frames)
        interp = cv2.INTER_AREA if h < stored[0] else cv2.INTER_LINEAR
        return np.stack([cv2.resize(f, (w, h), interpolation=interp) for f in frames])

    # -- the DemoDataset interface ----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._rows)

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """A LeRobot dataset declares no closed vocabulary: its tasks' words are what there is."""
        return ()

    @property
    def num_steps(self) -> int:
        return sum(e["length"] for e in self.episode_index)

    @property
    def has_target_position(self) -> bool:
        return self._target is not None

    def state_action(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(joint_position [T, J], action [T, J]) float32 of episode i, without decoding images."""
        row = self._rows[i]
        a, b = row["dataset_from_index"], row["dataset_to_index"]
        cols = self._joint_columns
        return self._state[a:b, cols].astype(np.float32), self._action[a:b, cols].astype(np.float32)

    def episode(self, i: int) -> Episode:
        row = self._rows[i]
        a, b = row["dataset_from_index"], row["dataset_to_index"]
        t = b - a
        frame_index = self._frame_index[a:b]
        timestamp = self._timestamp[a:b] - self._timestamp[a]
        exact = frame_index / self.fps
        if np.max(np.abs(timestamp - (exact - exact[0]))) <= TIMESTAMP_TOLERANCE_S:
            timestamp = exact - exact[0]  # LeRobot stores float32 frame_index / fps: recover it exactly
        images = {}
        for cam, key in self.cameras.items():
            frames = self._image_frames(key, a, b) if key in self._images else self._video_frames(key, row, t)
            images[cam] = self._resize(frames, key)
        state, action = self.state_action(i)
        meta = self.episode_index[i]
        episode = Episode(
            images=images, joint_position=state, action=action, timestamp=timestamp.astype(np.float64),
            instruction=meta["instruction"],
            reasoning=[str(r or "") for r in self._reasoning[a:b]] if self._reasoning is not None else [],
            task=meta["task"], success=meta["success"],
            target_position=self._target[a:b].astype(np.float32) if self._target is not None else None,
        )
        episode.validate(self.contract)
        return episode

    def __iter__(self) -> Iterator[Episode]:
        for i in range(len(self)):
            yield self.episode(i)

    def close(self) -> None:
        for reader in self._videos.values():
            reader.close()
        self._videos.clear()

    def describe(self) -> str:
        """One line: what was mapped to what."""
        joints = dict(zip(self.contract.joint_names, (self._joint_names_theirs())))
        return (
            f"LeRobot dataset {self.root}: {len(self)} episodes, {self.num_steps} frames at {self.fps:g} fps; "
            f"cameras {self.cameras}; joints {joints}; target_position {'from ' + self._target_key if self._target_key else 'absent'}"
        )

    def _joint_names_theirs(self) -> list[str]:
        return [self._state_names[c] for c in self._joint_columns]


def open_demonstrations(root: str | Path, mapping: LeRobotMapping | None = None,
                        image_size: tuple[int, int] | None = None):
    """Our dataset folder (meta.json) -> DemoDataset; a LeRobot folder (meta/info.json) -> LeRobotDemoDataset."""
    from moe_vla_ros.data.dataset import DemoDataset
    from moe_vla_ros.data.lerobot.schema import is_lerobot_dataset

    if is_lerobot_dataset(root):
        return LeRobotDemoDataset(root, mapping, image_size)
    if mapping is not None and mapping != LeRobotMapping():
        raise LeRobotMappingError(f"{root} is not a LeRobot dataset (no meta/info.json); a LeRobot mapping does not apply")
    return DemoDataset(root)


def import_lerobot(root: str | Path, output: str | Path, mapping: LeRobotMapping | None = None,
                   image_size: tuple[int, int] | None = None, progress: bool = False):
    """A LeRobot v3.0 folder -> a new dataset folder of ours (returns it opened as DemoDataset)."""
    from tqdm import tqdm

    from moe_vla_ros.data.dataset import DatasetWriter, DemoDataset

    source = LeRobotDemoDataset(root, mapping, image_size)
    try:
        with DatasetWriter(output, source.contract, source=f"lerobot:{Path(root).resolve()}") as writer:
            for episode in tqdm(source, total=len(source), disable=not progress, desc="import", unit="episode"):
                writer.add_episode(episode)
    finally:
        source.close()
    return DemoDataset(output)
