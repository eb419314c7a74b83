"""The error hierarchy: every package error is a MoeVlaError of one kind, with its exit code."""

import ast
from pathlib import Path

import pytest

from moe_vla_ros import errors
from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.runtime.manifest import ModelLoadError

PACKAGE = Path(__file__).resolve().parents[1] / "moe_vla_ros"


def _exception_classes():
    """(file, class name, base names) of every class in the package that names an exception base."""
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [b.id if isinstance(b, ast.Name) else ast.unparse(b) for b in node.bases]
                if any(b.endswith(("Error", "Exception")) for b in bases):
                    yield path.relative_to(PACKAGE.parent), node.name, bases


def test_every_package_exception_derives_from_the_package_base():
    names = {name for _, name, _ in _exception_classes()} | {"MoeVlaError", "BadInputError", "FailedError"}
    outside = [f"{path}: {name}({', '.join(bases)})" for path, name, bases in _exception_classes()
               if path.name != "errors.py" or path.parent.name != "moe_vla_ros"
               if not any(b in names for b in bases)]
    assert not outside, "exceptions outside moe_vla_ros.errors' hierarchy:\n" + "\n".join(outside)


def test_kinds_keep_their_builtin_bases_and_exit_codes():
    assert issubclass(errors.BadInputError, ValueError) and errors.BadInputError.exit_code == 2
    assert issubclass(errors.FailedError, RuntimeError) and errors.FailedError.exit_code == 1
    assert issubclass(BagError, RuntimeError) and BagError.exit_code == 2
    assert issubclass(ModelLoadError, RuntimeError) and issubclass(ModelLoadError, errors.MoeVlaError)


@pytest.mark.parametrize(
    "raised, code, line",
    [
        (errors.BadInputError("bad value"), 2, "tool: error: bad value"),
        (errors.FailedError("it broke\n  badly"), 1, "tool: error: it broke badly"),
        (FileNotFoundError("no such file: x"), 2, "tool: error: no such file: x"),
        (KeyboardInterrupt(), 130, "tool: interrupted"),
    ],
)
def test_run_tool_maps_errors_to_exit_codes_and_one_stderr_line(raised, code, line, capsys):
    from moe_vla_ros.cli import run_tool

    def body():
        raise raised

    assert run_tool("tool", body) == code
    assert capsys.readouterr().err.strip() == line


def test_run_tool_lets_bugs_keep_their_traceback():
    from moe_vla_ros.cli import run_tool

    with pytest.raises(ZeroDivisionError):
        run_tool("tool", lambda: 1 / 0)
    assert run_tool("tool", lambda: None) == 0 and run_tool("tool", lambda: 3) == 3


def test_bad_input_turns_validation_errors_into_bad_input_and_keeps_package_errors():
    from moe_vla_ros.cli import bad_input

    with pytest.raises(errors.BadInputError, match="episodes must be >= 1"):
        with bad_input():
            raise ValueError("episodes must be >= 1,\n got 0")
    with pytest.raises(errors.FailedError):  # a package error keeps its kind
        with bad_input():
            raise errors.FailedError("broke")
    with pytest.raises(OSError):  # only the kinds asked for
        with bad_input():
            raise OSError("disk")
    with pytest.raises(errors.BadInputError):
        with bad_input((ValueError, OSError)):
            raise OSError("cannot read --config")


def test_split_ros_args():
    from moe_vla_ros.cli import split_ros_args

    assert split_ros_args(["--out", "x", "--ros-args", "-p", "a:=1"]) == (["--out", "x"], ["--ros-args", "-p", "a:=1"])
    assert split_ros_args(["bag"]) == (["bag"], [])


def test_shared_arguments_have_the_convention_names():
    from moe_vla_ros.cli import add_bag_argument, add_output_argument, add_progress_argument, tool_parser

    parser = tool_parser("tool", "What it does.\n\nDetails.")
    add_bag_argument(parser, "input bag")
    add_output_argument(parser, "where results go", required=False)
    add_progress_argument(parser)
    args = parser.parse_args(["b", "-o", "out", "--no-progress"])
    assert (str(args.bag), str(args.out), args.progress) == ("b", "out", False)
    assert parser.parse_args(["b"]).progress is True and parser.parse_args(["b"]).out is None
    assert parser.format_help().startswith("usage: tool ") and "What it does." in parser.format_help()


def test_defaults_help_formatter_shows_only_defaults_that_say_something():
    import argparse

    from moe_vla_ros.cli import DefaultsHelpFormatter, add_output_argument, add_progress_argument, tool_parser

    parser = tool_parser("tool", None, formatter_class=DefaultsHelpFormatter)
    add_output_argument(parser, "where results go")
    add_progress_argument(parser)
    parser.add_argument("--rate", type=float, default=2.0, help="rate")
    parser.add_argument("--topic", action="append", default=[], help="topics")
    text = " ".join(parser.format_help().split())
    assert "rate (default: 2.0)" in text and text.count("(default:") == 1
    assert isinstance(parser, argparse.ArgumentParser)
