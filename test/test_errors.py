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
               if not any(b in names for b in bases)]  # fmt: skip
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
