"""What every benchmark does last: write its JSON report (benchmarks/*.py import this as a sibling)."""

import json
from pathlib import Path


def write_report(path: Path, report: dict) -> None:
    """Write `report` as JSON to `path` (folders made as needed) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {path}")
