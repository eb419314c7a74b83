"""Tests of moe_vla_ros/data/lerobot: export to LeRobotDataset v3.0, the layout, import, the round
trip and every refusal. Small generated data (4 episodes of 12 steps, 32x32 images)."""

import dataclasses
import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from moe_vla_ros.data.dataset import DatasetError, DatasetWriter, DemoDataset, Episode
from moe_vla_ros.data.lerobot.mapping import LeRobotMapping, LeRobotMappingError
from moe_vla_ros.data.lerobot.reader import LeRobotActionError, LeRobotDemoDataset, import_lerobot
from moe_vla_ros.data.lerobot.schema import (
    QUANTILE_KEYS,
    STAT_KEYS,
    LeRobotFormatError,
    LeRobotVersionError,
    check_dataset,
)
from moe_vla_ros.data.lerobot.writer import ExportOptions, export_lerobot
from moe_vla_ros.errors import BadInputError
from moe_vla_ros.model.config import tiny_contract
from moe_vla_ros.training.synthetic import generate_synthetic_dataset

# Codec loss of LeRobot's default encoding (libsvtav1, yuv420p, crf 30) on these 32x32 synthetic
# frames (sharp coloured squares: the worst case for 4:2:0 chroma): measured mean |error| 5-9 grey
# levels per channel; the bound leaves room across encoder builds.
MEAN_CODEC_ERROR_BOUND = 12.0
FAST = dict(progress=False)


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    return generate_synthetic_dataset(tmp_path_factory.mktemp("ours") / "data", tiny_contract().sensors, 4, 12, seed=0)


@pytest.fixture(scope="module")
def exported(ours, tmp_path_factory):
    out = tmp_path_factory.mktemp("le") / "video"
    export_lerobot(ours, out, ExportOptions(**FAST))
    return out


@pytest.fixture(scope="module")
def exported_images(ours, tmp_path_factory):
    out = tmp_path_factory.mktemp("le") / "images"
    export_lerobot(ours, out, ExportOptions(video=False, **FAST))
    return out


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _edit_info(root, edit):
    path = root / "meta" / "info.json"
    info = json.loads(path.read_text())
    edit(info)
    path.write_text(json.dumps(info))


def _assert_same(a: Episode, b: Episode, exact_images: bool):
    for name in ("joint_position", "action", "timestamp", "target_position"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
        assert getattr(a, name).dtype == getattr(b, name).dtype, name
    assert (a.instruction, a.reasoning, a.task, a.success) == (b.instruction, b.reasoning, b.task, b.success)
    for cam in a.images:
        if exact_images:
            assert np.array_equal(a.images[cam], b.images[cam]), cam
        else:
            err = np.abs(a.images[cam].astype(int) - b.images[cam].astype(int))
            assert err.mean() < MEAN_CODEC_ERROR_BOUND, (cam, err.mean())


# -- export: the v3.0 layout -------------------------------------------------------------------


def test_export_follows_the_v3_layout(exported, ours):
    assert check_dataset(exported) == []
    info = json.loads((exported / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10 and isinstance(info["fps"], int)
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (4, 48, len({e.instruction for e in ours}))
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert info["splits"] == {"train": "0:4"} and info["chunks_size"] == 1000
    f = info["features"]
    joints = ["joint_1", "joint_2", "gripper"]
    assert f["observation.state"] == {"dtype": "float32", "shape": [3], "names": joints}
    assert f["action"] == {"dtype": "float32", "shape": [3], "names": joints}
    for cam in ("front", "wrist"):
        video = f[f"observation.images.{cam}"]
        assert video["dtype"] == "video" and video["shape"] == [32, 32, 3]
        assert video["names"] == ["height", "width", "channels"]
        assert video["info"]["video.codec"] == "av1" and video["info"]["video.pix_fmt"] == "yuv420p"
        assert video["info"]["video.fps"] == 10 and video["info"]["has_audio"] is False
        assert (exported / "videos" / f"observation.images.{cam}" / "chunk-000" / "file-000.mp4").is_file()
    assert f["reasoning"] == {"dtype": "string", "shape": [1], "names": None}
    assert f["observation.target_position"]["shape"] == [3]
    for key, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                       ("index", "int64"), ("task_index", "int64")):
        assert f[key] == {"dtype": dtype, "shape": [1], "names": None}

    data = pq.read_table(exported / "data" / "chunk-000" / "file-000.parquet")
    assert data.schema.field("observation.state").type == pa.list_(pa.float32(), 3)
    assert data.schema.field("timestamp").type == pa.float32() and data.schema.field("index").type == pa.int64()
    assert "observation.images.front" not in data.column_names  # videos live in the mp4 files
    assert data["index"].to_pylist() == list(range(48))
    assert np.allclose(data["timestamp"].to_numpy()[:12], np.arange(12) / 10)

    episodes = pq.read_table(exported / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    first, second = episodes[0], episodes[1]
    assert first["tasks"] == [ours.episode(0).instruction] and first["length"] == 12
    assert (first["dataset_from_index"], first["dataset_to_index"], second["dataset_from_index"]) == (0, 12, 12)
    assert (first["data/chunk_index"], first["data/file_index"]) == (0, 0)
    assert first["videos/observation.images.front/from_timestamp"] == 0.0
    assert second["videos/observation.images.front/from_timestamp"] == pytest.approx(1.2)
    assert second["videos/observation.images.front/to_timestamp"] == pytest.approx(2.4)
    assert len(first["stats/action/q01"]) == 3 and first["stats/action/count"] == [12]
    assert np.array(first["stats/observation.images.front/mean"]).shape == (3, 1, 1)

    tasks = pq.read_table(exported / "meta" / "tasks.parquet")
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]
    assert sorted(tasks["task_index"].to_pylist()) == list(range(info["total_tasks"]))


def test_stats_are_lerobot_stats_of_the_data(exported, ours):
    stats = json.loads((exported / "meta" / "stats.json").read_text())
    states = np.concatenate([e.joint_position for e in ours]).astype(np.float64)
    s = stats["observation.state"]
    assert set(s) == set(STAT_KEYS) and set(QUANTILE_KEYS) == {"q01", "q10", "q50", "q90", "q99"}
    assert s["count"] == [48]
    np.testing.assert_allclose(s["mean"], states.mean(0), atol=1e-6)
    np.testing.assert_allclose(s["std"], states.std(0), atol=1e-6)
    np.testing.assert_allclose(s["min"], states.min(0), atol=1e-6)
    np.testing.assert_allclose(s["max"], states.max(0), atol=1e-6)
    assert np.all(np.array(s["q01"]) <= np.array(s["q50"])) and np.all(np.array(s["q50"]) <= np.array(s["q99"]))
    front = np.concatenate([e.images["front"] for e in ours]).reshape(-1, 3) / 255.0
    np.testing.assert_allclose(np.array(stats["observation.images.front"]["mean"]).reshape(3), front.mean(0), atol=1e-6)
    assert stats["index"]["max"] == [47] and stats["episode_index"]["count"] == [48]
    assert "reasoning" not in stats  # strings have no stats


def test_checker_finds_broken_layouts(exported, tmp_path):
    broken = _copy(exported, tmp_path / "broken")
    _edit_info(broken, lambda info: (info.pop("splits"), info["features"]["observation.images.front"].update(shape=[32, 32])))
    (broken / "meta" / "stats.json").write_text(json.dumps({"action": {"min": [0.0]}}))
    problems = check_dataset(broken)
    assert any("splits" in p for p in problems)
    _edit_info(broken, lambda info: info.update(splits={}))
    problems = check_dataset(broken)
    assert any("visual feature 'observation.images.front' must have a 3-D shape" in p for p in problems)
    assert any("stats.json 'action' lacks" in p for p in problems)
    assert any("no stats for 'observation.state'" in p for p in problems)


def test_export_never_overwrites(ours, exported):
    with pytest.raises(LeRobotFormatError, match="refusing to overwrite"):
        export_lerobot(ours, exported, ExportOptions(**FAST))
    assert check_dataset(exported) == []


def test_export_refuses_timestamps_off_the_fps_grid(tmp_path):
    contract = tiny_contract().sensors
    rng = np.random.default_rng(0)
    ep = Episode(
        images={c: rng.integers(0, 255, (5, 32, 32, 3), dtype=np.uint8) for c in contract.camera_names},
        joint_position=np.zeros((5, 3), np.float32), action=np.zeros((5, 3), np.float32),
        timestamp=np.arange(5) * 0.13, instruction="reach",
    )
    with DatasetWriter(tmp_path / "ours", contract) as w:
        w.add_episode(ep)
    with pytest.raises(DatasetError, match="not frame_index / fps"):
        export_lerobot(tmp_path / "ours", tmp_path / "le", ExportOptions(**FAST))
    assert not (tmp_path / "le").exists() and not list(tmp_path.glob(".le.*"))  # nothing left behind


# -- import and the round trip -----------------------------------------------------------------


def test_round_trip_video_same_arrays_images_within_codec_loss(exported, ours):
    back = LeRobotDemoDataset(exported)
    assert back.contract == ours.contract and len(back) == len(ours) and back.num_steps == ours.num_steps
    for i in range(len(ours)):
        _assert_same(ours.episode(i), back.episode(i), exact_images=False)
    assert [e["instruction"] for e in back.episode_index] == [e["instruction"] for e in ours.episode_index]
    back.close()


def test_round_trip_embedded_images_is_exact(exported_images, ours, tmp_path):
    assert check_dataset(exported_images) == []
    info = json.loads((exported_images / "meta" / "info.json").read_text())
    assert info["features"]["observation.images.front"]["dtype"] == "image" and info["video_path"] is None
    schema = pq.read_schema(exported_images / "data" / "chunk-000" / "file-000.parquet")
    assert schema.field("observation.images.front").type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    again = import_lerobot(exported_images, tmp_path / "ours_again")  # ours -> LeRobot -> ours
    assert isinstance(again, DemoDataset) and again.contract == ours.contract
    assert again.meta["num_steps"] == ours.meta["num_steps"]
    assert [(e["length"], e["instruction"], e["task"]) for e in again.episode_index] == [
        (e["length"], e["instruction"], e["task"]) for e in ours.episode_index
    ]
    for a, b in zip(ours, again):
        _assert_same(a, b, exact_images=True)


def test_many_files_round_trip(ours, tmp_path):
    """Tiny file-size limits: episodes spread over parquet and mp4 files (rollover + seeking)."""
    out = tmp_path / "le"
    export_lerobot(ours, out, ExportOptions(data_file_size_mb=1e-4, video_file_size_mb=1e-4, chunks_size=2, **FAST))
    assert check_dataset(out) == []
    assert sorted(p.relative_to(out).as_posix() for p in (out / "data").glob("*/*.parquet")) == [
        "data/chunk-000/file-000.parquet", "data/chunk-000/file-001.parquet",
        "data/chunk-001/file-000.parquet", "data/chunk-001/file-001.parquet",
    ]
    # an mp4 rolls over once its muxed bytes pass the limit; the encoder's look-ahead delays them
    assert len(list((out / "videos" / "observation.images.wrist").glob("*/*.mp4"))) >= 2
    back = LeRobotDemoDataset(out)
    for i in (3, 0, 2):  # out of order: the reader seeks
        _assert_same(ours.episode(i), back.episode(i), exact_images=False)


def test_mapping_renames_picks_joints_and_resizes(exported):
    mapping = LeRobotMapping.from_pairs(
        {"joint.elbow": "joint_2", "joint.shoulder": "joint_1", "camera.main": "front", "image_size": "16x24"}
    )
    data = LeRobotDemoDataset(exported, mapping)
    assert data.contract.joint_names == ("elbow", "shoulder") and data.contract.camera_names == ("main",)
    ep = data.episode(1)
    full = LeRobotDemoDataset(exported).episode(1)
    assert np.array_equal(ep.joint_position, full.joint_position[:, [1, 0]])
    assert np.array_equal(ep.action, full.action[:, [1, 0]])
    assert ep.images["main"].shape == (12, 16, 24, 3)
    no_target = LeRobotDemoDataset(exported, LeRobotMapping(target_key="", reasoning_key=""))
    ep = no_target.episode(0)
    assert ep.target_position is None and ep.reasoning == []
    assert "joints" in data.describe()


# -- refusals ----------------------------------------------------------------------------------


def test_refuses_unsupported_codebase_version(exported, tmp_path):
    old = _copy(exported, tmp_path / "old")
    _edit_info(old, lambda info: info.update(codebase_version="v2.1"))
    with pytest.raises(LeRobotVersionError, match="codebase_version 'v2.1' is not supported.*convert_dataset_v21_to_v30"):
        LeRobotDemoDataset(old)
    with pytest.raises(LeRobotVersionError):
        check_dataset(old)
    assert issubclass(LeRobotVersionError, BadInputError)


def test_refuses_actions_of_other_joints_or_space(exported, tmp_path):
    renamed = _copy(exported, tmp_path / "renamed")
    _edit_info(renamed, lambda info: info["features"]["action"].update(names=["x", "y", "gripper"]))
    with pytest.raises(LeRobotActionError, match="not joint-position targets of the observed joints.*names"):
        LeRobotDemoDataset(renamed)


def test_refuses_delta_actions_unless_told(tmp_path, ours):
    contract = ours.contract
    with DatasetWriter(tmp_path / "deltas", contract) as w:
        for ep in ours:
            deltas = np.diff(ep.joint_position, axis=0, append=ep.joint_position[-1:])  # velocities * dt
            w.add_episode(Episode(ep.images, ep.joint_position, deltas.astype(np.float32), ep.timestamp, ep.instruction))
    export_lerobot(tmp_path / "deltas", tmp_path / "le", ExportOptions(video=False, **FAST))
    with pytest.raises(LeRobotActionError, match="deltas, velocities"):
        LeRobotDemoDataset(tmp_path / "le")
    assert len(LeRobotDemoDataset(tmp_path / "le", LeRobotMapping(check_actions=False))) == 4


def test_refuses_missing_cameras(exported, tmp_path):
    with pytest.raises(LeRobotMappingError, match=r"cameras \{'top': 'observation.images.top'\} are missing"):
        LeRobotDemoDataset(exported, LeRobotMapping(cameras={"top": "top"}))
    blind = _copy(exported, tmp_path / "blind")
    _edit_info(blind, lambda info: [info["features"].pop(f"observation.images.{c}") for c in ("front", "wrist")])
    with pytest.raises(LeRobotMappingError, match="no image or video features"):
        LeRobotDemoDataset(blind)
    with pytest.raises(LeRobotMappingError, match="no feature 'observation.joints'"):
        LeRobotDemoDataset(exported, LeRobotMapping(state_key="observation.joints"))


def test_refuses_size_mismatches(exported, tmp_path):
    longer = _copy(exported, tmp_path / "longer")
    _edit_info(longer, lambda info: info["features"]["action"].update(shape=[4], names=None))
    with pytest.raises(LeRobotMappingError, match="4 values per frame.*3: sizes do not match"):
        LeRobotDemoDataset(longer)
    frames = _copy(exported, tmp_path / "frames")
    _edit_info(frames, lambda info: info["features"]["observation.images.front"].update(shape=[48, 48, 3]))
    data = LeRobotDemoDataset(frames)
    with pytest.raises(LeRobotMappingError, match="frames are 32x32, info.json says 48x48: sizes do not match"):
        data.episode(0)
    with pytest.raises(LeRobotMappingError, match=r"joints \{'a': 'nope'\} are not names"):
        LeRobotDemoDataset(exported, LeRobotMapping(joints={"a": "nope"}))


def test_mapping_validation_names_the_bad_value():
    with pytest.raises(LeRobotMappingError, match="unknown mapping key 'camera'"):
        LeRobotMapping.from_pairs({"camera": "front"})
    with pytest.raises(LeRobotMappingError, match="image_size takes HEIGHTxWIDTH, got '32'"):
        LeRobotMapping.from_pairs({"image_size": "32"})
    with pytest.raises(LeRobotMappingError, match="image_height must be 0"):
        LeRobotMapping(image_height=4, image_width=4)
    with pytest.raises(LeRobotMappingError, match="maps several names"):
        LeRobotMapping(cameras={"a": "front", "b": "front"})
    with pytest.raises(LeRobotFormatError, match="codec must be one of"):
        ExportOptions(codec="mpeg4")


def test_not_a_lerobot_dataset(tmp_path):
    with pytest.raises(LeRobotFormatError, match="meta/info.json is missing"):
        LeRobotDemoDataset(tmp_path)


def test_image_stats_are_exact_per_channel():
    from moe_vla_ros.data.lerobot.stats import image_stats

    frames = np.random.default_rng(0).integers(0, 256, (30, 17, 9, 3), dtype=np.uint8)
    stats, pixels = image_stats(frames), frames.reshape(-1, 3) / 255.0
    for key, want in (("mean", pixels.mean(0)), ("std", pixels.std(0)), ("min", pixels.min(0)), ("max", pixels.max(0)),
                      ("q01", np.quantile(pixels, 0.01, axis=0)), ("q50", np.quantile(pixels, 0.5, axis=0)),
                      ("q99", np.quantile(pixels, 0.99, axis=0))):
        assert stats[key].shape == (3, 1, 1)
        np.testing.assert_allclose(stats[key].reshape(3), want, atol=1e-12, err_msg=key)
    assert stats["count"].tolist() == [30]


def test_reads_variants_other_writers_produce(exported, ours, tmp_path):
    """Variable-length list columns (older `datasets`), names as {"motors": [...]} (v2-era ports),
    h264 with B-frames (ffmpeg's default), and data split over files in another order."""
    variant = _copy(exported, tmp_path / "variant")
    path = variant / "data" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(path)
    for key in ("observation.state", "action"):
        i = table.column_names.index(key)
        table = table.set_column(i, key, table[key].cast(pa.list_(pa.float32())))
    pq.write_table(table.slice(24), variant / "data" / "chunk-000" / "file-000.parquet")
    pq.write_table(table.slice(0, 24), variant / "data" / "chunk-000" / "file-001.parquet")

    def names_as_motors(info):
        for key in ("observation.state", "action"):
            info["features"][key]["names"] = {"motors": info["features"][key]["names"]}

    _edit_info(variant, names_as_motors)
    back = LeRobotDemoDataset(variant)
    assert back.contract.joint_names == ours.contract.joint_names
    _assert_same(ours.episode(2), back.episode(2), exact_images=False)

    h264 = tmp_path / "h264"
    export_lerobot(ours, h264, ExportOptions(codec="h264", crf=23, gop=12, **FAST))
    back = LeRobotDemoDataset(h264)
    for i in (1, 3):
        _assert_same(ours.episode(i), back.episode(i), exact_images=False)


def test_reads_channel_first_images_and_unnamed_dimensions(exported, ours, tmp_path):
    """Ports of older datasets: images [3, h, w] with names ["c", "h", "w"], one label for a whole
    vector (["dim"]), duplicate names: joints are then joint_0, joint_1, ..."""
    port = _copy(exported, tmp_path / "port")

    def as_port(info):
        info["features"]["observation.images.front"].update(shape=[3, 32, 32], names=["c", "h", "w"])
        info["features"]["observation.state"]["names"] = ["dim"]
        info["features"]["action"]["names"] = ["a", "a", "b"]

    _edit_info(port, as_port)
    back = LeRobotDemoDataset(port)
    assert back.contract.joint_names == ("joint_0", "joint_1", "joint_2")
    assert (back.contract.image_height, back.contract.image_width) == (32, 32)
    _assert_same(ours.episode(0), back.episode(0), exact_images=False)
    mapped = LeRobotDemoDataset(port, LeRobotMapping.from_pairs({"joint.gripper": "joint_2", "camera.front": "front"}))
    assert mapped.contract.joint_names == ("gripper",)


def test_degrees_are_refused_unless_scaled(ours, tmp_path):
    with DatasetWriter(tmp_path / "deg", ours.contract) as w:
        for ep in ours:
            w.add_episode(dataclasses.replace(ep, joint_position=np.degrees(ep.joint_position).astype(np.float32),
                                              action=np.degrees(ep.action).astype(np.float32)))
    export_lerobot(tmp_path / "deg", tmp_path / "le", ExportOptions(video=False, **FAST))
    with pytest.raises(LeRobotActionError, match="not SI units.*degrees=true"):
        LeRobotDemoDataset(tmp_path / "le")
    back = LeRobotDemoDataset(tmp_path / "le", LeRobotMapping.from_pairs({"degrees": "true"}))
    np.testing.assert_allclose(back.episode(1).joint_position, ours.episode(1).joint_position, atol=1e-5)
    assert LeRobotMapping.from_pairs({"scale": "0.5"}).position_scale == 0.5
    with pytest.raises(LeRobotMappingError, match="position_scale must be a finite non-zero"):
        LeRobotMapping(position_scale=0.0)


# -- video pixel format (yuv420p, LeRobot's default, or yuv444p) ------------------------------


def _small_cubes(ours, tmp_path):
    """`ours` with every frame redrawn as 3x3 squares of saturated colours on a grey table: the
    scene's cubes in miniature (4:2:0 keeps one colour sample per 2x2 pixels, so it smears them)."""
    rng = np.random.default_rng(3)
    colours = np.array([[220, 30, 30], [30, 200, 40], [40, 60, 230], [230, 210, 30]], np.uint8)
    masks = {}
    with DatasetWriter(tmp_path / "cubes", ours.contract) as w:
        for e, ep in enumerate(ours):
            images = {}
            for cam, frames in ep.images.items():
                drawn = np.full_like(frames, 128)
                mask = np.zeros(frames.shape[:3], bool)
                for t in range(len(frames)):
                    for k in range(6):
                        y, x = rng.integers(1, frames.shape[1] - 4), rng.integers(1, frames.shape[2] - 4)
                        drawn[t, y:y + 3, x:x + 3] = colours[k % len(colours)]
                        mask[t, y:y + 3, x:x + 3] = True
                images[cam], masks[e, cam] = drawn, mask
            w.add_episode(dataclasses.replace(ep, images=images))
    return DemoDataset(tmp_path / "cubes"), masks


def test_pix_fmt_round_trips_and_yuv444p_keeps_small_colours(ours, tmp_path):
    """The pixel format is written as asked, recorded as info.json video.pix_fmt (as LeRobot does)
    and read back; on small coloured squares yuv444p's error is a fraction of yuv420p's (same codec,
    crf and frames: only the chroma resolution differs)."""
    cubes, masks = _small_cubes(ours, tmp_path)
    error = {}
    for pix_fmt in ("yuv420p", "yuv444p"):
        out = tmp_path / pix_fmt
        export_lerobot(cubes, out, ExportOptions(codec="h264", crf=10, pix_fmt=pix_fmt, **FAST))
        assert check_dataset(out) == []
        info = json.loads((out / "meta" / "info.json").read_text())
        for cam in ("front", "wrist"):
            assert info["features"][f"observation.images.{cam}"]["info"]["video.pix_fmt"] == pix_fmt
        back = LeRobotDemoDataset(out)
        on_cubes = []
        for e in range(len(cubes)):
            a, b = cubes.episode(e), back.episode(e)
            _assert_same(a, b, exact_images=False)
            for cam in a.images:
                diff = np.abs(a.images[cam].astype(int) - b.images[cam].astype(int))  # [T, H, W, 3]
                on_cubes.append(diff[masks[e, cam]])  # [N, 3] pixels of the squares
        back.close()
        error[pix_fmt] = float(np.concatenate(on_cubes).mean())
    # measured (x264, crf 10): yuv420p ~30 grey levels on the squares, yuv444p ~2.4
    assert error["yuv420p"] > 15.0, error  # 4:2:0 does smear 3x3 colour patches
    assert error["yuv444p"] < 6.0 and error["yuv444p"] < 0.25 * error["yuv420p"], error


def test_pix_fmt_is_validated():
    with pytest.raises(LeRobotFormatError, match=r"pix_fmt must be one of \['yuv420p', 'yuv444p'\], got 'rgb24'"):
        ExportOptions(codec="h264", pix_fmt="rgb24")
    with pytest.raises(LeRobotFormatError, match="video codec 'libsvtav1' cannot write pix_fmt 'yuv444p'.*use 'h264' or 'hevc'"):
        ExportOptions(pix_fmt="yuv444p")
    assert ExportOptions().pix_fmt == "yuv420p"  # LeRobot's default
    assert ExportOptions(codec="hevc", pix_fmt="yuv444p").pix_fmt == "yuv444p"
    assert ExportOptions(video=False, pix_fmt="yuv444p").pix_fmt == "yuv444p"  # PNG images: no video encoder
    with pytest.raises(LeRobotFormatError, match="pix_fmt must be one of"):
        ExportOptions(video=False, pix_fmt="yuv422p")


# -- SVT-AV1 and real-time scheduling ---------------------------------------------------------


def _realtime_threads() -> list[int]:
    import os

    realtime = (os.SCHED_FIFO, os.SCHED_RR)
    out = []
    for tid in os.listdir("/proc/self/task"):
        try:
            if os.sched_getscheduler(int(tid)) in realtime:
                out.append(int(tid))
        except OSError:
            pass
    return out


@pytest.mark.skipif(not hasattr(__import__("os"), "sched_getscheduler"), reason="Linux scheduling API")
def test_svt_av1_export_leaves_no_real_time_threads(ours, tmp_path):
    """SVT-AV1 switches the thread that opens it to SCHED_FIFO 99 where it may (root; e.g. CI
    containers) and its workers inherit it: without the writer undoing it, the test process (and
    every thread and child it starts later) would run real-time and starve the machine."""
    if _realtime_threads():
        pytest.skip("this process already has real-time threads")
    export_lerobot(ours, tmp_path / "le", ExportOptions(**FAST))
    LeRobotDemoDataset(tmp_path / "le").episode(1)
    assert _realtime_threads() == []


def test_undo_realtime_restores_the_callers_policy():
    import os

    from moe_vla_ros.data.lerobot.video import _scheduling, undo_realtime

    if not hasattr(os, "sched_setscheduler"):
        pytest.skip("Linux scheduling API")
    saved = _scheduling()
    if saved[0] in (os.SCHED_FIFO, os.SCHED_RR):
        pytest.skip("this process already runs real-time")
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))  # as SVT-AV1 does (with 99)
    except PermissionError:
        pytest.skip("no permission to switch to real-time (not root, no CAP_SYS_NICE)")
    try:
        assert undo_realtime(saved) >= 1
        assert _scheduling() == saved and _realtime_threads() == []
    finally:
        os.sched_setscheduler(0, saved[0], os.sched_param(saved[1]))
    assert undo_realtime(None) == 0  # no scheduling API: nothing to do
