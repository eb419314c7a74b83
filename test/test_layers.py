"""The package's layer rules (DEVELOPERS.md), checked over the whole tree.

- rclpy, launch and ROS message packages are imported only in `moe_vla_ros/ros/`;
- torch is imported at module level only in the training side (model/, training/, export/), and
  importing any robot-side module never imports it (checked in a process where torch cannot load);
- every subpackage imports only the subpackages its row in ALLOWED names (dependencies flow one
  way, no cycles); the robot side reaches into model/ only for its torch-free tokenizer and
  greedy decoding, and for the torch backend lazily.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "moe_vla_ros"
ROS_ONLY = ("rclpy", "launch", "launch_ros", "builtin_interfaces", "rcl_interfaces", "rosgraph_msgs", "rosidl_runtime_py")
TORCH_SIDE = {"model", "training", "export"}

# subpackage (or top-level module) -> what it may import from the package
ALLOWED: dict[str, set[str]] = {
    "contract": set(), "paths": set(), "cli": set(), "param_files": set(),
    "data": {"contract"},
    "model": {"contract"},
    "runtime": {"contract", "model"},  # model: tokenizer constants + greedy decoding, torch backend (lazy)
    "control": {"contract", "param_files", "runtime"},
    "sim": {"contract", "control", "data"},
    "training": {"contract", "data", "model"},
    "export": {"contract", "model", "runtime"},
    "bags": {"cli", "contract", "control", "data", "param_files", "paths", "runtime", "sim"},
    "evaluation": {"contract", "control", "runtime", "sim"},
    "ros": {"bags", "cli", "contract", "control", "evaluation", "param_files", "paths", "runtime", "sim"},
}  # fmt: skip
RUNTIME_MODEL_MODULES = {"moe_vla_ros.model.tokenizer", "moe_vla_ros.model.decoding"}  # torch-free, top level


def _layer(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def _imports(path: Path):
    """(module, line, at module level) for every absolute import in `path`."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            yield name, node.lineno, id(node) in top


FILES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.stat().st_size)


def test_every_subpackage_has_a_row():
    assert {_layer(p) for p in FILES} - {"__init__"} <= set(ALLOWED)


def test_rclpy_and_ros_messages_only_in_the_ros_layer():
    bad = []
    for path in FILES:
        if _layer(path) == "ros":
            continue
        for name, line, _ in _imports(path):
            root = name.split(".")[0]
            if root in ROS_ONLY or root.endswith("_msgs") or root.endswith("_interfaces"):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}")
    assert not bad, "\n".join(bad)


def test_torch_at_module_level_only_on_the_training_side():
    bad = []
    for path in FILES:
        if _layer(path) in TORCH_SIDE:
            continue
        for name, line, top in _imports(path):
            if name.split(".")[0] == "torch" and top:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports torch at module level")
    assert not bad, "\n".join(bad)


def test_dependencies_flow_one_way():
    bad = []
    for path in FILES:
        layer = _layer(path)
        for name, line, top in _imports(path):
            parts = name.split(".")
            if parts[0] != "moe_vla_ros" or len(parts) < 2 or parts[1] == layer:
                continue
            where = f"{path.relative_to(PACKAGE.parent)}:{line}"
            if parts[1] not in ALLOWED[layer]:
                bad.append(f"{where} ({layer}) imports {name}")
            elif layer == "runtime" and parts[1] == "model" and top and name not in RUNTIME_MODEL_MODULES:
                bad.append(f"{where}: runtime may import only {sorted(RUNTIME_MODEL_MODULES)} of model/ at module level")
    assert not bad, "\n".join(bad)


def test_allowed_dependencies_have_no_cycle():
    seen, done = set(), set()

    def visit(layer: str, path: tuple[str, ...]) -> None:
        assert layer not in seen - done, f"dependency cycle: {' -> '.join(path + (layer,))}"
        if layer in done:
            return
        seen.add(layer)
        for dep in ALLOWED[layer]:
            visit(dep, path + (layer,))
        done.add(layer)

    for layer in ALLOWED:
        visit(layer, ())


ROBOT_SIDE = ("runtime", "control", "ros", "bags", "sim", "evaluation", "data")


@pytest.mark.parametrize("layer", ROBOT_SIDE)
def test_importing_the_robot_side_never_loads_torch(layer):
    modules = sorted(
        ".".join(("moe_vla_ros", *p.relative_to(PACKAGE).with_suffix("").parts))
        for p in FILES if _layer(p) == layer and p.name != "__init__.py"
    )  # fmt: skip
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # any import of torch raises ImportError\n"
        f"for name in {modules!r}:\n"
        "    __import__(name)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
