"""Resumable training: the state `moe_vla_train --save-every N` writes and `--resume` continues from.

Every `save_every` steps the run writes `resume_state.pt` into its output folder (atomically: a
temporary file renamed over the old one): the model's and the optimizer's state, where the run
is (stage, steps done in total and in the stage), every random generator the run draws from
(torch's global one, augmentation, instruction variants; the batch order is drawn again) and how many log lines
were written. Resuming rebuilds the run from the same settings, loads that state, cuts the logs
back to the saved lines and goes on: on CPU, with the same number of threads, the finished model
is the same, bit for bit, as an uninterrupted run's. The file is removed once the checkpoint is written.

Settings that change the result must equal the saved run's (`RESULT_FIELDS`: everything but
`RUNTIME_FIELDS`); the others (progress bar, threads, how often to save) may differ.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from moe_vla_ros.errors import BadInputError
from moe_vla_ros.training.train_config import TrainConfig

STATE_FILE = "resume_state.pt"
RUNTIME_FIELDS = ("progress", "overwrite", "resume", "save_every", "num_threads", "reuse_backbone_features",
                  "feature_cache_dir")
RESULT_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in RUNTIME_FIELDS)


@dataclasses.dataclass
class TrainingState:
    """Where a run is and everything needed to continue it.

    Attributes:
        config: the run's TrainConfig.to_dict().
        stage: the stage in progress (training/stages.py STAGE_*).
        step: optimizer steps done in total.
        stage_step: optimizer steps done in `stage`.
        model: the model's state_dict.
        optimizer: the stage's optimizer state_dict.
        generators: {name: torch generator state} of the run's random generators.
        log_lines: {log file name: lines written}.
    """

    config: dict[str, Any]
    stage: str
    step: int
    stage_step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    generators: dict[str, torch.Tensor]
    log_lines: dict[str, int]


def save_state(out_dir: Path, state: TrainingState) -> Path:
    """Write `state` to out_dir/STATE_FILE atomically; returns the path."""
    path = Path(out_dir) / STATE_FILE
    tmp = path.with_suffix(".tmp")
    torch.save(dataclasses.asdict(state), tmp)
    os.replace(tmp, path)
    return path


def load_state(out_dir: Path, cfg: TrainConfig) -> TrainingState | None:
    """The state saved in `out_dir` (None: there is none), checked against `cfg`: a setting in
    RESULT_FIELDS that differs from the saved run's is refused (BadInputError naming it)."""
    path = Path(out_dir) / STATE_FILE
    if not path.exists():
        return None
    try:
        state = TrainingState(**torch.load(path, map_location="cpu", weights_only=True))
    except Exception as error:  # a truncated or foreign file: say which
        raise BadInputError(f"cannot resume from {path}: {type(error).__name__}: {error}") from error
    current = cfg.to_dict()
    differ = [name for name in RESULT_FIELDS if state.config.get(name) != current.get(name)]
    if differ:
        details = ", ".join(f"{n}: saved {state.config.get(n)!r}, now {current.get(n)!r}" for n in differ)
        raise BadInputError(f"cannot resume {path}: the run was started with other settings ({details})")
    return state


def truncate_lines(path: Path, lines: int) -> list[str]:
    """Keep the first `lines` lines of the text file `path` (what a resumed run's log had at the
    save); returns them (none when there is no file)."""
    if not path.exists():
        return []
    with open(path) as f:
        kept = [line for _, line in zip(range(lines), f)]
    path.write_text("".join(kept))
    return kept


def remove_state(out_dir: Path) -> None:
    (Path(out_dir) / STATE_FILE).unlink(missing_ok=True)
