"""Add golden outputs to an existing model folder (one exported before they existed, or one without
a checkpoint to re-export, like the bundled models/default):

    .venv/bin/python -m moe_vla_ros.export.golden models/default

Runs the folder's fp32 graphs (first formulation the folder has, ONNX Runtime on the CPU) on
GOLDEN_OBSERVATIONS seeded observations of the contract's size (runtime/sample_observations.py),
writes golden.npz and adds the manifest's `golden` entry and the file's sha256. The reference is
the fp32 ONNX graph output, not torch (as for folders exported with it, export/pipeline.py). The
other files and the model id are unchanged. numpy + onnxruntime only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import onnxruntime as ort

from moe_vla_ros.cli import run_tool, tool_parser
from moe_vla_ros.errors import BadInputError
from moe_vla_ros.runtime.config import CPU_PROVIDER, RuntimeConfig
from moe_vla_ros.runtime.golden import GOLDEN_FILE, GOLDEN_OBSERVATIONS, GOLDEN_SEED, write_golden
from moe_vla_ros.runtime.manifest import read_manifest, sha256_file
from moe_vla_ros.runtime.onnx_policy import OnnxRuntimePolicy
from moe_vla_ros.runtime.providers import cpu_description
from moe_vla_ros.runtime.sample_observations import random_observations


def add_golden(model_dir: str | os.PathLike, count: int = GOLDEN_OBSERVATIONS, seed: int = GOLDEN_SEED,
               note: str = "") -> dict[str, Any]:
    """Write golden.npz into `model_dir` and list it in its manifest (see the module docstring)."""
    root = Path(model_dir)
    manifest = read_manifest(root)
    formulation = manifest.formulations()[0]
    cfg = RuntimeConfig(providers=(CPU_PROVIDER,), formulation=formulation, report_placement=False)
    policy = OnnxRuntimePolicy.load(root, cfg)
    try:
        observations = random_observations(manifest.contract, count, seed=seed)
        reference = (f"fp32 ONNX graphs ({formulation}) run by ONNX Runtime {ort.__version__} on the CPU (not torch), "
                     f"added to the folder after export by moe_vla_ros.export.golden (seed {seed})"
                     + (f"; {note}" if note else ""))
        entry = write_golden(root, policy, observations, reference)
    finally:
        policy.close()
    entry["made_on"] = {k: v for k, v in cpu_description().items() if k in ("machine", "cpu_model", "int8_kernel")}
    manifest.golden = entry
    manifest.files[GOLDEN_FILE] = sha256_file(root / GOLDEN_FILE)
    manifest.write(root)
    return entry


PROG = "python -m moe_vla_ros.export.golden"  # a module, not an installed script


def main(argv: list[str] | None = None) -> int:
    """Exit 0 written, 2 bad arguments or model folder, 1 failed; errors on stderr."""
    return run_tool(PROG, lambda: _run(argv))


def _run(argv: list[str] | None) -> int:
    parser = tool_parser(PROG, __doc__)
    parser.add_argument("model_dir", help="exported model folder to add golden.npz to")
    parser.add_argument("--observations", type=int, default=GOLDEN_OBSERVATIONS, help="seeded observations (default %(default)s)")
    parser.add_argument("--seed", type=int, default=GOLDEN_SEED, help="seed of the observations (default %(default)s)")
    args = parser.parse_args(argv)
    if args.observations < 1:
        raise BadInputError(f"--observations must be at least 1, got {args.observations}")
    entry = add_golden(args.model_dir, args.observations, args.seed)
    print(f"{args.model_dir}/{entry['file']}: {entry['observations']} observations, sha256 {entry['sha256'][:16]}...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
