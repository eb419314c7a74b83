"""ROS 2 parameter files (YAML) without ROS: flatten a `ros__parameters` tree and pick the block(s)
that apply to a node, with the rules rcl uses for `--params-file`. Pure Python: the node specs
(spec/policy_node.py: the node's launchers and the evaluators), the sim node's config and the
controller checker (control/jtc_rules.py) read parameter files the same way."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml


def flatten_parameters(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"path": x}} -> {"model.path": x} (the layout of a ros__parameters block)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(flatten_parameters(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def nest_parameters(flat: Mapping[str, Any], tree: dict[str, Any] | None = None) -> dict[str, Any]:
    """{"model.path": x} -> {"model": {"path": x}} (the inverse of flatten_parameters), merged
    into `tree` when given (its other entries kept, the given names overwritten)."""
    tree = {} if tree is None else tree
    for name, value in flat.items():
        *parents, leaf = name.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def load_params_file(path, node_name: str, namespace: str = "/") -> dict[str, Any]:
    """Flat parameters of the node `namespace`/`node_name` (or a fully qualified `node_name`) from
    a ROS params YAML, matched as rcl/rclpy match `--params-file` keys: a key without a leading
    '/' gets one ("policy_node" is "/policy_node", root namespace only), "/**" matches any number
    of namespace levels ("/**/policy_node" is the node in any namespace, "/**" every node), "/*"
    one level; every matching block applies, in file order (a later one wins).

    OSError when the file cannot be read, yaml.YAMLError when it is not YAML, ValueError when it
    is not a params file (a mapping of node keys to {ros__parameters: {...}})."""
    with open(path) as fh:
        doc = yaml.safe_load(fh) or {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a ROS params file (expected node keys with ros__parameters)")
    if node_name.startswith("/"):
        fqn = node_name
    else:
        fqn = "/" + "/".join(p for p in (*namespace.strip("/").split("/"), node_name) if p)
    flat: dict[str, Any] = {}
    for key, block in doc.items():
        key = str(key) if str(key).startswith("/") else f"/{key}"
        pattern = re.escape(key).replace(r"/\*\*", r"(/\w+)*").replace(r"/\*", r"(/\w+)")
        if not re.fullmatch(pattern, fqn):
            continue
        params = block.get("ros__parameters", {}) if isinstance(block, dict) else None
        if not isinstance(params, dict):
            raise ValueError(f"{path}: {key} has no ros__parameters mapping")
        flat.update(flatten_parameters(params))
    return flat
