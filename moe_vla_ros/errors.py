"""The package's error hierarchy (pure Python, imports nothing).

Every error the package raises on purpose derives from `MoeVlaError`, through one of two kinds:

- `BadInputError` (a `ValueError`): what the caller gave is wrong (arguments, configuration,
  a model folder, a bag, a dataset, an observation). Command-line tools exit with 2.
- `FailedError` (a `RuntimeError`): the input was acceptable but the work did not succeed
  (an export that fails verification, an evaluation that cannot finish). Tools exit with 1.

Existing classes keep their former builtin base as well (a `BagError` is still a `RuntimeError`),
so `except RuntimeError` around them keeps working. `moe_vla_ros.cli.run_tool` maps them to exit
codes and one line on stderr.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM


class MoeVlaError(Exception):
    """Base of every error the package raises on purpose."""

    exit_code = EXIT_FAILED


class BadInputError(MoeVlaError, ValueError):
    """The caller's input (argument, config, file, message) is wrong; tools exit with 2."""

    exit_code = EXIT_BAD_INPUT


class FailedError(MoeVlaError, RuntimeError):
    """Acceptable input, but the work did not succeed; tools exit with 1."""

    exit_code = EXIT_FAILED
