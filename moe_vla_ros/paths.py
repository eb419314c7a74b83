"""Where installed data lives: the bundled model and config files, for a colcon install
(share/moe_vla_ros under an AMENT_PREFIX_PATH entry), a pip/venv install (share/ under the
interpreter prefix) and a source checkout (the repository itself)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = "moe_vla_ros"
DEFAULT_MODEL_NAME = "default"
REPO_ROOT = Path(__file__).resolve().parents[1]


def share_dirs() -> list[Path]:
    """Candidate share/moe_vla_ros folders, most specific first; only existing ones."""
    candidates = [Path(p) / "share" / PACKAGE for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    candidates += [Path(sys.prefix) / "share" / PACKAGE, REPO_ROOT]
    seen, found = set(), []
    for c in candidates:
        if c.is_dir() and c not in seen:
            seen.add(c)
            found.append(c)
    return found


def find_share_file(*parts: str) -> Path:
    """A file or folder under share/moe_vla_ros (e.g. "config", "policy.yaml"); FileNotFoundError
    listing where it looked."""
    dirs = share_dirs()
    for d in dirs:
        path = d.joinpath(*parts)
        if path.exists():
            return path
    raise FileNotFoundError(f"{'/'.join(parts)} not found under any of {[str(d) for d in dirs]}")


def bundled_model_dir(name: str = DEFAULT_MODEL_NAME) -> Path:
    """The model folder shipped with the package (models/<name>)."""
    return find_share_file("models", name)
