"""ROS parameters from the described config dataclasses of `moe_vla_ros/spec/`: the rclpy half.

A node's configuration is a (nested) dataclass whose fields are declared with `spec.described.param`
(default, description, range/choices). `declare_config()` declares every field as a ROS parameter
with a ParameterDescriptor (description, range, read-only), reads the values (from `--params-file`
YAML, launch, or defaults) back into the dataclass, and lets the dataclass's own validation name a
bad value. Nested dataclasses become dotted names ("model.path"), as in `config/*.yaml`.
"""

from __future__ import annotations

import typing
from typing import Any

from moe_vla_ros.spec.described import PARAM_META, build_config, default_value, iter_params


def declare_config(node, cls, read_only_prefixes: tuple[str, ...] = ()):
    """Declare every field of `cls` as a parameter of `node` and return the filled, validated config.

    Parameters whose dotted name starts with one of `read_only_prefixes` are read-only: they can be
    set at start-up (params file, launch, -p) but `ros2 param set` refuses them (e.g. topic names,
    which the node reads once)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    values = {}
    for name, f, typ in iter_params(cls):
        meta = f.metadata[PARAM_META]
        description = meta["description"]
        if meta["choices"]:
            description += f" One of: {', '.join(meta['choices'])}."
        read_only = meta["read_only"] or name.startswith(tuple(read_only_prefixes))
        if read_only and not meta["read_only"]:
            description += " Read at start-up only."
        descriptor = ParameterDescriptor(name=name, description=description, read_only=read_only)
        if meta["min"] is not None or meta["max"] is not None:
            lo = meta["min"] if meta["min"] is not None else -1e18
            hi = meta["max"] if meta["max"] is not None else 1e18
            if typ is int:
                lo, hi = int(max(lo, -(2**62))), int(min(hi, 2**62))
                descriptor.integer_range = [IntegerRange(from_value=lo, to_value=hi, step=0)]
            elif typ is float:
                descriptor.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
        default = default_value(f)
        if isinstance(default, list) and not default:
            # An empty list has no type; declare the ROS type explicitly from the annotation.
            from rclpy.parameter import Parameter

            args = typing.get_args(typ)
            ptype = {str: Parameter.Type.STRING_ARRAY, float: Parameter.Type.DOUBLE_ARRAY,
                     int: Parameter.Type.INTEGER_ARRAY, bool: Parameter.Type.BOOL_ARRAY}[args[0]]
            node.declare_parameter(name, ptype, descriptor)
            values[name] = _current(node, name)
            continue
        node.declare_parameter(name, default, descriptor)
        values[name] = _plain(node.get_parameter(name).value)
    return build_config(cls, values)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) or hasattr(value, "tolist") else value


def _current(node, name: str) -> Any:
    from rclpy.exceptions import ParameterUninitializedException

    try:
        return _plain(node.get_parameter(name).value)
    except ParameterUninitializedException:  # a typed empty list never set: the default, []
        return []


def current_values(node, cls) -> dict[str, Any]:
    """{dotted name: value} of every declared parameter of `cls` as the node holds it now."""
    return {name: _current(node, name) for name, _, _ in iter_params(cls)}


def read_config(node, cls, changes: dict[str, Any] | None = None):
    """The config `cls` from the node's current parameter values (plus `changes`, not yet applied),
    validated by the dataclasses: raises their error naming the bad value."""
    values = current_values(node, cls)
    values.update({k: _plain(v) for k, v in (changes or {}).items()})
    return build_config(cls, values)
