"""Figures of an evaluation report (PNG through matplotlib's Agg canvas; no display, no pyplot)
and the camera GIF of one episode (imageio).

    paths = write_plots(report, showcase_record, out_dir, gif=True)

  success_per_task.png   success rate per task family, policy beside the scripted expert
  expert_usage.png       mean expert load per task family: a layer x expert heatmap each
  failure_phases.png     failed episodes per task family, split by the phase of their last trace
                         (written when an episode failed)
  joint_trajectory.png   one episode: commanded trajectories vs measured joint positions
  episode_front.gif      that episode's front camera (with frame_strip.png, a few frames side by side)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from moe_vla_ros.evaluation.sim.metrics import OVERALL
from moe_vla_ros.evaluation.sim.records import EpisodeRecord

GIF_FPS = 10.0


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)
    return path


def plot_success(report: Mapping[str, Any], path: str | Path) -> Path:
    """Grouped bars: success rate [%] per task family and overall, policy vs scripted expert."""
    success = report["success"]
    families = [k for k in success["policy"] if k != OVERALL] + [OVERALL]
    x = np.arange(len(families))
    sources = [s for s in ("policy", "expert") if s in success]
    fig = Figure(figsize=(1.6 + 1.4 * len(families), 3.6), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(sources)
    for i, source in enumerate(sources):
        rates = [100 * success[source].get(f, {}).get("rate", np.nan) for f in families]
        bars = ax.bar(x + (i - (len(sources) - 1) / 2) * width, rates, width, label=source)
        labels = [f"{success[source][f]['successes']}/{success[source][f]['episodes']}" if f in success[source] else ""
                  for f in families]
        ax.bar_label(bars, labels=labels, fontsize=8)
    ax.set_xticks(x, families)
    ax.set_ylim(0, 115)
    ax.set_ylabel("success [%]")
    ax.set_title("Closed-loop success per task")
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, Path(path))


def plot_expert_usage(report: Mapping[str, Any], path: str | Path) -> Path:
    """One heatmap per task family: rows = MoE layers, columns = experts, colour = mean load."""
    per_task: Mapping[str, Mapping[str, Sequence[float]]] = report["expert_usage"]["per_task"]
    families = list(per_task) or ["(no chunks)"]
    fig = Figure(figsize=(1.0 + 4.2 * len(families), 3.6), layout="constrained")
    axes = fig.subplots(1, len(families), squeeze=False)[0]
    image = None
    for ax, family in zip(axes, families):
        layers = per_task.get(family, {})
        names = list(layers)
        width = max((len(v) for v in layers.values()), default=1)
        grid = np.full((max(len(names), 1), width), np.nan)  # [layers, experts], NaN where a layer has fewer
        for row, name in enumerate(names):
            grid[row, : len(layers[name])] = layers[name]
        image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        for (row, col), value in np.ndenumerate(grid):
            if np.isfinite(value):
                ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if value < 0.5 else "black")
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_xticks(range(width))
        ax.set_xlabel("expert")
        ax.set_title(family)
    fig.colorbar(image, ax=list(axes), label="mean expert load")
    divergence = report["expert_usage"]["divergence"]
    if divergence:
        pair, layers = next(iter(divergence.items()))
        tv = max((d["tv"] for d in layers.values()), default=float("nan"))
        fig.suptitle(f"Expert usage per task ({pair}: max TV {tv:.3f})", fontsize=10)
    return _save(fig, Path(path))


def plot_failure_phases(report: Mapping[str, Any], path: str | Path) -> Path:
    """One stacked bar per task family: its failed episodes, split by the phase their last
    reasoning trace names (where the policy believed it was when time ran out)."""
    table: Mapping[str, Mapping[str, int]] = report["failures"]["by_last_phase"]
    families = list(table)
    phases = list(dict.fromkeys(p for counts in table.values() for p in counts))
    fig = Figure(figsize=(7.5, 1.2 + 0.6 * max(len(families), 1)), layout="constrained")
    ax = fig.add_subplot()
    left = np.zeros(len(families))
    for k, phase in enumerate(phases):
        counts = np.array([table[f].get(phase, 0) for f in families], dtype=float)
        bars = ax.barh(families, counts, left=left, color=f"C{k % 10}", label=phase)
        ax.bar_label(bars, labels=[str(int(c)) if c else "" for c in counts], label_type="center", fontsize=8)
        left += counts
    ax.invert_yaxis()
    ax.set_xlabel("failed episodes")
    ax.set_title("Where failed episodes ended: the phase of the last reasoning trace", fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _save(fig, Path(path))


def plot_joint_trajectory(record: EpisodeRecord, path: str | Path) -> Path:
    """Per joint: measured position (joint_states) and every commanded trajectory's points."""
    names = record.joint_names or [f"joint {i}" for i in range(len(record.joint_positions[0]))]
    cols = 2
    rows = (len(names) + cols - 1) // cols
    fig = Figure(figsize=(10, 1.9 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    t_meas = np.asarray(record.joint_times) - record.start_s
    q_meas = np.asarray(record.joint_positions).reshape(len(t_meas), -1)  # [T, J]
    for j, (ax, name) in enumerate(zip(axes, names)):
        for k, traj in enumerate(record.trajectories):
            ax.plot(traj.point_times() - record.start_s, np.asarray(traj.positions)[:, j], color=f"C{1 + k % 2}",
                    lw=0.8, alpha=0.8, label="commanded (chunks)" if k == 0 else None)
        ax.plot(t_meas, q_meas[:, j], color="C0", lw=1.4, label="measured")
        ax.set_title(name, fontsize=9)
        ax.set_xlim(min(0.0, float(t_meas[0])) if t_meas.size else 0.0, max(record.duration_s, 0.1))
        ax.tick_params(labelsize=7)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, loc="best")
    outcome = "success" if record.success else "failure"
    fig.suptitle(f"episode {record.index}: {record.instruction!r} ({outcome}); time [s] since activation", fontsize=10)
    return _save(fig, Path(path))


def write_gif(frames: Sequence[np.ndarray], path: str | Path, fps: float = GIF_FPS) -> Path:
    """Animated GIF of RGB uint8 frames [H, W, 3], looping."""
    import imageio.v3 as iio

    if not frames:
        raise ValueError("no frames to write")
    iio.imwrite(path, np.stack(frames), duration=1000.0 / fps, loop=0)
    return Path(path)


def write_strip(frames: Sequence[np.ndarray], path: str | Path, count: int = 8) -> Path:
    """`count` frames evenly spread over the episode, side by side, as one PNG."""
    import imageio.v3 as iio

    if not frames:
        raise ValueError("no frames to write")
    picks = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    iio.imwrite(path, np.concatenate([frames[i] for i in picks], axis=1))
    return Path(path)


def write_plots(report: Mapping[str, Any], showcase: EpisodeRecord | None, out_dir: str | Path,
                gif: bool = True) -> dict[str, Path]:
    """Every figure under `out_dir`; the trajectory plot and GIF show `showcase` (if given)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"success_plot": plot_success(report, out_dir / "success_per_task.png"),
             "expert_usage_plot": plot_expert_usage(report, out_dir / "expert_usage.png")}
    if report.get("failures", {}).get("by_last_phase"):
        paths["failure_phases_plot"] = plot_failure_phases(report, out_dir / "failure_phases.png")
    if showcase is not None and showcase.joint_positions:
        paths["joint_trajectory_plot"] = plot_joint_trajectory(showcase, out_dir / "joint_trajectory.png")
    if gif and showcase is not None and showcase.frames:
        paths["gif"] = write_gif(showcase.frames, out_dir / "episode_front.gif")
        paths["frame_strip"] = write_strip(showcase.frames, out_dir / "frame_strip.png")
    return paths
