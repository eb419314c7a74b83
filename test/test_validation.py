"""Tests of moe_vla_ros/validation.py: the shared config checks and their messages."""

import json

import numpy as np
import pytest

from moe_vla_ros.errors import BadInputError
from moe_vla_ros.validation import (
    read_json,
    require_bool,
    require_choice,
    require_distinct,
    require_int,
    require_keys,
    require_non_negative,
    require_number,
    require_positive,
)


class LocalError(BadInputError):
    pass


@pytest.mark.parametrize(
    "check, message",
    [
        (lambda: require_positive("dt", 0.0), r"dt must be > 0, got 0.0"),
        (lambda: require_positive("dt", True), r"dt must be > 0, got True"),
        (lambda: require_non_negative("lead", float("nan")), r"lead must be >= 0, got nan"),
        (lambda: require_number("rate", 0.0, 0.5, 100.0), r"rate must be in \[0.5, 100\], got 0.0"),
        (lambda: require_number("p", 1.0, 0, 1, high_open=True), r"p must be in \[0, 1\), got 1.0"),
        (lambda: require_number("x", float("inf")), r"x must be a finite number, got inf"),
        (lambda: require_number("x", "1"), r"x must be a finite number, got '1'"),
        (lambda: require_int("seed", -1, 0), r"seed must be an integer >= 0, got -1"),
        (lambda: require_int("n", 2.0, 1), r"n must be an integer >= 1, got 2.0"),
        (lambda: require_int("n", True, 0), r"n must be an integer >= 0, got True"),
        (lambda: require_int("steps", 16, 0, 16, high_open=True), r"steps must be an integer in \[0, 16\), got 16"),
        (lambda: require_int("seed", 2**31, 0, 2**31 - 1), r"seed must be an integer in \[0, 2147483647\]"),
        (lambda: require_choice("blend", "cubic", ("linear", "none")), r"blend must be one of \['linear', 'none'\], got 'cubic'"),
        (lambda: require_bool("force", "yes"), r"force must be a bool, got 'yes'"),
        (lambda: require_bool("force", 1), r"force must be a bool, got 1"),
        (lambda: require_distinct("cams", "front"), r"cams must be a list, got the string 'front'"),
        (lambda: require_distinct("cams", []), r"cams must be non-empty and distinct, got \[\]"),
        (lambda: require_distinct("cams", ["a", ""]), r"cams must be non-empty and distinct, got \['a', ''\]"),
        (lambda: require_distinct("cams", ["a", "a"], ("a", "b")), r"distinct values from \['a', 'b'\], got \['a', 'a'\]"),
        (lambda: require_distinct("cams", ["c"], ("a", "b")), r"got \['c'\]"),
        (lambda: require_keys("Cfg", {"x": 1}, ("a",)), r"Cfg has unknown fields \['x'\]; expected \['a'\]"),
        (lambda: require_keys("lower", {"a": 1}, ("a", "b"), noun="joints", all_required=True),
         r"lower is missing joints \['b'\]"),
    ],
)
def test_checks_name_the_field_and_the_bad_value(check, message):
    with pytest.raises(BadInputError, match=message):
        check()


def test_accepted_values_are_returned_converted():
    assert require_positive("dt", np.float32(0.5)) == 0.5 and isinstance(require_positive("dt", 1), float)
    assert require_int("n", np.int64(3), 1) == 3 and type(require_int("n", np.int64(3), 1)) is int
    assert require_int("n", 15, 0, 16, high_open=True) == 15
    assert require_choice("mode", "a", ("a",)) == "a" and require_bool("b", False) is False
    assert require_distinct("cams", ["b", "a"], ("a", "b")) == ("b", "a")
    require_keys("Cfg", {"a": 1}, ("a", "b"))  # missing keys are fine unless all_required


def test_the_callers_error_class_is_raised_and_stays_a_value_error():
    with pytest.raises(LocalError) as raised:
        require_positive("dt", -1.0, error=LocalError)
    assert isinstance(raised.value, ValueError)


def test_read_json(tmp_path):
    with pytest.raises(LocalError, match="no config here"):
        read_json(tmp_path / "config.json", "no config here", error=LocalError)
    (tmp_path / "config.json").write_text("{nope")
    with pytest.raises(LocalError, match="config.json is not valid JSON"):
        read_json(tmp_path / "config.json", "missing", error=LocalError)
    (tmp_path / "config.json").write_text(json.dumps({"a": [1]}))
    assert read_json(tmp_path / "config.json", "missing") == {"a": [1]}
