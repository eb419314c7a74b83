"""The export command: arguments, exit codes, --force replacement."""

import pytest

from moe_vla_ros.export.cli import build_parser, config_from_args, main
from moe_vla_ros.runtime.manifest import read_manifest


def test_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0 and "--formulations" in capsys.readouterr().out


def test_arguments_map_to_config():
    args = build_parser().parse_args(["--checkpoint", "c", "--out", "o", "--formulations", "dense", "--opset", "19",
                                      "--int8", "--fp16", "--tolerance", "1e-3", "--int8-max-action-error", "0.2"])
    cfg = config_from_args(args)
    assert cfg.formulations == ("dense",) and cfg.opset == 19 and cfg.int8 and cfg.fp16
    assert cfg.tolerance == 1e-3 and cfg.int8_gate.max_action_error == 0.2


def test_bad_arguments_exit_2(tmp_path, capsys):
    assert main(["--checkpoint", str(tmp_path), "--out", str(tmp_path / "o"), "--formulations", "sparse,moe"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("moe_vla_export: error: ") and "'moe'" in err
    assert main(["--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "checkpoint folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # argparse's usage errors: exit 2 as well
        main(["--checkpoint", str(tmp_path)])
    assert info.value.code == 2 and "moe_vla_export: error: the following arguments are required: -o/--out" in capsys.readouterr().err


def test_occupied_output_without_force_is_bad_input(tmp_path, capsys):
    out = tmp_path / "model"
    out.mkdir()
    (out / "old.onnx").write_text("old")
    assert main(["--checkpoint", str(tmp_path), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err and (out / "old.onnx").exists()


def test_force_replaces_the_folder(demo_export, tmp_path, capsys):
    out = tmp_path / "model"
    out.mkdir()
    (out / "old.onnx").write_text("old")
    argv = ["--checkpoint", str(demo_export.checkpoint), "--out", str(out), "--formulations", "sparse", "--force",
            "--name", "cli"]
    assert main(argv) == 0
    assert "exported cli-" in capsys.readouterr().out
    assert not (out / "old.onnx").exists()
    assert read_manifest(out).formulations() == ("sparse",)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"], "no staging or old folder left"
