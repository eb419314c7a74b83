"""Tests of `moe_vla_to_lerobot` (moe_vla_ros/bags/to_lerobot.py): our dataset and a bag -> LeRobot."""

import json

import numpy as np
import pytest

from moe_vla_ros.bags.synthetic import SyntheticDemo, write_demo_bag
from moe_vla_ros.bags.to_lerobot import main
from moe_vla_ros.data.lerobot.reader import LeRobotDemoDataset
from moe_vla_ros.data.lerobot.schema import check_dataset
from moe_vla_ros.model.config import tiny_contract
from moe_vla_ros.training.synthetic import generate_synthetic_dataset


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    root = tmp_path_factory.mktemp("ours") / "data"
    generate_synthetic_dataset(root, tiny_contract().sensors, 2, 8, seed=1)
    return root


def test_dataset_to_lerobot(ours, tmp_path, capsys):
    out = tmp_path / "le"
    assert main([str(ours), "-o", str(out), "--no-progress", "--vcodec", "h264", "--crf", "18", "--robot-type", "sim_arm"]) == 0
    assert "wrote" in capsys.readouterr().out and check_dataset(out) == []
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["robot_type"] == "sim_arm" and info["features"]["observation.images.front"]["info"]["video.codec"] == "h264"
    assert main([str(ours), "-o", str(out), "--no-progress"]) == 2
    assert "moe_vla_to_lerobot: error: " in (err := capsys.readouterr().err) and "refusing to overwrite" in err
    assert main([str(tmp_path), "-o", str(tmp_path / "x")]) == 2
    assert "neither a dataset folder" in capsys.readouterr().err
    assert main([str(ours), "-o", str(tmp_path / "y"), "--crf", "99"]) == 2
    assert "crf must be an integer in [0, 63]" in capsys.readouterr().err


def test_pix_fmt_option(ours, tmp_path, capsys):
    """--pix-fmt reaches the mp4 streams and info.json (video.pix_fmt), the copy reads back; the
    default stays LeRobot's yuv420p; a format the codec cannot write or an unknown one is bad input."""
    out = tmp_path / "le444"
    assert main([str(ours), "-o", str(out), "--no-progress", "--vcodec", "h264", "--pix-fmt", "yuv444p"]) == 0
    info = json.loads((out / "meta" / "info.json").read_text())
    for cam in ("front", "wrist"):
        assert info["features"][f"observation.images.{cam}"]["info"]["video.pix_fmt"] == "yuv444p"
    back = LeRobotDemoDataset(out).episode(1)
    assert back.images["front"].shape[1:] == (32, 32, 3)
    assert main([str(ours), "-o", str(tmp_path / "le420"), "--no-progress", "--vcodec", "h264"]) == 0
    info = json.loads((tmp_path / "le420" / "meta" / "info.json").read_text())
    assert info["features"]["observation.images.front"]["info"]["video.pix_fmt"] == "yuv420p"
    capsys.readouterr()
    assert main([str(ours), "-o", str(tmp_path / "x"), "--no-progress", "--pix-fmt", "yuv444p"]) == 2
    err = capsys.readouterr().err
    assert "moe_vla_to_lerobot: error: " in err and "video codec 'libsvtav1' cannot write pix_fmt 'yuv444p'" in err
    assert "use 'h264' or 'hevc'" in err and not (tmp_path / "x").exists()
    with pytest.raises(SystemExit) as exit_info:  # argparse's own exit, 2
        main([str(ours), "-o", str(tmp_path / "y"), "--vcodec", "h264", "--pix-fmt", "rgb24"])
    assert exit_info.value.code == 2 and "argument --pix-fmt: invalid choice: 'rgb24'" in capsys.readouterr().err


def test_images_flag_embeds_pngs(ours, tmp_path):
    assert main([str(ours), "-o", str(tmp_path / "le"), "--images", "--no-progress"]) == 0
    info = json.loads((tmp_path / "le" / "meta" / "info.json").read_text())
    assert info["features"]["observation.images.wrist"]["dtype"] == "image" and not (tmp_path / "le" / "videos").exists()


def test_bag_to_lerobot(tmp_path, capsys):
    demo = SyntheticDemo()
    bag = tmp_path / "bag"
    write_demo_bag(bag, demo, "mcap")
    contract_file = tmp_path / "contract.json"
    contract_file.write_text(json.dumps({"sensors": demo.contract().to_dict()}))
    assert main([str(bag), "-o", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "--contract is needed" in capsys.readouterr().err
    args = [str(bag), "-o", str(tmp_path / "le"), "--contract", str(contract_file), "--no-progress", "--task", "pick",
            "--camera", "wrist=/camera/wrist/image_raw/compressed"]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out and check_dataset(tmp_path / "le") == []
    data = LeRobotDemoDataset(tmp_path / "le")  # commanded targets pass the action check
    assert len(data) == 2 and data.contract.joint_names == demo.contract().joint_names
    ep = data.episode(0)
    assert ep.task == "pick" and ep.instruction == demo.instructions[0][1] and np.isfinite(ep.action).all()
    assert not list(tmp_path.glob("moe_vla_bag_*"))
