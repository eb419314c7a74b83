"""Described parameters: config dataclasses whose fields are also ROS parameters (pure, no rclpy).

A node's settings are a (nested) dataclass whose fields are declared with `param(...)`: default,
description and an optional range/choices. Nested dataclasses become dotted names ("model.path"),
as in `config/*.yaml`. This module turns such a dataclass into flat {dotted name: value} dicts
and back (`build_config`, `flat_values`) and formats them as a node's command line
(`ros_arguments`); `moe_vla_ros/ros/params.py` declares the same fields on an rclpy node.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import MISSING, field, fields, is_dataclass
from typing import Any

PARAM_META = "ros_param"

# Parameters every rclpy node has or that ROS tools set; never reported as unknown.
BUILTIN_PARAMETERS = ("use_sim_time", "start_type_description_service")
BUILTIN_PARAMETER_PREFIXES = ("qos_overrides.",)


def param(
    default: Any,
    description: str,
    *,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[str, ...] | None = None,
    read_only: bool = False,
) -> Any:
    """A dataclass field that is also a ROS parameter (lists use default_factory automatically)."""
    meta = {PARAM_META: dict(description=description, min=min, max=max, choices=choices, read_only=read_only)}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


def param_meta(f: dataclasses.Field) -> dict[str, Any]:
    """description, min, max, choices, read_only of a `param()` field."""
    return f.metadata[PARAM_META]


def iter_params(cls, prefix: str = "") -> Iterator[tuple[str, dataclasses.Field, Any]]:
    """(dotted name, field, resolved type) for every parameter field, nested dataclasses flattened."""
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        typ = hints[f.name]
        name = f"{prefix}{f.name}"
        if is_dataclass(typ):
            yield from iter_params(typ, name + ".")
        elif PARAM_META in f.metadata:
            yield name, f, typ


def param_names(cls) -> list[str]:
    """Every dotted parameter name of `cls`, in declaration order."""
    return [name for name, _, _ in iter_params(cls)]


def default_value(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    raise TypeError(f"parameter field {f.name} has no default")


def build_config(cls, values: Mapping[str, Any], prefix: str = ""):
    """Instantiate (nested) dataclass `cls` from a flat {dotted name: value} dict (names `cls` does
    not declare are ignored; validation is the dataclasses' own)."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in fields(cls):
        typ = hints[f.name]
        name = f"{prefix}{f.name}"
        if is_dataclass(typ):
            kwargs[f.name] = build_config(typ, values, name + ".")
        elif name in values:
            kwargs[f.name] = values[name]
    return cls(**kwargs)


def flat_values(config) -> dict[str, Any]:
    """{dotted name: value} of every parameter of a (nested) config instance (lists copied)."""
    out: dict[str, Any] = {}
    for name, _, _ in iter_params(type(config)):
        value = config
        for part in name.split("."):
            value = getattr(value, part)
        out[name] = list(value) if isinstance(value, (list, tuple)) else value
    return out


def unknown_parameters(names, cls) -> list[str]:
    """Names in `names` (a node's parameter overrides: params files, -p, launch) that `cls` does
    not declare, each with the closest declared name when there is one."""
    declared = param_names(cls)
    messages = []
    for name in sorted(names):
        if name in declared or name in BUILTIN_PARAMETERS or name.startswith(BUILTIN_PARAMETER_PREFIXES):
            continue
        close = difflib.get_close_matches(name, declared, n=1, cutoff=0.6)
        messages.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return messages


def format_value(value: Any) -> str:
    """A value as `-p name:=value` text (rcl reads it as YAML): true/false, [a,b], numbers, strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value)


def ros_arguments(params_files: Sequence[str | os.PathLike] = (), params: Mapping[str, Any] | None = None) -> list[str]:
    """`--ros-args --params-file F ... -p name:=value ...`: the files in order, then the values
    (later wins, as rcl applies them)."""
    args = ["--ros-args"]
    for path in params_files:
        args += ["--params-file", str(path)]
    for name, value in (params or {}).items():
        args += ["-p", f"{name}:={format_value(value)}"]
    return args
