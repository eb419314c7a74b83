"""The export command: checkpoint -> verified ONNX model folder.

    moe_vla_export --checkpoint runs/ckpt --out models/demo [--formulations sparse,dense]
                   [--opset 18] [--int8] [--fp16] [--tolerance 1e-4] [--name demo] [--force]

Exit status 0 on success, 1 when the export or its verification failed (the reason is printed;
nothing is written to --out), 2 on bad arguments (also a missing checkpoint folder or a non-empty
--out without --force).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from moe_vla_ros.cli import add_output_argument, bad_input, run_tool, tool_parser
from moe_vla_ros.errors import BadInputError
from moe_vla_ros.export.config import INT8_SCHEME_CHOICES, ExportConfig, QuantizationGate
from moe_vla_ros.runtime.manifest import Manifest

PROG = "moe_vla_export"


def build_parser() -> argparse.ArgumentParser:
    defaults = ExportConfig()
    p = tool_parser(PROG, "Export a MoE-VLA checkpoint to ONNX graphs (sparse CPU and dense TensorRT-ready expert "
                    "layers), verify them against PyTorch and write a model folder with manifest.json.",
                    formatter_class=argparse.HelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="checkpoint folder (config.json, model.safetensors, tokenizer)")
    add_output_argument(p, "model folder to write (must be empty unless --force)")
    p.add_argument("--formulations", default=",".join(defaults.formulations),
                   help="MoE formulations to export, comma-separated: sparse (CPU), dense (TensorRT)")
    p.add_argument("--opset", type=int, default=defaults.opset, help="ONNX opset (18..21)")
    p.add_argument("--int8", action="store_true", help="also make gated int8 (dynamic MatMul) variants")
    p.add_argument("--int8-scheme", choices=INT8_SCHEME_CHOICES, default=defaults.int8_scheme,
                   help="int8 weight quantisation (7-bit weights: no int16 saturation on AVX2 CPUs)")
    p.add_argument("--fp16", action="store_true", help="also make gated fp16 variants of the dense graphs")
    p.add_argument("--tolerance", type=float, default=defaults.tolerance, help="max |torch - ORT| per graph output")
    p.add_argument("--action-tolerance", type=float, default=defaults.action_tolerance,
                   help="max |torch policy - ORT policy| action (rad)")
    p.add_argument("--int8-max-action-error", type=float, default=defaults.int8_gate.max_action_error)
    p.add_argument("--int8-min-router-agreement", type=float, default=defaults.int8_gate.min_router_agreement)
    p.add_argument("--fp16-max-action-error", type=float, default=defaults.fp16_gate.max_action_error)
    p.add_argument("--fp16-min-router-agreement", type=float, default=defaults.fp16_gate.min_router_agreement)
    p.add_argument("--name", default="", help="model name (default: the checkpoint folder's name)")
    p.add_argument("--no-checkpoint", action="store_true", help="do not copy the checkpoint (no torch backend then)")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out (atomically, after verification)")
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed of the verification inputs")
    return p


def config_from_args(args: argparse.Namespace) -> ExportConfig:
    return ExportConfig(
        name=args.name,
        formulations=tuple(f.strip() for f in args.formulations.split(",") if f.strip()),
        opset=args.opset, keep_checkpoint=not args.no_checkpoint, force=args.force,
        tolerance=args.tolerance, action_tolerance=args.action_tolerance, seed=args.seed,
        int8=args.int8, int8_scheme=args.int8_scheme, fp16=args.fp16,
        int8_gate=QuantizationGate(args.int8_max_action_error, args.int8_min_router_agreement),
        fp16_gate=QuantizationGate(args.fp16_max_action_error, args.fp16_min_router_agreement),
    )


def summary(manifest: Manifest, out: Path) -> str:
    lines = [f"exported {manifest.model_id} to {out}"]
    for g in manifest.graphs:
        lines.append(f"  {g.file:34s} {g.stage:12s} {g.formulation:7s} {g.precision}")
    trt = {f: r.get("unsupported", []) for f, r in manifest.verification.get("tensorrt", {}).items()}
    outside = {f: u for f, u in trt.items() if u}
    if trt:
        lines.append("  TensorRT 10 parses every graph whole" if not outside else
                     "  TensorRT 10 cannot parse: " + "; ".join(f"{f}: {', '.join(u)}" for f, u in outside.items()))
    for formulation, r in manifest.verification.get("policy_parity", {}).items():
        lines.append(f"  parity {formulation}: max action error {r['max_action_error']:.2e} rad, "
                     f"reasoning identical {r['reasoning_identical']}/{r['observations']}"
                     + (f" ({r['reasoning_tied']} differ at a near-tie)" if r.get("reasoning_tied") else ""))
    for v in manifest.variants:
        m = v["metrics"]
        lines.append(f"  {v['formulation']}/{v['precision']}: {'kept' if v['kept'] else 'DROPPED'} "
                     f"(max action error {m['max_action_error']:.3g} rad, router agreement {m['router_agreement']:.3f}, "
                     f"reasoning agreement {m['reasoning_agreement']:.2f})")
        if "scheme" in v or "gated_on" in v:
            hw = v.get("gated_on", {})
            lines.append(f"    scheme {v.get('scheme', {}).get('name', '-')}, gated on {hw.get('cpu_model', '?')} "
                         f"({hw.get('int8_kernel', '?')}), onnxruntime {hw.get('onnxruntime', '?')}")
    return "\n".join(lines)


def check_paths(checkpoint: Path, out: Path, force: bool) -> None:
    """The input checks that need no torch: BadInputError for a missing checkpoint folder or a
    non-empty `out` without `force` (export_policy checks the same, as an ExportError)."""
    if not checkpoint.is_dir():
        raise BadInputError(f"checkpoint folder {checkpoint} does not exist")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise BadInputError(f"output folder {out} is not empty; pass --force to replace it")


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(PROG, lambda: _run(argv))


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("moe_vla_ros").setLevel(logging.INFO)
    with bad_input():
        cfg = config_from_args(args)
    check_paths(args.checkpoint, args.out, cfg.force)
    from moe_vla_ros.export.pipeline import export_policy  # torch: only after --help / argument errors

    manifest = export_policy(args.checkpoint, args.out, cfg)  # ExportError: failed (exit 1)
    print(summary(manifest, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
