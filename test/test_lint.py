"""The tree passes the project's linter (ruff, pinned in requirements.txt, rules in ruff.toml)."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_passes():
    ruff = Path(sys.executable).with_name("ruff")
    exe = str(ruff) if ruff.is_file() else shutil.which("ruff")
    assert exe, "ruff is not installed (re-run scripts/setup.sh: it is pinned in requirements.txt)"
    result = subprocess.run([exe, "check", "--no-cache", "--output-format", "concise", "."], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"ruff check found problems (fix them or `ruff check --fix`):\n{result.stdout[-4000:]}"
