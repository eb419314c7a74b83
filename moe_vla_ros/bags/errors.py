"""The one exception type of the bag tools.

Every problem with a bag (missing or truncated files, corrupt metadata, missing topics, unknown
message types, out-of-order stamps, joints that do not match a contract, an output path that
already exists) is reported as a `BagError` whose message names the bag, the topic and what is
wrong, so a command-line user can act on it without a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence

from moe_vla_ros.errors import BadInputError


class BagError(BadInputError, RuntimeError):
    """A bag cannot be read, written or used as requested.

    Attributes:
        problems: the individual problems found (one line each); a single-problem error has
            its message as the only entry.
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[str, ...] = tuple(problems) or (message,)
