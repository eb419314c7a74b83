"""PNG plots of a bag evaluation (matplotlib, Agg backend: no display needed).

* trajectories.png   per joint: the recorded actions (reference), the measured joint states and
                     the policy's executed commands over time;
* error_over_time.png  |executed command - recorded action| (mean over joints) over time, and
                     the mean error per chunk step (executed points; raw chunks offline);
* expert_usage.png   per MoE layer: each expert's share of routed tokens at every inference.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from moe_vla_ros.evaluation.bag.metrics import usage_series
from moe_vla_ros.evaluation.bag.records import Reference, RunRecords


def plot_trajectories(path: Path, records: RunRecords, reference: Reference, times: np.ndarray,
                      positions: np.ndarray) -> Path:
    names, t0 = records.joint_names, records.start_s
    grid = np.arange(records.start_s, records.end_s + 1e-9, records.control_period_s / 2)
    targets, valid = reference.targets(grid)
    targets[~valid] = np.nan
    rows = int(math.ceil(len(names) / 2))
    fig, axes = plt.subplots(rows, 2, figsize=(12, 2.2 * rows), sharex=True, squeeze=False)
    span = (reference.joint_times_s >= records.start_s) & (reference.joint_times_s <= records.end_s)
    joint_t, joint_q = reference.joint_times_s[span], reference.joint_positions[span]
    gaps = np.flatnonzero(np.diff(joint_t) > reference.max_gap_s) + 1  # break the line where nothing was recorded
    joint_t, joint_q = np.insert(joint_t, gaps, np.nan), np.insert(joint_q, gaps, np.nan, axis=0)
    for j, ax in enumerate(axes.flat):
        if j >= len(names):
            ax.set_visible(False)
            continue
        ax.plot(joint_t - t0, joint_q[:, j], color="0.7", lw=1, label="joint state")
        ax.plot(grid - t0, targets[:, j], color="tab:blue", lw=1.2, label="recorded action")
        if times.size:
            ax.plot(times - t0, positions[:, j], ".", color="tab:orange", ms=2.5, label="policy command")
        ax.set_ylabel(names[j])
    axes.flat[0].legend(loc="upper right", fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("time since bag start (s)")
    fig.suptitle("policy commands vs recorded actions")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_errors(path: Path, records: RunRecords, metrics: dict, times: np.ndarray, errors: np.ndarray) -> Path:
    fig, (ax_t, ax_k) = plt.subplots(1, 2, figsize=(12, 3.5), gridspec_kw={"width_ratios": [2, 1]})
    finite = np.all(np.isfinite(errors), axis=1) if errors.size else np.zeros(0, bool)
    if finite.any():
        ax_t.plot(times[finite] - records.start_s, np.abs(errors[finite]).mean(axis=1), ".", ms=2.5)
    ax_t.set_xlabel("time since bag start (s)")
    ax_t.set_ylabel("mean |error| over joints")
    ax_t.set_title("executed command error over time")
    for key, label in (("action_error", "executed"), ("chunk_error", "raw chunk")):
        steps = metrics.get(key, {}).get("per_step_mae") or []
        points = [(k, v) for k, v in enumerate(steps) if v is not None]
        if points:
            ax_k.plot(*zip(*points), marker="o", ms=3, label=label)
    ax_k.set_xlabel("chunk step")
    ax_k.set_ylabel("mean |error|")
    ax_k.set_title("error per chunk step")
    ax_k.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_expert_usage(path: Path, records: RunRecords) -> Path | None:
    series = usage_series(records.usage)
    if not series:
        return None
    fig, axes = plt.subplots(len(series), 1, figsize=(10, 2.4 * len(series)), sharex=True, squeeze=False)
    for ax, (layer, (times, loads)) in zip(axes[:, 0], series.items()):
        ax.stackplot(times - records.start_s, loads.T, labels=[f"expert {e}" for e in range(loads.shape[1])])
        ax.set_ylim(0, 1)
        ax.set_ylabel("load")
        ax.set_title(layer, fontsize=9)
        ax.legend(loc="upper right", fontsize=6, ncol=loads.shape[1])
    axes[-1, 0].set_xlabel("time since bag start (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_plots(out: Path, records: RunRecords, reference: Reference, scores) -> list[Path]:
    """Every plot of the report into `out`; returns the files written."""
    plots = [
        plot_trajectories(out / "trajectories.png", records, reference, scores.executed_times,
                          scores.executed_positions),
        plot_errors(out / "error_over_time.png", records, scores.metrics, scores.executed_times,
                    scores.executed_errors),
        plot_expert_usage(out / "expert_usage.png", records),
    ]
    return [p for p in plots if p is not None]
