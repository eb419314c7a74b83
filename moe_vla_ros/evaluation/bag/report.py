"""The evaluation report: every metric of a run in one JSON document, plus PNG plots.

`score()` turns `RunRecords` + the bag's `Reference` into the JSON-ready metrics (definitions in
evaluation/bag/metrics.py and evaluation/seams.py); `write_report()` writes ``report.json`` and, unless disabled, the
plots (evaluation/bag/plots.py) into a new or empty folder and returns an `EvaluationReport`,
whose properties give the headline numbers:

    report = evaluate_bag("expert_bag", "models/default", "build/eval")
    assert report.action_mae < 0.05
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.contract import PolicyContract
from moe_vla_ros.evaluation.bag.config import EvaluationConfig
from moe_vla_ros.evaluation.bag.metrics import (
    chunk_errors,
    error_stats,
    executed_points,
    per_step_mae,
    reasoning_metrics,
    staleness,
    usage_drift,
)
from moe_vla_ros.evaluation.bag.records import Reference, RunRecords
from moe_vla_ros.evaluation.seams import seam_metrics
from moe_vla_ros.evaluation.stats import summary_stats

REPORT_FILE = "report.json"
FORMAT = "moe_vla_bag_evaluation"
VERSION = 1


def check_output_dir(out_dir: str | os.PathLike, keep: Sequence[str] = ()) -> None:
    """BagError unless `out_dir` does not exist or is an empty folder, apart from the entries
    named in `keep` (written there by the caller): nothing is ever overwritten."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(p.name not in keep for p in out.iterdir())):
        raise BagError(f"{out} already exists and is not empty; refusing to overwrite it")


@dataclass(frozen=True)
class Scores:
    """Metrics (JSON-ready) and the arrays the plots draw."""

    metrics: dict[str, Any]
    executed_times: np.ndarray  # [P]
    executed_positions: np.ndarray  # [P, J]
    executed_errors: np.ndarray  # [P, J], NaN where the reference is invalid


def score(records: RunRecords, reference: Reference, contract: PolicyContract, cfg: EvaluationConfig) -> Scores:
    """Every metric of the run (module docstrings of evaluation/bag/metrics.py and evaluation/seams.py)."""
    names, period = records.joint_names, records.control_period_s
    ex = executed_points(records.commands, period, len(names))
    targets, valid = reference.targets(ex.times_s)
    errors = np.where(valid[:, None], ex.positions - targets, np.nan) if ex.times_s.size else np.zeros((0, len(names)))
    action = error_stats(errors, names)
    action["per_step_mae"] = per_step_mae(errors, ex.steps, contract.chunk_length)
    first = [c for c in records.commands if not c.is_hold]
    initial = None
    if first:
        state, ok = reference.joint_states(np.array([max(first[0].start_s, first[0].received_s)]))
        initial = state[0] if ok[0] else None
    finite = np.all(np.isfinite(errors), axis=1)
    duration = max(records.end_s - records.start_s, 0.0)
    metrics: dict[str, Any] = {
        "reference": reference.source,
        "span_s": {"start": records.start_s, "end": records.end_s, "duration": duration},
        "counts": {**records.counters, "commands": len(first), "holds": sum(c.is_hold for c in records.commands),
                   "traces": len(records.traces), "usage": len(records.usage)},
        "action_error": action,
        "error_over_time": {
            "t_s": [round(float(t - records.start_s), 4) for t in ex.times_s[finite]],
            "mae": [float(v) for v in np.abs(errors[finite]).mean(axis=1)] if finite.any() else [],
        },
        "seams": seam_metrics(records.commands, period, cfg.seam_window_steps, initial),
        "staleness_s": staleness(records.commands),
        "latency_s": summary_stats(records.latencies_s),
        "reasoning": reasoning_metrics(records.traces, duration),
        "expert_usage": usage_drift(records.usage, cfg.usage_window_s),
    }
    if records.latency_summary_ms:
        metrics["node_latency_ms"] = dict(records.latency_summary_ms)
    if records.chunks:
        chunk_err, steps = chunk_errors(records.chunks, period, reference)
        metrics["chunk_error"] = error_stats(chunk_err, names)
        metrics["chunk_error"]["per_step_mae"] = per_step_mae(chunk_err, steps, contract.chunk_length)
    return Scores(metrics, ex.times_s, ex.positions, errors)


@dataclass(frozen=True)
class EvaluationReport:
    """A written report: the JSON document (`data`), its path and the plots."""

    path: Path
    data: dict[str, Any]
    plots: tuple[Path, ...]

    @property
    def action_mae(self) -> float | None:
        """Mean |executed command - recorded action| over joints and points (contract units)."""
        return self.data["action_error"]["mae"]

    @property
    def action_rmse(self) -> float | None:
        return self.data["action_error"]["rmse"]

    @property
    def commands(self) -> int:
        """Trajectories the policy published (holds not counted)."""
        return int(self.data["counts"]["commands"])

    def format(self) -> str:
        """The headline numbers, one per line (what the commands print)."""
        d = self.data

        def num(value: Any, unit: str = "", digits: int = 4) -> str:
            return "n/a" if value is None else f"{value:.{digits}f}{unit}"

        a, s, st = d["action_error"], d["seams"], d["staleness_s"]
        lines = [
            f"report:     {self.path}",
            f"bag:        {d['bag']} ({d['mode']}, {d['span_s']['duration']:.1f} s, reference: {d['reference']})",
            f"model:      {d['model_id']} ({d['backend']})",
            f"commands:   {d['counts']['commands']} published, {d['counts']['holds']} holds",
            f"action:     MAE {num(a['mae'])}  RMSE {num(a['rmse'])}  over {a['samples']} executed points",
        ]
        if "chunk_error" in d:
            lines.append(f"chunks:     MAE {num(d['chunk_error']['mae'])} over all predicted steps")
        lines += [
            f"seams:      {s['count']} (starved {s['starved']['count']}), velocity jump p95 "
            f"{num(s['velocity_jump']['p95'], ' rad/s', 3)} vs "
            f"{num(s['baseline_velocity_change']['p95'], ' rad/s', 3)} elsewhere",
            f"staleness:  p50 {num(st['p50'], ' s', 3)}  p95 {num(st['p95'], ' s', 3)}",
            f"reasoning:  {d['reasoning']['traces']} traces, {d['reasoning']['distinct']} distinct, "
            f"{num(d['reasoning']['changes_per_minute'], '/min', 1)} changes",
        ]
        for layer, u in d["expert_usage"].items():
            windows = len(u["windows"])
            lines.append(f"usage:      {layer}: drift max {u['drift_max_bits']:.3f} bits over {windows} windows")
        return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value


def write_report(
    out_dir: str | os.PathLike,
    records: RunRecords,
    reference: Reference,
    contract: PolicyContract,
    cfg: EvaluationConfig,
    info: dict[str, Any],
    *,
    keep: Sequence[str] = (),
) -> EvaluationReport:
    """Score the run and write report.json (+ plots) into `out_dir` (new, or holding only the
    entries named in `keep`)."""
    check_output_dir(out_dir, keep)
    out = Path(out_dir)
    scores = score(records, reference, contract, cfg)
    out.mkdir(parents=True, exist_ok=True)
    plots: list[Path] = []
    if cfg.plots:
        from moe_vla_ros.evaluation.bag.plots import write_plots  # matplotlib only when plotting

        plots = write_plots(out, records, reference, scores)
    data = {
        "format": FORMAT, "version": VERSION, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **info, "contract": contract.to_dict(), "config": cfg.to_dict(), **scores.metrics,
        "plots": [p.name for p in plots],
    }
    data = _jsonable(data)
    path = out / REPORT_FILE
    tmp = out / f".{REPORT_FILE}.partial"
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.rename(path)
    return EvaluationReport(path, data, tuple(plots))


def read_report(path: str | os.PathLike) -> EvaluationReport:
    """A report written earlier (a folder or its report.json)."""
    path = Path(path)
    path = path / REPORT_FILE if path.is_dir() else path
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise BagError(f"cannot read evaluation report {path}: {e}") from None
    if data.get("format") != FORMAT:
        raise BagError(f"{path} is not a {FORMAT} report")
    return EvaluationReport(path, data, tuple(path.parent / p for p in data.get("plots", [])))
