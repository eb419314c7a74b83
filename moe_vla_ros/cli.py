"""The command-line convention every console script follows (pure Python, no ROS, no torch).

- `prog` is the installed script name: build the parser with `tool_parser(PROG, __doc__)`.
- The same things have the same names: a bag is the positional `bag` (`add_bag_argument`); a
  tool that takes several bags has the positional `bags` (`add_bags_argument`, one or more); the
  place results go is `-o/--out` (`add_output_argument`), progress bars are switched off with
  `--no-progress` (`add_progress_argument`).
- `main(argv)` returns `run_tool(PROG, lambda: _run(argv))`: exit codes 0 ok, 1 failed, 2 bad
  input (also argparse's usage errors), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM,
  raised as `Terminated`, a KeyboardInterrupt, so `finally` blocks stop child processes and close
  files as on Ctrl-C); errors are one line on stderr,
  `<prog>: error: <message>`. Errors of the package derive from `moe_vla_ros.errors.MoeVlaError`
  and carry their exit code; an unexpected exception is a bug and keeps its traceback.
  Validation that raises plain ValueError (config dataclasses) runs inside `with bad_input():`.
- ROS node mains keep ros/spin.py's stop: SIGINT/SIGTERM end the spin normally (exit 0).
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from moe_vla_ros.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    BadInputError,
    MoeVlaError,
)

# A path the user gave that does not exist, is not a folder, or must not be overwritten: bad input.
_BAD_PATH_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError)
BAD_PATH_ERRORS = _BAD_PATH_ERRORS  # the same, for code that classifies errors the way run_tool does


def tool_parser(prog: str, doc: str | None, **kwargs) -> argparse.ArgumentParser:
    """An ArgumentParser named after the script; its description is the first paragraph of `doc`."""
    description = (doc or "").strip().split("\n\n")[0] or None
    kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
    return argparse.ArgumentParser(prog=prog, description=description, **kwargs)


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each option's default, except where it says nothing: flags (`--no-progress`
    would read "default: True"), required options and options without a default (None, [])."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        empty = isinstance(action.default, (list, tuple)) and not action.default
        if action.default is None or empty or action.required or action.nargs == 0:
            return action.help
        return super()._get_help_string(action)


def add_bag_argument(parser: argparse.ArgumentParser, help: str, many: bool = False) -> None:
    """The input bag(s): positional `bag` (one folder, or one or more with `many`)."""
    parser.add_argument("bag", type=Path, nargs="+" if many else None, help=help)


def add_bags_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """The input bags of a tool that takes several: positional `bags` (one or more, args.bags a list)."""
    parser.add_argument("bags", type=Path, nargs="+", metavar="BAG", help=help)


def add_output_argument(parser: argparse.ArgumentParser, help: str, required: bool = True, default: Path | None = None) -> None:
    """Where results go: `-o/--out PATH`."""
    parser.add_argument("-o", "--out", type=Path, required=required and default is None, default=default, help=help)


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    """`--no-progress` turns progress bars off (args.progress is True by default)."""
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (run_tool raises it in the main thread, so cleanup runs as on Ctrl-C)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def run_tool(prog: str, body: Callable[[], int | None]) -> int:
    """Run a tool's body and turn how it ended into the convention's exit code and stderr line.
    In the main thread, a SIGTERM without a handler of its own raises `Terminated` in `body`
    (a handler the body installs, e.g. ros/spin.py's, takes precedence while it is installed)."""
    previous = None
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        code = body()
    except Terminated:
        print(f"{prog}: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MoeVlaError as error:
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        return error.exit_code
    except _BAD_PATH_ERRORS as error:
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return EXIT_OK if code is None else int(code)


@contextmanager
def bad_input(kinds: tuple[type[BaseException], ...] = (ValueError, TypeError)) -> Iterator[None]:
    """Errors of `kinds` raised inside (validating the user's arguments) are bad input: re-raised as
    BadInputError with the same message. Package errors pass unchanged (they carry their kind)."""
    try:
        yield
    except MoeVlaError:
        raise
    except kinds as error:
        raise BadInputError(one_line(error)) from error


def split_ros_args(argv: Iterable[str]) -> tuple[list[str], list[str]]:
    """(the tool's own arguments, the ROS arguments from `--ros-args` on)."""
    argv = list(argv)
    cut = argv.index("--ros-args") if "--ros-args" in argv else len(argv)
    return argv[:cut], argv[cut:]


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
