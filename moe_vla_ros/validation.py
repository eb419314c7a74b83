"""Checks of config values and input files, each written once (pure Python; imports only errors.py).

Config dataclasses validate their fields in `__post_init__` with these. Each check raises
`error` (default `BadInputError`, a ValueError; pass the module's own subclass, e.g.
`SimConfigError`) with a message that names the field and the bad value:

    require_int("seed", -1, 0)                    seed must be an integer >= 0, got -1
    require_int("steps", 16, 0, 16, high_open=True)   steps must be an integer in [0, 16), got 16
    require_number("rate", 0.0, 0.5, 100)         rate must be in [0.5, 100], got 0.0
    require_positive("dt", 0.0)                   dt must be > 0, got 0.0
    require_non_negative("lead", nan)             lead must be >= 0, got nan
    require_choice("blend", "cubic", MODES)       blend must be one of ['linear', ...], got 'cubic'
    require_bool("force", "yes")                  force must be a bool, got 'yes'
    require_distinct("cameras", ["a", "a"])       cameras must be non-empty and distinct, got ['a', 'a']
    require_keys("VisionConfig", d, names)        VisionConfig has unknown fields ['x']; expected [...]

Numbers are real numbers (numpy scalars included) and never bools; a range check also refuses
NaN and infinities. Integers are integral numbers (numpy integers included), never bools or
floats.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from moe_vla_ros.errors import BadInputError

ErrorType = type[Exception]


def _text(bound: float) -> str:
    return str(bound) if isinstance(bound, numbers.Integral) else f"{bound:g}"


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """'> 0', '>= 1', '<= 5', 'in [0, 1)': the condition as the messages say it."""
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{_text(low)}, {_text(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {_text(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {_text(high)}"
    return ""


def _within(value: float, low: float | None, high: float | None, low_open: bool, high_open: bool) -> bool:
    if low is not None and (value <= low if low_open else value < low):
        return False
    return high is None or (value < high if high_open else value <= high)


def require_number(name: str, value: Any, low: float | None = None, high: float | None = None, *,
                   low_open: bool = False, high_open: bool = False, error: ErrorType = BadInputError) -> float:
    """`value` as a float: a finite real number within [low, high] (either bound may be None or
    open); `error` naming `name` and the value otherwise."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and _within(value, low, high, low_open, high_open)):
        condition = _bounds(low, high, low_open, high_open) or "a finite number"
        raise error(f"{name} must be {condition}, got {value!r}")
    return float(value)


def require_positive(name: str, value: Any, *, error: ErrorType = BadInputError) -> float:
    """A finite number > 0."""
    return require_number(name, value, 0, low_open=True, error=error)


def require_non_negative(name: str, value: Any, *, error: ErrorType = BadInputError) -> float:
    """A finite number >= 0."""
    return require_number(name, value, 0, error=error)


def require_int(name: str, value: Any, low: int | None = None, high: int | None = None, *,
                high_open: bool = False, error: ErrorType = BadInputError) -> int:
    """`value` as an int: an integral number (no bool, no float) within [low, high] (or [low, high)
    with `high_open`); `error` naming `name` and the value otherwise."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not (ok and _within(value, low, high, False, high_open)):
        condition = _bounds(low, high, False, high_open)
        raise error(f"{name} must be an integer{' ' + condition if condition else ''}, got {value!r}")
    return int(value)


def require_choice(name: str, value: Any, choices: Collection[Any], *, error: ErrorType = BadInputError) -> Any:
    """`value` when it is one of `choices`; `error` listing them otherwise."""
    if value not in choices:
        raise error(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def require_bool(name: str, value: Any, *, error: ErrorType = BadInputError) -> bool:
    """`value` when it is True or False (not 0/1, not a string); `error` otherwise."""
    if not isinstance(value, bool):
        raise error(f"{name} must be a bool, got {value!r}")
    return value


def require_distinct(name: str, values: Iterable[Any], choices: Collection[Any] | None = None, *,
                     error: ErrorType = BadInputError) -> tuple[Any, ...]:
    """`values` as a tuple: a list (not a string) of at least one entry, no entry empty or repeated,
    each one of `choices` when given; `error` naming the list otherwise."""
    if isinstance(values, str):
        raise error(f"{name} must be a list, got the string {values!r}")
    items = tuple(values)
    unknown = choices is not None and any(v not in choices for v in items)
    if not items or not all(items) or len(set(items)) != len(items) or unknown:
        allowed = f" values from {list(choices)}" if choices is not None else ""
        raise error(f"{name} must be non-empty and distinct{allowed}, got {list(items)}")
    return items


def require_keys(what: str, given: Iterable[str], known: Collection[str], *, noun: str = "fields",
                 all_required: bool = False, error: ErrorType = BadInputError) -> None:
    """`error` when `given` (a mapping's keys) names something outside `known` or, with
    `all_required`, leaves one of `known` out; `noun` says what the keys are ("fields", "joints")."""
    given = set(given)
    unknown = sorted(given - set(known))
    if unknown:
        raise error(f"{what} has unknown {noun} {unknown}; expected {list(known)}")
    missing = [k for k in known if k not in given] if all_required else []
    if missing:
        raise error(f"{what} is missing {noun} {missing}")


def read_json(path: str | Path, missing: str, *, error: ErrorType = BadInputError) -> Any:
    """The JSON value in file `path`: `error(missing)` when there is no such file, `error` naming
    the file when it is not valid JSON."""
    path = Path(path)
    if not path.is_file():
        raise error(missing)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path} is not valid JSON: {e}") from None
