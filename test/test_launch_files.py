"""Launch files reference only executables, parameters and files that exist.

The `launch` package is not installable here, so the files are checked statically (AST): every
Node/LifecycleNode executable is a declared console script, every share path they build
(PathJoinSubstitution([share, ...])) exists in the repository, every parameter name they set is
declared by that node, and every node parameter in config/*.yaml is a declared parameter.
"""

import ast
from pathlib import Path

import pytest
import yaml

from moe_vla_ros.ros.params import flatten_yaml_params, iter_params
from moe_vla_ros.ros.policy_node_config import PolicyNodeConfig

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))
BUILTIN_PARAMS = {"use_sim_time"}


def _node_params() -> dict[str, set[str]]:
    params = {"policy_node": {name for name, _, _ in iter_params(PolicyNodeConfig)}}
    try:
        from moe_vla_ros.ros.sim_node_config import SimNodeConfig

        params["sim_node"] = {name for name, _, _ in iter_params(SimNodeConfig)}
    except ImportError:
        pass
    return {k: v | BUILTIN_PARAMS for k, v in params.items()}


def _console_scripts() -> set[str]:
    source = (REPO / "setup.py").read_text()
    start = source.index("CONSOLE_SCRIPTS = [")
    namespace: dict = {}
    exec(source[start : source.index("]", start) + 1], namespace)
    return {spec.split("=")[0].strip() for spec in namespace["CONSOLE_SCRIPTS"]}


def _calls(tree, names):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in names:
            yield node


def _kw(call, name):
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_there_are_launch_files_for_robot_sim_and_bag_replay():
    names = {p.name for p in LAUNCH_FILES}
    assert {"policy.launch.py", "robot.launch.py", "sim.launch.py", "bag_replay.launch.py"} <= names


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_references_exist(path):
    tree = ast.parse(path.read_text())
    scripts, node_params = _console_scripts(), _node_params()
    for call in _calls(tree, {"Node", "LifecycleNode"}):
        exe = _kw(call, "executable")
        assert isinstance(exe, ast.Constant), f"{path.name}: executable must be a literal"
        assert exe.value in scripts, f"{path.name}: executable {exe.value!r} is not a console script"
        assert _kw(call, "package").value == "moe_vla_ros"
        params = _kw(call, "parameters")
        for item in getattr(params, "elts", []):
            if isinstance(item, ast.Dict):
                for key in item.keys:
                    assert key.value in node_params.get(exe.value, {key.value}), (
                        f"{path.name}: {exe.value} has no parameter {key.value!r}")
    for call in _calls(tree, {"PathJoinSubstitution"}):
        parts = call.args[0].elts
        literal = [p.value for p in parts[1:] if isinstance(p, ast.Constant)]
        if len(literal) == len(parts) - 1:  # [share, "config", "x.yaml"]: fully literal below share
            assert (REPO.joinpath(*literal)).exists(), f"{path.name}: {'/'.join(literal)} does not exist"


@pytest.mark.parametrize("path", sorted((REPO / "config").rglob("*.yaml")), ids=lambda p: p.name)
def test_config_files_set_only_declared_parameters(path):
    doc = yaml.safe_load(path.read_text())
    node_params = _node_params()
    for node, block in doc.items():
        assert node in node_params, f"{path.name}: unknown node {node!r}"
        unknown = set(flatten_yaml_params(block["ros__parameters"])) - node_params[node]
        assert not unknown, f"{path.name}: {node} has no parameters {sorted(unknown)}"
