"""The LeRobotDataset v3.0 on-disk layout, and a checker that holds a folder to it.

Written from LeRobot's own source (huggingface/lerobot, Apache-2.0), which is the format's only
specification; the file each rule comes from is named beside it:

- `src/lerobot/datasets/utils.py`: the paths (INFO_PATH, STATS_PATH, DEFAULT_TASKS_PATH,
  DEFAULT_EPISODES_PATH, DEFAULT_DATA_PATH, DEFAULT_VIDEO_PATH, DEFAULT_IMAGE_PATH), the five
  DEFAULT_FEATURES every frame carries, the info.json keys of `create_empty_dataset_info`,
  image/video feature names ["height", "width", "channels"] (`hw_to_dataset_features`).
- `src/lerobot/datasets/dataset_metadata.py`: CODEBASE_VERSION "v3.0"; episode rows
  (`save_episode`, `_save_episode_metadata`): episode_index, tasks (list of strings), length,
  dataset_from_index, dataset_to_index, meta/episodes/chunk_index, meta/episodes/file_index, and
  the episode's stats flattened as stats/<feature>/<stat>; tasks.parquet is a pandas frame
  indexed by the task string with a task_index column (`save_episode_tasks`).
- `src/lerobot/datasets/dataset_writer.py`: data/chunk_index, data/file_index
  (`_save_episode_data`), videos/<key>/chunk_index, file_index, from_timestamp, to_timestamp
  (`_save_episode_video`); several episodes share one parquet/mp4 file, each video episode
  starting at from_timestamp in it.
- `src/lerobot/datasets/compute_stats.py`: stats keys min, max, mean, std, count and the
  quantiles q01, q10, q50, q90, q99 (DEFAULT_QUANTILES); count has shape [1]; image/video stats
  are per channel, shape [3, 1, 1], in [0, 1].
- `src/lerobot/datasets/video_utils.py`: a video feature's `info` (`get_video_info`):
  video.height, video.width, video.codec, video.pix_fmt, video.is_depth_map, video.fps,
  video.channels, has_audio; the default encoding (`encode_video_frames`): libsvtav1, yuv420p,
  g=2, crf=30.
- Parquet columns follow `get_hf_features_from_features` (feature_utils.py/utils.py): a
  feature of shape [1] is a scalar column, a vector of shape [n] a fixed-size list of n values,
  an image feature a struct {bytes: binary, path: string} (embedded PNG), a string feature a
  string column; video features have no data column.

Pure Python + pyarrow (no torch, no rclpy).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from moe_vla_ros.errors import BadInputError
from moe_vla_ros.validation import read_json

CODEBASE_VERSION = "v3.0"
SUPPORTED_VERSIONS = (CODEBASE_VERSION,)

INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
CHUNK_FILE_PATTERN = "chunk-{chunk_index:03d}/file-{file_index:03d}"
EPISODES_PATH = EPISODES_DIR + "/" + CHUNK_FILE_PATTERN + ".parquet"
DATA_PATH = "data/" + CHUNK_FILE_PATTERN + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE_PATTERN + ".mp4"

DEFAULT_CHUNK_SIZE = 1000  # files per chunk folder
DEFAULT_DATA_FILE_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB = 500

# Every frame carries these (utils.py DEFAULT_FEATURES).
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
STATE_KEY = "observation.state"
ACTION_KEY = "action"
IMAGE_PREFIX = "observation.images."
IMAGE_NAMES = ["height", "width", "channels"]
VISUAL_DTYPES = ("video", "image")
NUMERIC_DTYPES = ("float32", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{int(q * 100):02d}" for q in QUANTILES)  # compute_stats.py: q01 ... q99
STAT_KEYS = ("min", "max", "mean", "std", "count") + QUANTILE_KEYS

INFO_KEYS = {  # create_empty_dataset_info: key -> accepted JSON types
    "codebase_version": (str,),
    "robot_type": (str, type(None)),
    "total_episodes": (int,),
    "total_frames": (int,),
    "total_tasks": (int,),
    "chunks_size": (int,),
    "data_files_size_in_mb": (int, float),
    "video_files_size_in_mb": (int, float),
    "fps": (int, float),
    "splits": (dict,),
    "data_path": (str,),
    "video_path": (str, type(None)),
    "features": (dict,),
}
VIDEO_INFO_KEYS = ("video.height", "video.width", "video.codec", "video.pix_fmt", "video.is_depth_map",
                   "video.fps", "video.channels", "has_audio")

EPISODE_COLUMNS = {  # column -> pyarrow type test
    "episode_index": "int",
    "tasks": "list<string>",
    "length": "int",
    "data/chunk_index": "int",
    "data/file_index": "int",
    "dataset_from_index": "int",
    "dataset_to_index": "int",
    "meta/episodes/chunk_index": "int",
    "meta/episodes/file_index": "int",
}
VIDEO_EPISODE_COLUMNS = {"chunk_index": "int", "file_index": "int", "from_timestamp": "float", "to_timestamp": "float"}


class LeRobotFormatError(BadInputError):
    """A folder is not a LeRobotDataset v3.0, or breaks its layout."""


class LeRobotVersionError(LeRobotFormatError):
    """A LeRobot dataset of a codebase_version this reader does not support."""


def read_info(root: str | Path) -> dict[str, Any]:
    """meta/info.json of the dataset at `root`; LeRobotVersionError for a version other than v3.0."""
    missing = f"{root} is not a LeRobot dataset: {INFO_PATH} is missing"
    info = read_json(Path(root) / INFO_PATH, missing, error=LeRobotFormatError)
    version = info.get("codebase_version") if isinstance(info, dict) else None
    if version not in SUPPORTED_VERSIONS:
        hint = ""
        if isinstance(version, str) and version.startswith("v2"):
            hint = " (convert it with LeRobot's convert_dataset_v21_to_v30 first)"
        raise LeRobotVersionError(
            f"{root}: codebase_version {version!r} is not supported; this reader reads {list(SUPPORTED_VERSIONS)}{hint}"
        )
    return info


def is_lerobot_dataset(root: str | Path) -> bool:
    """Whether `root` looks like a LeRobot dataset (has meta/info.json), of any version."""
    return (Path(root) / INFO_PATH).is_file()


def _type_ok(pa_type, want: str) -> bool:
    import pyarrow as pa

    if want == "int":
        return pa.types.is_integer(pa_type)
    if want == "float":
        return pa.types.is_floating(pa_type)
    if want == "list<string>":
        return (pa.types.is_list(pa_type) or pa.types.is_large_list(pa_type)) and pa.types.is_string(pa_type.value_type)
    raise ValueError(want)


def feature_arrow_ok(feature: dict[str, Any], pa_type) -> bool:
    """Whether a data-parquet column of `pa_type` holds a feature as LeRobot writes it."""
    import pyarrow as pa

    dtype, shape = feature["dtype"], list(feature["shape"])
    if dtype == "image":
        return pa.types.is_struct(pa_type) and {f.name for f in pa_type} == {"bytes", "path"}
    if dtype == "string":
        return pa.types.is_string(pa_type) or pa.types.is_large_string(pa_type)
    want = pa.from_numpy_dtype(__import__("numpy").dtype(dtype))
    if shape == [1]:
        return pa_type == want
    if len(shape) == 1:
        return (
            (pa.types.is_fixed_size_list(pa_type) and pa_type.list_size == shape[0])
            or pa.types.is_list(pa_type)
        ) and pa_type.value_type == want
    return False


def check_dataset(root: str | Path) -> list[str]:
    """Every way the folder at `root` breaks the v3.0 layout (empty list: none); reads metadata and
    parquet schemas, not video frames. LeRobotVersionError/LeRobotFormatError when info.json is
    missing, unreadable or of another version."""
    import pyarrow.parquet as pq

    root = Path(root)
    info = read_info(root)
    problems: list[str] = []
    for key, types in INFO_KEYS.items():
        if key not in info:
            problems.append(f"info.json lacks {key!r}")
        elif not isinstance(info[key], types) or isinstance(info[key], bool):
            problems.append(f"info.json {key!r} is {type(info[key]).__name__}, expected {[t.__name__ for t in types]}")
    if problems:
        return problems
    if info["data_path"] != DATA_PATH:
        problems.append(f"data_path {info['data_path']!r} != {DATA_PATH!r}")
    features: dict[str, dict] = info["features"]
    video_keys = [k for k, f in features.items() if f.get("dtype") == "video"]
    if video_keys and info["video_path"] != VIDEO_PATH:
        problems.append(f"video_path {info['video_path']!r} != {VIDEO_PATH!r}")
    for key, want in DEFAULT_FEATURES.items():
        have = features.get(key)
        if have is None or have.get("dtype") != want["dtype"] or list(have.get("shape", [])) != want["shape"]:
            problems.append(f"feature {key!r} must be {want}, got {have}")
    for key, ft in features.items():
        if "/" in key:
            problems.append(f"feature name {key!r} contains '/'")
        if not {"dtype", "shape", "names"} <= set(ft):
            problems.append(f"feature {key!r} lacks dtype/shape/names: {sorted(ft)}")
            continue
        if ft["dtype"] not in NUMERIC_DTYPES + VISUAL_DTYPES + ("string",):
            problems.append(f"feature {key!r} has unknown dtype {ft['dtype']!r}")
        if not isinstance(ft["shape"], list) or not all(isinstance(s, int) and s > 0 for s in ft["shape"]):
            problems.append(f"feature {key!r} shape {ft['shape']!r} is not a list of positive integers")
        if ft["dtype"] in VISUAL_DTYPES and (len(ft["shape"]) != 3 or not isinstance(ft["names"], list) or len(ft["names"]) != 3):
            # LeRobot's robots write [h, w, c] with IMAGE_NAMES; ports of older datasets [c, h, w]
            # with ["c", "h", "w"] (dataset_to_policy_features reads both)
            problems.append(f"visual feature {key!r} must have a 3-D shape and 3 names, got {ft['shape']} {ft['names']}")
        if ft["dtype"] == "video":
            vinfo = ft.get("info") or {}
            missing = [k for k in VIDEO_INFO_KEYS if k not in vinfo]
            if missing:
                problems.append(f"video feature {key!r} info lacks {missing}")
    # tasks
    tasks_path = root / TASKS_PATH
    if not tasks_path.is_file():
        problems.append(f"{TASKS_PATH} is missing")
    else:
        schema = pq.read_schema(tasks_path)
        if "task_index" not in schema.names or not _type_ok(schema.field("task_index").type, "int"):
            problems.append(f"{TASKS_PATH} lacks an integer task_index column")
        if "task" not in schema.names:
            problems.append(f"{TASKS_PATH} lacks the task (index) column")
        elif b"pandas" in (schema.metadata or {}):
            index_columns = json.loads(schema.metadata[b"pandas"]).get("index_columns")
            if index_columns != ["task"]:
                problems.append(f"{TASKS_PATH}: pandas index is {index_columns}, expected ['task']")
        if pq.read_metadata(tasks_path).num_rows != info["total_tasks"]:
            problems.append(f"{TASKS_PATH} has {pq.read_metadata(tasks_path).num_rows} rows, total_tasks is {info['total_tasks']}")
    # episodes
    episode_files = sorted((root / EPISODES_DIR).glob("*/*.parquet"))
    if not episode_files:
        problems.append(f"no {EPISODES_DIR}/chunk-*/file-*.parquet")
    rows = 0
    stat_columns = [f"stats/{k}/{s}" for k, f in features.items() if f["dtype"] != "string" for s in STAT_KEYS]
    for path in episode_files:
        if not re.fullmatch(r"chunk-\d{3}/file-\d{3}\.parquet", path.relative_to(root / EPISODES_DIR).as_posix()):
            problems.append(f"{path.relative_to(root)} does not follow {EPISODES_PATH}")
        schema = pq.read_schema(path)
        rows += pq.read_metadata(path).num_rows
        for column, kind in EPISODE_COLUMNS.items():
            if column not in schema.names:
                problems.append(f"{path.relative_to(root)} lacks column {column!r}")
            elif not _type_ok(schema.field(column).type, kind):
                problems.append(f"{path.relative_to(root)} column {column!r} is {schema.field(column).type}, expected {kind}")
        for key in video_keys:
            for part, kind in VIDEO_EPISODE_COLUMNS.items():
                column = f"videos/{key}/{part}"
                if column not in schema.names:
                    problems.append(f"{path.relative_to(root)} lacks column {column!r}")
                elif not _type_ok(schema.field(column).type, kind):
                    problems.append(f"{path.relative_to(root)} column {column!r} is {schema.field(column).type}, expected {kind}")
        missing = [c for c in stat_columns if c not in schema.names]
        if missing:
            problems.append(f"{path.relative_to(root)} lacks episode stats columns {missing[:4]}{'...' if len(missing) > 4 else ''}")
    if episode_files and rows != info["total_episodes"]:
        problems.append(f"episode metadata has {rows} rows, total_episodes is {info['total_episodes']}")
    # data
    data_files = sorted((root / "data").glob("*/*.parquet"))
    if not data_files:
        problems.append("no data/chunk-*/file-*.parquet")
    frames = 0
    for path in data_files:
        if not re.fullmatch(r"chunk-\d{3}/file-\d{3}\.parquet", path.relative_to(root / "data").as_posix()):
            problems.append(f"{path.relative_to(root)} does not follow {DATA_PATH}")
        schema = pq.read_schema(path)
        frames += pq.read_metadata(path).num_rows
        for key, ft in features.items():
            if ft["dtype"] == "video":
                if key in schema.names:
                    problems.append(f"{path.relative_to(root)} has a column for video feature {key!r}")
            elif key not in schema.names:
                problems.append(f"{path.relative_to(root)} lacks column {key!r}")
            elif not feature_arrow_ok(ft, schema.field(key).type):
                problems.append(f"{path.relative_to(root)} column {key!r} is {schema.field(key).type}, not {ft['dtype']} {ft['shape']}")
        extra = sorted(set(schema.names) - set(features))
        if extra:
            problems.append(f"{path.relative_to(root)} has columns that are not features: {extra}")
    if data_files and frames != info["total_frames"]:
        problems.append(f"data has {frames} frames, total_frames is {info['total_frames']}")
    # videos
    for key in video_keys:
        if not sorted((root / "videos" / key).glob("*/*.mp4")):
            problems.append(f"no video file for {key!r} under videos/{key}/")
    # stats
    stats_path = root / STATS_PATH
    if not stats_path.is_file():
        problems.append(f"{STATS_PATH} is missing")
    else:
        stats = json.loads(stats_path.read_text())
        for key, ft in features.items():
            if ft["dtype"] == "string":
                continue
            have = stats.get(key)
            if not isinstance(have, dict):
                problems.append(f"stats.json has no stats for {key!r}")
                continue
            missing = [s for s in STAT_KEYS if s not in have]
            if missing:
                problems.append(f"stats.json {key!r} lacks {missing}")
                continue
            if not (isinstance(have["count"], list) and len(have["count"]) == 1):
                problems.append(f"stats.json {key!r} count must be a list of one integer")
            for s in STAT_KEYS[:4] + QUANTILE_KEYS:
                shape = _nested_shape(have[s])
                want = [3, 1, 1] if ft["dtype"] in VISUAL_DTYPES else list(ft["shape"])
                if shape != want:
                    problems.append(f"stats.json {key!r} {s} has shape {shape}, expected {want}")
    return problems


def _nested_shape(value) -> list[int]:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return shape


def assert_valid(root: str | Path) -> None:
    """LeRobotFormatError listing every problem `check_dataset` finds."""
    problems = check_dataset(root)
    if problems:
        raise LeRobotFormatError(f"{root} breaks the LeRobot v3.0 layout: " + "; ".join(problems))
