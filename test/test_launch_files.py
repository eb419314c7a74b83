"""Launch files reference only executables, parameters and files that exist (static, AST checks;
test/launch/ runs them under the real launch stack).

Every Node/LifecycleNode executable is a declared console script, every share path they build
(PathJoinSubstitution([share, ...])) exists in the repository, every parameter name they set is
declared by that node, every launch file takes a `namespace` argument, every node parameter in
config/*.yaml is a declared parameter under a key that matches the node in any namespace
(`/**/<node>`), and every topic name in the config files and topic defaults is relative (resolved in
the node's namespace) except the global ones.
"""

import ast
from pathlib import Path

import pytest
import yaml

from moe_vla_ros.param_files import flatten_parameters
from moe_vla_ros.spec.described import iter_params
from moe_vla_ros.spec.policy_node import PolicyNodeConfig

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))
BUILTIN_PARAMS = {"use_sim_time"}
GLOBAL_TOPICS = {"/clock", "/diagnostics", "/tf", "/tf_static"}


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


def _parameter_names(tree, params) -> list[str]:
    """Literal parameter names of a `parameters=[...]` list: dict literals, and dicts held in a
    variable (its literal keys and `var["name"] = ...` assignments)."""
    names = []
    for item in getattr(params, "elts", []):
        if isinstance(item, ast.Dict):
            names += [k.value for k in item.keys if isinstance(k, ast.Constant)]
        elif isinstance(item, ast.Name):
            for node in ast.walk(tree):
                if not isinstance(node, ast.Assign):
                    continue
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id == item.id and isinstance(node.value, ast.Dict):
                        names += [k.value for k in node.value.keys if isinstance(k, ast.Constant)]
                    if (isinstance(target, ast.Subscript) and getattr(target.value, "id", None) == item.id
                            and isinstance(target.slice, ast.Constant)):
                        names.append(target.slice.value)
    return names


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
        for key in _parameter_names(tree, params):
            assert key in node_params.get(exe.value, {key}), f"{path.name}: {exe.value} has no parameter {key!r}"
    for call in _calls(tree, {"PathJoinSubstitution"}):
        parts = call.args[0].elts
        literal = [p.value for p in parts[1:] if isinstance(p, ast.Constant)]
        if len(literal) == len(parts) - 1:  # [share, "config", "x.yaml"]: fully literal below share
            assert (REPO.joinpath(*literal)).exists(), f"{path.name}: {'/'.join(literal)} does not exist"


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_takes_a_namespace(path):
    tree = ast.parse(path.read_text())
    declared = {c.args[0].value for c in _calls(tree, {"DeclareLaunchArgument"}) if isinstance(c.args[0], ast.Constant)}
    assert "namespace" in declared, f"{path.name} has no namespace argument"


def _is_topic(name: str) -> bool:
    return name.startswith("topics.") and name != "topics.camera_transport"


NODE_CONFIG_FILES = sorted([*(REPO / "config").glob("*.yaml"), *(REPO / "config" / "robots").glob("*.yaml")])


@pytest.mark.parametrize("path", NODE_CONFIG_FILES, ids=lambda p: p.name)
def test_config_files_set_only_declared_parameters(path):
    doc = yaml.safe_load(path.read_text())
    node_params = _node_params()
    for key, block in doc.items():
        assert key.startswith("/**/"), f"{path.name}: {key!r} matches the node in the root namespace only: use /**/<node>"
        node = key[len("/**/"):]
        assert node in node_params, f"{path.name}: unknown node {node!r}"
        flat = flatten_parameters(block["ros__parameters"])
        unknown = set(flat) - node_params[node]
        assert not unknown, f"{path.name}: {node} has no parameters {sorted(unknown)}"
        for name, value in flat.items():
            if _is_topic(name):
                for topic in value if isinstance(value, list) else [value]:
                    assert not topic.startswith("/") or topic in GLOBAL_TOPICS, (
                        f"{path.name}: {name} {topic!r} is absolute: namespaced robots would share it")


def test_topic_defaults_are_relative():
    from moe_vla_ros.ros.sim_node_config import SimNodeConfig
    from moe_vla_ros.spec.described import default_value

    for cls in (PolicyNodeConfig, SimNodeConfig):
        for name, f, _ in iter_params(cls):
            if _is_topic(name):
                value = default_value(f)
                for topic in value if isinstance(value, list) else [value]:
                    assert not topic.startswith("/"), f"{cls.__name__} {name} default {topic!r} is absolute"
