"""Small helpers shared by the command-line tools (pure Python, no ROS, no torch)."""

from __future__ import annotations

import re
from typing import Iterable


def parse_pairs(items: Iterable[str], separator: str, form: str, error: type[Exception] = ValueError) -> dict[str, str]:
    """Repeated `KEY<separator>VALUE` arguments -> {key: value}, in order.

    `form` is how the option is written in messages (e.g. "--camera NAME=TOPIC"); an item without
    the separator, key or value raises `error` naming it.
    """
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition(separator)
        if not sep or not key or not value:
            raise error(f"{form.split()[0]} takes {form.split()[-1]}, got {item!r}")
        pairs[key] = value
    return pairs


def one_line(error: BaseException) -> str:
    """An exception as one line for stderr, without rcl's source locations (", at /project/src/...")."""
    text = re.sub(r",? at /\S+:\d+", "", " ".join(str(error).split()))
    return text or type(error).__name__
