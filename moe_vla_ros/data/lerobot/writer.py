"""Our demonstration dataset -> a LeRobotDataset v3.0 folder (`export_lerobot`).

What goes where (feature names as LeRobot's robots write them):

    observation.state            float32 [J]   joint_position, names = contract joint names
    action                       float32 [J]   action (joint-position targets), same names
    observation.images.<camera>  video [H, W, 3] (or embedded PNG "image" with video=False)
    observation.target_position  float32 [3]   target_position, when every episode has it
    reasoning                    string        reasoning text of the frame ("" when none)
    timestamp, frame_index, episode_index, index, task_index   (LeRobot's default features)

The instruction is the frame's task (meta/tasks.parquet); the task family and the success flag
become the episode-metadata columns `task_family` and `success`. fps = the contract's control
rate. Stats follow LeRobot's compute_stats (see stats.py). The folder is written under a hidden
sibling and renamed into place at the end: an existing dataset is never touched and a failed
export leaves nothing behind.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moe_vla_ros.data.dataset import DatasetError, DemoDataset, Episode
from moe_vla_ros.data.lerobot.schema import (
    ACTION_KEY,
    CODEBASE_VERSION,
    DATA_PATH,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_DATA_FILE_SIZE_IN_MB,
    DEFAULT_FEATURES,
    DEFAULT_VIDEO_FILE_SIZE_IN_MB,
    EPISODES_PATH,
    IMAGE_NAMES,
    IMAGE_PREFIX,
    INFO_PATH,
    STATE_KEY,
    STATS_PATH,
    TASKS_PATH,
    VIDEO_PATH,
    LeRobotFormatError,
)
from moe_vla_ros.data.lerobot.stats import aggregate, feature_stats, image_stats, to_json
from moe_vla_ros.data.lerobot.video import CODECS, PIX_FMTS, VideoEncoder, check_encoding, video_info
from moe_vla_ros.validation import require_choice, require_int, require_positive

TARGET_KEY = "observation.target_position"
REASONING_KEY = "reasoning"
TIMESTAMP_TOLERANCE_S = 1e-4  # LeRobot's default tolerance_s for frame timestamps


@dataclass(frozen=True)
class ExportOptions:
    """How `export_lerobot` writes.

    Attributes:
        video: cameras as mp4 video streams (True) or PNG images embedded in the parquet files.
        codec: video codec: "libsvtav1" (LeRobot's default), "h264" or "hevc".
        crf: codec quality (lower: better, larger); LeRobot's default 30.
        gop: frames between key frames; LeRobot's default 2 (cheap random access).
        pix_fmt: video pixel format, "yuv420p" (LeRobot's default: colour at half resolution,
            which smears small coloured objects) or "yuv444p" (full-resolution colour; needs
            codec "h264" or "hevc", SVT-AV1 writes 4:2:0 only). Recorded as info.json
            `video.pix_fmt`, as LeRobot does.
        robot_type: info.json robot_type (None: not stated).
        data_file_size_mb: start a new data parquet file beyond this size.
        video_file_size_mb: start a new mp4 file beyond this size.
        chunks_size: files per chunk-XXX folder.
        progress: show a progress bar.
    """

    video: bool = True
    codec: str = "libsvtav1"
    crf: int | None = 30
    gop: int | None = 2
    pix_fmt: str = "yuv420p"
    robot_type: str | None = None
    data_file_size_mb: float = DEFAULT_DATA_FILE_SIZE_IN_MB
    video_file_size_mb: float = DEFAULT_VIDEO_FILE_SIZE_IN_MB
    chunks_size: int = DEFAULT_CHUNK_SIZE
    progress: bool = True

    def __post_init__(self) -> None:
        require_choice("pix_fmt", self.pix_fmt, PIX_FMTS, error=LeRobotFormatError)
        if self.video:  # PNG images (video=False) ignore codec and pix_fmt
            check_encoding(self.codec, self.pix_fmt, error=LeRobotFormatError)
        else:
            require_choice("codec", self.codec, CODECS, error=LeRobotFormatError)
        if self.crf is not None:
            require_int("crf", self.crf, 0, 63, error=LeRobotFormatError)
        if self.gop is not None:
            require_int("gop", self.gop, 1, error=LeRobotFormatError)
        for name in ("data_file_size_mb", "video_file_size_mb"):
            require_positive(name, getattr(self, name), error=LeRobotFormatError)
        require_int("chunks_size", self.chunks_size, 1, error=LeRobotFormatError)


@dataclass
class ExportReport:
    """What an export wrote."""

    output: Path
    episodes: int = 0
    frames: int = 0
    tasks: int = 0
    features: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _next_file(chunk: int, file: int, chunks_size: int) -> tuple[int, int]:
    return (chunk + 1, 0) if file == chunks_size - 1 else (chunk, file + 1)


def _fps_value(rate: float) -> int | float:
    return int(rate) if float(rate).is_integer() else float(rate)


def _features(dataset: DemoDataset, with_target: bool, video: bool) -> dict[str, dict[str, Any]]:
    c = dataset.contract
    joints = list(c.joint_names)
    features: dict[str, dict[str, Any]] = {
        STATE_KEY: {"dtype": "float32", "shape": [c.num_joints], "names": joints},
        ACTION_KEY: {"dtype": "float32", "shape": [c.num_joints], "names": joints},
    }
    for cam in c.camera_names:
        features[IMAGE_PREFIX + cam] = {
            "dtype": "video" if video else "image", "shape": [c.image_height, c.image_width, 3], "names": list(IMAGE_NAMES),
        }
    if with_target:
        features[TARGET_KEY] = {"dtype": "float32", "shape": [3], "names": ["x", "y", "z"]}
    features[REASONING_KEY] = {"dtype": "string", "shape": [1], "names": None}
    features.update({k: dict(v, shape=list(v["shape"])) for k, v in DEFAULT_FEATURES.items()})
    return features


def _hf_features(features: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The `huggingface` schema metadata `datasets` writes (get_hf_features_from_features)."""
    out: dict[str, Any] = {}
    for key, ft in features.items():
        if ft["dtype"] == "video":
            continue
        if ft["dtype"] == "image":
            out[key] = {"_type": "Image"}
        elif ft["shape"] == [1]:
            out[key] = {"dtype": ft["dtype"], "_type": "Value"}
        else:
            out[key] = {"feature": {"dtype": ft["dtype"], "_type": "Value"}, "length": ft["shape"][0], "_type": "Sequence"}
    return out


def _has_target(dataset: DemoDataset) -> bool:
    """Whether every episode file holds target_position (reads only the npz directories)."""
    for entry in dataset.episode_index:
        with np.load(dataset.root / "episodes" / entry["file"], allow_pickle=False) as z:
            if "target_position" not in z.files:
                return False
    return len(dataset) > 0


def _png(image: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise LeRobotFormatError("PNG encoding failed")
    return buf.tobytes()


def _vector_array(values: np.ndarray):
    import pyarrow as pa

    values = np.ascontiguousarray(values, dtype=np.float32)  # [T, n]
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def _tasks_table(tasks: dict[str, int]):
    """meta/tasks.parquet as pandas writes a frame indexed by "task" with a task_index column."""
    import pyarrow as pa

    names = sorted(tasks, key=tasks.get)
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    table = pa.table({"task_index": pa.array([tasks[n] for n in names], pa.int64()), "task": pa.array(names, pa.string())})
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


class _RollingParquet:
    """Parquet files data/chunk-XXX/file-YYY.parquet, a new one once the current passes the size limit."""

    def __init__(self, root: Path, template: str, limit_mb: float, chunks_size: int, metadata: dict[bytes, bytes]):
        self.root, self.template, self.limit, self.chunks_size = root, template, limit_mb * 2**20, chunks_size
        self.metadata = metadata
        self.chunk, self.file, self.bytes = 0, 0, 0
        self.writer = None

    def write(self, table) -> tuple[int, int]:
        import pyarrow.parquet as pq

        if self.writer is not None and self.bytes + table.nbytes > self.limit:
            self.writer.close()
            self.writer = None
            self.chunk, self.file = _next_file(self.chunk, self.file, self.chunks_size)
        if self.writer is None:
            path = self.root / self.template.format(chunk_index=self.chunk, file_index=self.file)
            path.parent.mkdir(parents=True, exist_ok=True)
            schema = table.schema.with_metadata(self.metadata)
            self.writer = pq.ParquetWriter(path, schema, compression="snappy", use_dictionary=True)
            self.bytes = 0
        self.writer.write_table(table.replace_schema_metadata(self.metadata))
        self.bytes += table.nbytes
        return self.chunk, self.file

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class _RollingVideo:
    """mp4 files videos/<key>/chunk-XXX/file-YYY.mp4 of one camera, episodes back to back."""

    def __init__(self, root: Path, key: str, fps: float, height: int, width: int, options: ExportOptions):
        self.root, self.key, self.fps, self.size, self.options = root, key, fps, (height, width), options
        self.chunk, self.file = 0, 0
        self.encoder: VideoEncoder | None = None

    def add(self, frames: np.ndarray) -> dict[str, Any]:
        o = self.options
        if self.encoder is not None and self.encoder.bytes > o.video_file_size_mb * 2**20:
            self.encoder.close()
            self.encoder = None
            self.chunk, self.file = _next_file(self.chunk, self.file, o.chunks_size)
        if self.encoder is None:
            path = self.root / VIDEO_PATH.format(video_key=self.key, chunk_index=self.chunk, file_index=self.file)
            self.encoder = VideoEncoder(path, self.fps, *self.size, codec=o.codec, crf=o.crf, gop=o.gop,
                                        pix_fmt=o.pix_fmt)
        start = self.encoder.frames
        self.encoder.add(frames)
        return {
            f"videos/{self.key}/chunk_index": self.chunk,
            f"videos/{self.key}/file_index": self.file,
            f"videos/{self.key}/from_timestamp": start / self.fps,
            f"videos/{self.key}/to_timestamp": (start + len(frames)) / self.fps,
        }

    def close(self) -> None:
        if self.encoder is not None:
            self.encoder.close()
            self.encoder = None


def _check_timestamps(episode: Episode, fps: float, index: int) -> None:
    want = np.arange(len(episode)) / fps
    worst = float(np.max(np.abs(episode.timestamp - want)))
    if worst > TIMESTAMP_TOLERANCE_S:
        raise DatasetError(
            f"episode {index}: timestamps are not frame_index / fps (off by up to {worst:.4g} s); "
            "LeRobot needs frames exactly 1/fps apart"
        )


def export_lerobot(
    dataset: DemoDataset | str | Path, output: str | Path, options: ExportOptions = ExportOptions()
) -> ExportReport:
    """Write `dataset` (ours) as a new LeRobotDataset v3.0 folder `output` (see the module docstring).

    Raises LeRobotFormatError when `output` exists and is not empty (never overwrites), DatasetError
    for episodes LeRobot cannot hold (timestamps not 1/fps apart).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm import tqdm

    if not isinstance(dataset, DemoDataset):
        dataset = DemoDataset(dataset)
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise LeRobotFormatError(f"{output} already exists and is not empty; refusing to overwrite it")
    if len(dataset) == 0:
        raise DatasetError(f"{dataset.root} has no episodes")
    contract = dataset.contract
    fps = contract.control_rate_hz
    with_target = _has_target(dataset)
    features = _features(dataset, with_target, options.video)
    hf_meta = {b"huggingface": json.dumps({"info": {"features": _hf_features(features)}}).encode()}
    report = ExportReport(output=output, features=list(features))
    if not with_target:
        report.notes.append("target_position not in every episode: not exported")

    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.parent / f".{output.name}.{uuid.uuid4().hex[:8]}.partial"
    staging.mkdir()
    data = _RollingParquet(staging, DATA_PATH, options.data_file_size_mb, options.chunks_size, hf_meta)
    videos = {
        cam: _RollingVideo(staging, IMAGE_PREFIX + cam, fps, contract.image_height, contract.image_width, options)
        for cam in contract.camera_names
    } if options.video else {}
    try:
        tasks: dict[str, int] = {}
        rows: list[dict[str, Any]] = []
        episode_stats: list[dict[str, dict[str, np.ndarray]]] = []
        index = 0
        bar = tqdm(total=len(dataset), disable=not options.progress, desc="export", unit="episode")
        for e in range(len(dataset)):
            episode = dataset.episode(e)
            t = len(episode)
            _check_timestamps(episode, fps, e)
            task_index = tasks.setdefault(episode.instruction, len(tasks))
            frame_index = np.arange(t, dtype=np.int64)
            timestamps = (frame_index / fps).astype(np.float32)
            columns: dict[str, Any] = {
                STATE_KEY: _vector_array(episode.joint_position),
                ACTION_KEY: _vector_array(episode.action),
            }
            ep_stats = {
                STATE_KEY: feature_stats(episode.joint_position),
                ACTION_KEY: feature_stats(episode.action),
            }
            meta: dict[str, Any] = {}
            for cam in contract.camera_names:
                key, frames = IMAGE_PREFIX + cam, episode.images[cam]
                ep_stats[key] = image_stats(frames)
                if options.video:
                    meta.update(videos[cam].add(frames))
                else:
                    columns[key] = pa.array(
                        [{"bytes": _png(img), "path": None} for img in frames],
                        pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
                    )
            if with_target:
                columns[TARGET_KEY] = _vector_array(episode.target_position)
                ep_stats[TARGET_KEY] = feature_stats(episode.target_position)
            columns[REASONING_KEY] = pa.array(list(episode.reasoning or [""] * t), pa.string())
            defaults = {
                "timestamp": timestamps,
                "frame_index": frame_index,
                "episode_index": np.full(t, e, np.int64),
                "index": np.arange(index, index + t, dtype=np.int64),
                "task_index": np.full(t, task_index, np.int64),
            }
            for key, values in defaults.items():
                columns[key] = pa.array(values)
                ep_stats[key] = feature_stats(values)
            chunk, file = data.write(pa.table({k: columns[k] for k in features if k in columns}))
            row = {
                "episode_index": e, "tasks": [episode.instruction], "length": t,
                "data/chunk_index": chunk, "data/file_index": file,
                "dataset_from_index": index, "dataset_to_index": index + t,
                **meta,
                "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
                "task_family": episode.task, "success": bool(episode.success),
            }
            for key, s in ep_stats.items():
                for name, value in to_json(s).items():
                    row[f"stats/{key}/{name}"] = value
            rows.append(row)
            episode_stats.append(ep_stats)
            index += t
            bar.update(1)
        bar.close()
        data.close()
        for video in videos.values():
            video.close()

        episodes_path = staging / EPISODES_PATH.format(chunk_index=0, file_index=0)
        episodes_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), episodes_path, compression="snappy")
        pq.write_table(_tasks_table(tasks), staging / TASKS_PATH)
        for cam in videos:
            key = IMAGE_PREFIX + cam
            features[key]["info"] = video_info(staging / VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0))
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": options.robot_type,
            "total_episodes": len(rows),
            "total_frames": index,
            "total_tasks": len(tasks),
            "chunks_size": options.chunks_size,
            "data_files_size_in_mb": options.data_file_size_mb,
            "video_files_size_in_mb": options.video_file_size_mb,
            "fps": _fps_value(fps),
            "splits": {"train": f"0:{len(rows)}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if options.video else None,
            "features": features,
        }
        (staging / INFO_PATH).write_text(json.dumps(info, indent=4))
        total = {key: to_json(aggregate([s[key] for s in episode_stats])) for key in episode_stats[0]}
        (staging / STATS_PATH).write_text(json.dumps(total, indent=4))
        if output.exists():
            output.rmdir()  # an empty folder the caller made
        staging.rename(output)
    except BaseException:
        data.close()
        for video in videos.values():
            try:
                video.close()
            except Exception:
                pass
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report.episodes, report.frames, report.tasks = len(rows), index, len(tasks)
    return report
