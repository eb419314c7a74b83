"""PNG plots of a training run (matplotlib, Agg backend: no display needed).

* loss_curves.png  - training loss terms per step (log scale) and held-out action error, with
                     the upcycling step marked;
* expert_usage.png - one heatmap per MoE layer: expert load (fraction of routed tokens) at
                     every evaluation of the MoE-tuning stage.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def plot_loss_curves(records: Sequence[dict[str, Any]], path: str | os.PathLike, upcycle_step: int | None) -> Path:
    """Training terms (kind "train") and eval action error (kind "eval") -> PNG at `path`."""
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    fig, (ax_loss, ax_eval) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [r["step"] for r in train]
    for key in ("loss", "action_loss", "reasoning_loss", "moe_aux"):
        points = [(s, r[key]) for s, r in zip(steps, train) if r[key] > 0]  # moe_aux is 0 before upcycling
        if points:
            ax_loss.plot(*zip(*points), label=key)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_title("training loss")
    for key, label in (("action_l1_rad", "with reasoning"), ("action_l1_rad_no_reasoning", "no reasoning")):
        if evals:
            ax_eval.plot([r["step"] for r in evals], [r[key] for r in evals], marker="o", label=label)
    ax_eval.set_xlabel("step")
    ax_eval.set_ylabel("rad")
    ax_eval.set_title("held-out action L1")
    for ax in (ax_loss, ax_eval):
        if upcycle_step is not None:
            ax.axvline(upcycle_step, color="grey", linestyle="--", linewidth=1, label="upcycle")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_expert_usage(usage: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Heatmaps of expert load per MoE layer over evaluations -> PNG at `path`.

    `usage` rows: {"step", "trunk_expert_load": [M][E], "action_head_expert_load": [M][E]} and
    optionally "trunk_moe_layers" / "action_head_moe_layers" (block index of each of the M layers).
    """
    panels: list[tuple[str, np.ndarray]] = []
    steps = [r["step"] for r in usage]
    for part, label in (("trunk", "trunk"), ("action_head", "action head")):
        loads = [r[f"{part}_expert_load"] for r in usage if r.get(f"{part}_expert_load")]
        if not loads:
            continue
        stacked = np.asarray(loads)  # [evals, M, E]
        blocks = usage[-1].get(f"{part}_moe_layers") or list(range(stacked.shape[1]))
        for m in range(stacked.shape[1]):
            panels.append((f"{label} block {blocks[m]} (MoE)", stacked[:, m, :]))
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(3.2 * max(len(panels), 1), 3.6), squeeze=False)
    if not panels:
        axes[0, 0].text(0.5, 0.5, "no MoE evaluations", ha="center", va="center")
        axes[0, 0].set_axis_off()
    for ax, (title, load) in zip(axes[0], panels):
        image = ax.imshow(load, aspect="auto", cmap="viridis", vmin=0.0, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("expert")
        ax.set_ylabel("eval step")
        ax.set_xticks(range(load.shape[1]))
        ticks = np.linspace(0, len(load) - 1, min(len(load), 6)).round().astype(int)
        ax.set_yticks(ticks)
        ax.set_yticklabels([str(steps[-len(load):][i]) for i in ticks])
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
