"""Bag work over many bags, in this process or on a Ray cluster (pure: no ROS, no torch; ray lazily).

`fan_out(fn, bags, config, args)` calls `fn(bag, *args[i])` for every bag and returns one `BagResult` per bag, in
input order:

- `executor="local"`: one bag after the other, in this process;
- `executor="ray"`: one Ray task per bag (`ray` is imported only then). With `ray_address` the
  tasks go to that cluster (a KubeRay head: "ray://HOST:10001", or "auto" for one started with
  `ray start` on this machine); this package's code travels with the job (runtime_env
  py_modules), its dependencies (requirements.txt) must be installed on the cluster's image, and
  the bags, model and output folder must be at the same paths there (a shared volume). Without it
  a local cluster of `ray_num_cpus` CPUs is started for the call and stopped after it; its
  workers run this interpreter and import the package from this checkout. A Ray session already
  open in the process (`ray.is_initialized()`, e.g. a test's) is used as it is.

A bag that fails does not stop the others: its result carries the error (one line, the error's
class and exit code) instead of a value. Unexpected errors keep their traceback in `detail`.
Progress is one bar over the bags (tqdm, `progress=False` turns it off); a failed bag is named
on stderr as soon as it is known. `raise_if_failed` then ends a tool with FailedError (exit 1)
after it has written what succeeded.

Outputs must not collide: `output_names` gives every bag a distinct folder name (the bag's name,
with as many parent folders as it takes to tell bags of the same name apart).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from moe_vla_ros.cli import BAD_PATH_ERRORS, one_line
from moe_vla_ros.errors import EXIT_BAD_INPUT, EXIT_FAILED, BadInputError, FailedError, MoeVlaError
from moe_vla_ros.validation import require_choice, require_int

EXECUTORS = ("local", "ray")
SUMMARY_FILE = "fleet_summary.json"
# Environment of a local Ray cluster started here (robots' CI: no network, no dashboard, no token to manage).
# Each is set only where the environment does not set it already.
LOCAL_RAY_ENV = {
    "RAY_AUTH_MODE": "disabled",  # ray 2.60 enables token authentication by default
    "RAY_USAGE_STATS_ENABLED": "0",  # no usage report to the internet
}


@dataclass(frozen=True)
class FanOutConfig:
    """Where the per-bag work runs.

    executor: "local" (in this process, one bag after the other) or "ray" (one task per bag).
    ray_address: an existing Ray cluster ("ray://HOST:10001", "auto", "HOST:6379"); None starts a
        local cluster for the call (ray only).
    ray_num_cpus: CPUs of the local cluster (None: all of this machine's; ray without address only).
    progress: one progress bar over the bags.
    """

    executor: str = "local"
    ray_address: str | None = None
    ray_num_cpus: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        require_choice("executor", self.executor, EXECUTORS)
        if self.executor != "ray" and (self.ray_address is not None or self.ray_num_cpus is not None):
            raise BadInputError("--ray-address and --ray-num-cpus need --executor ray")
        if self.ray_address is not None and not self.ray_address.strip():
            raise BadInputError("ray_address must name a cluster, got an empty string")
        if self.ray_num_cpus is not None:
            if self.ray_address is not None:
                raise BadInputError("--ray-num-cpus sizes a local cluster; an existing one (--ray-address) has its own CPUs")
            require_int("ray_num_cpus", self.ray_num_cpus, 1)


@dataclass(frozen=True)
class BagResult:
    """What one bag gave: `value` (what the per-bag function returned) or the error.

    bag: the bag as given. index: its position in the input.
    error: the error in one line (None: the bag succeeded). error_type: its class name.
    exit_code: the exit code the error would give on its own (2 bad input, 1 failed).
    detail: the traceback of an unexpected error ("" for the package's own errors).
    wall_s: seconds the bag took where it ran.
    """

    bag: Path
    index: int
    value: Any = None
    error: str | None = None
    error_type: str = ""
    exit_code: int = 0
    detail: str = ""
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def raise_error(self) -> None:
        """Raise the bag's error again as the package's kind (BadInputError / FailedError)."""
        if self.ok:
            return
        kind = BadInputError if self.exit_code == EXIT_BAD_INPUT else FailedError
        raise kind(self.error)


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """`--executor {local,ray}`, `--ray-address`, `--ray-num-cpus` (see FanOutConfig)."""
    g = parser.add_argument_group("where the bags are processed")
    g.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local: one bag after the other in this process; ray: one Ray task per bag (default: local)")
    g.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="existing Ray cluster, e.g. a KubeRay head ray://HOST:10001 or 'auto' (default: a local cluster)")
    g.add_argument("--ray-num-cpus", type=int, default=None, metavar="N",
                   help="CPUs of the local Ray cluster, one bag per CPU at a time (default: all)")


def config_from_args(args: argparse.Namespace) -> FanOutConfig:
    return FanOutConfig(args.executor, args.ray_address, args.ray_num_cpus, args.progress)


def check_bags(bags: Sequence[str | os.PathLike]) -> list[Path]:
    """The bags as paths; BadInputError for one that does not exist or is given twice."""
    paths = [Path(b) for b in bags]
    if not paths:
        raise BadInputError("give at least one bag")
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise BadInputError(f"bag(s) not found: {missing}")
    seen: dict[Path, Path] = {}
    for p in paths:
        key = p.resolve()
        if key in seen:
            raise BadInputError(f"bag {p} is given twice (as {seen[key]} before)")
        seen[key] = p
    return paths


def output_names(bags: Sequence[str | os.PathLike]) -> list[str]:
    """A distinct folder name per bag: its name (a bag file's without the suffix), prefixed with
    its parent folders ("robot1_bag") only as far as it takes to tell apart bags of the same name."""
    parts = [Path(os.path.abspath(b)).with_suffix("").parts if Path(b).is_file()
             else Path(os.path.abspath(b)).parts for b in bags]
    depth = [1] * len(parts)
    while True:
        names = ["_".join(p[-d:]).strip("/") or "bag" for p, d in zip(parts, depth)]
        clashes = {n for n in names if names.count(n) > 1}
        if not clashes:
            return names
        grown = False
        for i, n in enumerate(names):
            if n in clashes and depth[i] < len(parts[i]):
                depth[i] += 1
                grown = True
        if not grown:  # the same path twice: check_bags refuses that first
            return [f"{n}_{i}" if n in clashes else n for i, n in enumerate(names)]


def check_fleet_output(out: str | os.PathLike) -> Path:
    """The folder that takes one output folder per bag: new or empty (nothing is overwritten)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInputError(f"{out} already exists and is not empty; refusing to overwrite it")
    return out


def run_one(fn: Callable[..., Any], index: int, bag: Path, args: tuple = ()) -> BagResult:
    """`fn(bag, *args)` as a BagResult: every exception but an interrupt is caught and described."""
    started = time.perf_counter()
    try:
        value = fn(bag, *args)
    except Exception as error:  # one bag's failure must not stop the fleet
        expected = isinstance(error, (MoeVlaError, *BAD_PATH_ERRORS))
        if isinstance(error, MoeVlaError):
            code = error.exit_code
        else:
            code = EXIT_BAD_INPUT if isinstance(error, BAD_PATH_ERRORS) else EXIT_FAILED
        return BagResult(bag, index, error=one_line(error), error_type=type(error).__name__, exit_code=code,
                         detail="" if expected else traceback.format_exc(), wall_s=time.perf_counter() - started)
    return BagResult(bag, index, value=value, wall_s=time.perf_counter() - started)


def fan_out(fn: Callable[..., Any], bags: Sequence[str | os.PathLike], config: FanOutConfig = FanOutConfig(),
            args: Sequence[tuple] | None = None, desc: str = "bags") -> list[BagResult]:
    """`fn(bag, *args[i])` for every bag on `config.executor` (`args`: per-bag extra arguments, e.g.
    its output folder); one BagResult per bag, in input order.

    With ray, `fn` (e.g. a functools.partial of a module-level function) is pickled once and must
    import on the workers; it writes its outputs itself and returns something small and picklable.
    The workers get the bags and Path arguments as absolute paths (paths inside `fn` are the
    caller's to make absolute: workers of an existing cluster do not run in this folder).
    """
    paths = [Path(b) for b in bags]
    extra = [tuple(a) for a in args] if args is not None else [()] * len(paths)
    if len(extra) != len(paths):
        raise ValueError(f"{len(extra)} argument tuples for {len(paths)} bags")
    if config.executor == "local":
        return _fan_out_local(fn, paths, extra, config.progress, desc)
    with ray_session(config.ray_address, config.ray_num_cpus, config.progress), _bar(len(paths), config.progress, desc) as done:
        return _fan_out_ray(fn, paths, extra, done)


@contextmanager
def _bar(total: int, progress: bool, desc: str) -> Iterator[Callable[[BagResult], None]]:
    """A progress bar over the bags; the callable counts one finished bag (naming a failed one on stderr)."""
    with tqdm(total=total, desc=desc, unit="bag", disable=not progress) as bar:
        def done(result: BagResult) -> None:
            if not result.ok:
                message = f"{desc}: {result.bag} failed: {result.error}"
                if progress:
                    bar.write(message, file=sys.stderr)
                else:
                    print(message, file=sys.stderr)
            bar.update(1)

        yield done


def _fan_out_local(fn: Callable[..., Any], paths: list[Path], extra: list[tuple], progress: bool,
                   desc: str) -> list[BagResult]:
    results = []
    with _bar(len(paths), progress, desc) as done:
        for i, bag in enumerate(paths):
            results.append(run_one(fn, i, bag, extra[i]))
            done(results[-1])
    return results


def _fan_out_ray(fn: Callable[..., Any], paths: list[Path], extra: list[tuple],
                 done: Callable[[BagResult], None]) -> list[BagResult]:
    import ray

    task = ray.remote(run_one).options(num_cpus=1, max_retries=1)  # a retry only for a lost worker/node
    fn_ref = ray.put(fn)
    # workers of an existing cluster run in their own folder: they get absolute paths
    refs = [task.remote(fn_ref, i, bag.absolute(), tuple(a.absolute() if isinstance(a, Path) else a for a in extra[i]))
            for i, bag in enumerate(paths)]
    index_of = {ref: i for i, ref in enumerate(refs)}
    results: list[BagResult | None] = [None] * len(paths)
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                i = index_of[ref]
                try:
                    results[i] = replace(ray.get(ref), bag=paths[i])  # the bag as given
                except ray.exceptions.RayError as error:  # the task itself did not run to the end
                    results[i] = BagResult(paths[i], i, error=one_line(error), error_type=type(error).__name__,
                                           exit_code=EXIT_FAILED)
                done(results[i])
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return results


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None, announce: bool = False) -> Iterator[None]:
    """A Ray session for the block: the one already open in this process, else one connected to
    `address` or a new local cluster of `num_cpus` CPUs, shut down at the end (`announce`: one
    line on stderr when it is up)."""
    try:
        import ray
    except ImportError as error:
        raise FailedError(f"--executor ray needs the ray package (requirements.txt pins it): {error}") from None
    if ray.is_initialized():
        yield
        return
    started = time.perf_counter()
    start_ray(address, num_cpus)
    if announce:
        cpus = int(ray.cluster_resources().get("CPU", 0))
        where = f"Ray cluster at {address}" if address else "local Ray cluster"
        print(f"{where}: {cpus} CPUs, up in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    try:
        yield
    finally:
        ray.shutdown()


def start_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """ray.init for bag work: a local cluster (num_cpus, no dashboard, token auth off, no usage
    stats) whose workers import this checkout, or the cluster at `address` with this package's
    code shipped in the job's runtime_env. Workers' output stays in Ray's log files."""
    import ray

    common = dict(log_to_driver=False, logging_level=logging.WARNING)
    try:
        if address is None:
            for name, value in LOCAL_RAY_ENV.items():
                os.environ.setdefault(name, value)
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                     runtime_env=_local_runtime_env(), **common)
        else:
            ray.init(address=address, runtime_env=_remote_runtime_env(), **common)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        raise FailedError(f"cannot start or reach {where}: {one_line(error)}") from None


def _package_dir() -> Path:
    return Path(__file__).resolve().parent


def _local_runtime_env() -> dict:
    """Workers of a local cluster run this interpreter; PYTHONPATH puts this checkout first."""
    paths = [str(_package_dir().parent), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}}


def _remote_runtime_env() -> dict:
    """This package's code travels with the job (the cluster's image has the dependencies)."""
    return {"py_modules": [str(_package_dir())], "excludes": ["__pycache__/", "*.pyc"]}


# -- the fleet summary ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    """A column of the fleet table: header, the row key, how a value is written."""

    header: str
    key: str
    fmt: str = "{}"


@dataclass
class FleetSummary:
    """Per bag ok/failed (with the error) and the tool's key numbers; `totals` over the fleet."""

    tool: str
    rows: list[dict[str, Any]]
    totals: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] != "ok"]

    def to_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "bags": len(self.rows), "ok": len(self.rows) - len(self.failed),
                "failed": len(self.failed), "totals": self.totals, "per_bag": self.rows}

    def write(self, out_dir: str | os.PathLike) -> Path:
        path = Path(out_dir) / SUMMARY_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def format(self, columns: Sequence[Column]) -> str:
        """A plain-text table: bag, status, the columns, then the error of each failed bag."""
        def cell(row: dict, c: Column) -> str:
            value = row.get(c.key)
            return "-" if value is None else c.fmt.format(value)

        header = ["bag", "status", *(c.header for c in columns)]
        body = [[r["name"], r["status"], *(cell(r, c) for c in columns)] for r in self.rows]
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in [header, *body]]
        lines += [f"{r['name']}: {r['error_type']}: {r['error']}" for r in self.failed]
        ok = len(self.rows) - len(self.failed)
        lines.append(f"{ok} of {len(self.rows)} bags ok" + (f", {len(self.failed)} failed" if self.failed else ""))
        return "\n".join(lines)


def summarize(tool: str, results: Sequence[BagResult], names: Sequence[str], outs: Sequence[Path],
              metrics: Callable[[Any], dict[str, Any]]) -> FleetSummary:
    """One row per bag: name, bag, output, status, seconds, the error or `metrics(value)`."""
    rows = []
    for result, name, out in zip(results, names, outs):
        row: dict[str, Any] = {"name": name, "bag": str(result.bag), "out": str(out),
                               "status": "ok" if result.ok else "failed", "wall_s": round(result.wall_s, 3)}
        if result.ok:
            row.update(metrics(result.value))
        else:
            row.update(error=result.error, error_type=result.error_type, exit_code=result.exit_code)
            if result.detail:
                row["traceback"] = result.detail
        rows.append(row)
    return FleetSummary(tool, rows)


def raise_if_failed(results: Sequence[BagResult], summary_path: Path | None = None) -> None:
    """FailedError (exit 1) naming the failed bags, when any failed."""
    failed = [r for r in results if not r.ok]
    if not failed:
        return
    names = ", ".join(str(r.bag) for r in failed[:3]) + (" ..." if len(failed) > 3 else "")
    where = f" (see {summary_path})" if summary_path else ""
    raise FailedError(f"{len(failed)} of {len(results)} bags failed: {names}{where}")


# -- a tool's flow --------------------------------------------------------------------------------

def run_single(fn: Callable[..., Any], bag: Path, out: Path, config: FanOutConfig) -> Any:
    """One bag, today's layout (`out` is the bag's output): `fn(bag, out)` in this process (its
    errors propagate unchanged), or as one Ray task whose error is raised again with its kind."""
    if config.executor == "local":
        return fn(bag, out)
    (result,) = fan_out(fn, [bag], replace(config, progress=False), [(out,)])
    result.raise_error()
    return result.value


def run_fleet(fn: Callable[..., Any], bags: Sequence[str | os.PathLike], out: str | os.PathLike,
              config: FanOutConfig, *, tool: str, metrics: Callable[[Any], dict[str, Any]],
              columns: Sequence[Column], totals: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None,
              desc: str = "bags") -> FleetSummary:
    """Several bags: `fn(bag, out/<name>)` for each (names from output_names), then the fleet summary
    written to out/fleet_summary.json and printed; FailedError (exit 1) when any bag failed, after
    everything that succeeded is written. Missing bags, a bag given twice or a non-empty `out` are
    refused before any work (BadInputError)."""
    paths = check_bags(bags)
    out = check_fleet_output(out)
    names = output_names(paths)
    outs = [out / name for name in names]
    started = time.perf_counter()
    results = fan_out(fn, paths, config, [(o,) for o in outs], desc=desc)
    elapsed = time.perf_counter() - started
    summary = summarize(tool, results, names, outs, metrics)
    summary.totals = totals([r for r in summary.rows if r["status"] == "ok"]) if totals else {}
    summary.totals.update(executor=config.executor, elapsed_s=round(elapsed, 3),
                          bag_s=round(sum(r.wall_s for r in results), 3))
    path = summary.write(out)
    print(summary.format(columns))
    print(f"fleet summary: {path}")
    raise_if_failed(results, path)
    return summary
