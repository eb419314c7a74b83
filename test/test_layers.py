"""The package's layer rules (DEVELOPERS.md), checked over the whole tree.

- rclpy, launch and ROS message packages are imported only in `moe_vla_ros/ros/`;
- torch is imported at module level only in the training side (model/, training/, export/), and
  importing any robot-side module never imports it (checked in a process where torch cannot load);
- no module outside the training side reaches torch at import, following the package's own
  module-level imports (a static import graph; the failure names the chain);
- every subpackage imports only the subpackages its row in ALLOWED names at module level, and in
  functions also those in LAZY_ALLOWED (dependencies flow one way: neither the table nor the
  package's module-level import graph has a cycle).
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
    "errors": set(), "contract": {"errors"}, "paths": set(), "cli": {"errors"}, "param_files": set(),
    "fanout": {"errors", "validation", "cli"},  # many bags, local or on Ray (ray lazily): below bags/ and evaluation/, which fan out
    # validation.py: the config-field and input-file checks (pure, imports only errors), usable
    # wherever errors is: every layer below validates its dataclasses with it
    "validation": {"errors"},
    "data": {"errors", "validation", "cli", "contract"},
    "model": {"errors", "validation", "contract", "runtime"},  # runtime: the tokenizer and greedy decoding (torch-free)
    "runtime": {"errors", "validation", "contract"},
    "control": {"errors", "validation", "contract", "param_files", "runtime"},
    "sim": {"errors", "validation", "cli", "contract", "control", "data"},
    "training": {"errors", "validation", "cli", "contract", "data", "model", "runtime"},
    "export": {"errors", "validation", "cli", "contract", "model", "runtime"},
    "serving": {"errors", "validation", "cli", "contract", "runtime"},  # Triton model repositories (no torch, no rclpy)
    "spec": {"errors", "validation", "contract", "control", "param_files", "paths", "runtime"},  # node specs: pure, no rclpy
    "bags": {"errors", "validation", "cli", "contract", "control", "data", "fanout", "sim"},  # bag I/O, validation, conversion: below evaluation
    "evaluation": {"errors", "validation", "bags", "cli", "contract", "control", "data", "fanout", "paths", "runtime", "sim", "spec"},
    "ros": {"errors", "validation", "bags", "cli", "contract", "control", "evaluation", "param_files", "paths", "runtime", "sim", "spec"},
}
# imports inside functions only (never at import), each with its reason; not counted by the cycle checks
LAZY_ALLOWED: dict[str, set[str]] = {
    "runtime": {"model"},  # the torch backend (runtime/torch_policy.py) loads MoEVLA when backend="torch" is chosen
}
TORCH_MODULES = ("torch", "torchvision", "safetensors.torch")  # importing any of these loads torch


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
        at_import = {(name, line) for name, line in _module_level_imports(path)}
        for name, line, _ in _imports(path):
            parts = name.split(".")
            if parts[0] != "moe_vla_ros" or len(parts) < 2 or parts[1] == layer:
                continue
            where = f"{path.relative_to(PACKAGE.parent)}:{line}"
            if (name, line) in at_import and parts[1] not in ALLOWED[layer]:
                lazy = " (allowed only inside functions)" if parts[1] in LAZY_ALLOWED.get(layer, ()) else ""
                bad.append(f"{where} ({layer}) imports {name} at import{lazy}")
            elif parts[1] not in ALLOWED[layer] | LAZY_ALLOWED.get(layer, set()):
                bad.append(f"{where} ({layer}) imports {name}")
    assert not bad, "\n".join(bad)


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of `graph` (node -> successors) as [a, b, ..., a], or None."""
    seen, done = set(), set()

    def visit(node: str, path: tuple[str, ...]) -> list[str] | None:
        if node in seen - done:
            return [*path[path.index(node):], node]
        if node in done:
            return None
        seen.add(node)
        for succ in sorted(graph.get(node, ())):
            cycle = visit(succ, path + (node,))
            if cycle:
                return cycle
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node, ())
        if cycle:
            return cycle
    return None


def test_allowed_dependencies_have_no_cycle():
    assert set().union(*ALLOWED.values()) | set(LAZY_ALLOWED) <= set(ALLOWED)
    cycle = _find_cycle(ALLOWED)
    assert cycle is None, f"dependency cycle in ALLOWED: {' -> '.join(cycle)}"


# -- the package's import graph: what importing a module runs ---------------------------------


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(path: Path):
    """(module, line) for every import that runs when `path` is imported: statements at module
    level, also inside if/try/with blocks and class bodies, not in functions or `if TYPE_CHECKING:`.
    `from pkg import name` yields `pkg.name` too when that is a module of the package."""

    def walk(body):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if isinstance(node, ast.Import):
                yield from ((alias.name, node.lineno) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield node.module, node.lineno
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in MODULES:
                        yield f"{node.module}.{alias.name}", node.lineno
            elif isinstance(node, ast.If):
                yield from walk(node.orelse if _is_type_checking(node.test) else node.body + node.orelse)
            elif isinstance(node, ast.Try):
                yield from walk(node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body])
            elif isinstance(node, (ast.With, ast.ClassDef)):
                yield from walk(node.body)

    yield from walk(ast.parse(path.read_text(), str(path)).body)


def _import_graph() -> dict[str, dict[str, int]]:
    """Package module -> {imported module: line}: package modules (with the packages above them,
    whose __init__ runs first) and, for other imports, the name as written."""
    graph: dict[str, dict[str, int]] = {}
    for module, path in MODULES.items():
        edges = graph[module] = {}
        for name, line in _module_level_imports(path):
            if name.split(".")[0] != "moe_vla_ros":
                edges.setdefault(name, line)
                continue
            parts = name.split(".")
            for i in range(len(parts), 0, -1):  # the module itself first, then the packages above it
                target = ".".join(parts[:i])
                if target in MODULES and not f"{module}.".startswith(f"{target}."):  # a package above runs first
                    edges.setdefault(target, line)
    return graph


def _loads_torch(name: str) -> bool:
    return any(name == t or name.startswith(f"{t}.") for t in TORCH_MODULES)


def test_robot_side_never_reaches_torch_at_import():
    graph = _import_graph()
    bad = []
    for start in sorted(m for m, p in MODULES.items() if _layer(p) not in TORCH_SIDE | {"__init__"}):
        parent: dict[str, str | None] = {start: None}
        queue = [start]
        while queue:
            module = queue.pop(0)
            hit = next((n for n in graph[module] if _loads_torch(n)), None)
            if hit:
                chain = [f"{hit} (line {graph[module][hit]})"]
                while module is not None:
                    above = parent[module]
                    chain.append(module if above is None else f"{module} (line {graph[above][module]})")
                    module = above
                bad.append(" -> ".join(reversed(chain)))
                break
            for n in graph[module]:
                if n in graph and n not in parent:
                    parent[n] = module
                    queue.append(n)
    assert not bad, "torch reached at import:\n" + "\n".join(bad)


def test_module_import_graph_has_no_cycle_between_subpackages():
    graph = _import_graph()
    layers: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    for module, edges in graph.items():
        a = _layer(MODULES[module])
        for target, line in edges.items():
            if target in MODULES and (b := _layer(MODULES[target])) != a and "__init__" not in (a, b):
                layers.setdefault(a, set()).add(b)
                where.setdefault((a, b), f"{module}:{line} imports {target}")
    cycle = _find_cycle(layers)
    assert cycle is None, "subpackages import each other at import: " + " -> ".join(cycle) + "\n" + "\n".join(
        where[(a, b)] for a, b in zip(cycle, cycle[1:])
    )


def test_module_import_graph_has_no_cycle():
    graph = {m: {n for n in edges if n in MODULES} for m, edges in _import_graph().items()}
    cycle = _find_cycle(graph)
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


ROBOT_SIDE = ("runtime", "control", "ros", "bags", "sim", "evaluation", "data")  # the subprocess check


@pytest.mark.parametrize("layer", ROBOT_SIDE)
def test_importing_the_robot_side_never_loads_torch(layer):
    modules = sorted(
        ".".join(("moe_vla_ros", *p.relative_to(PACKAGE).with_suffix("").parts))
        for p in FILES if _layer(p) == layer and p.name != "__init__.py"
    )
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # any import of torch raises ImportError\n"
        f"for name in {modules!r}:\n"
        "    __import__(name)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
