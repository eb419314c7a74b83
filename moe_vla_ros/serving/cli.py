"""Make a Triton Inference Server model repository from an exported model folder.

    moe_vla_triton_repository models/default -o build/triton_repo [--formulation dense]
        [--max-batch-size 8] [--max-queue-delay-us 2000] [--instances 1] [--instance-kind gpu]
        [--tensorrt-precision FP32 | --no-tensorrt] [--stand-in] [--force]

One onnxruntime-backend model per stage (TensorRT accelerator on the dense expert graphs,
dynamic batching where the graphs have a batch axis, instance groups) and "reasoning", the greedy
decode loop as one python-backend model. Graphs with a fixed batch of 1 (the bundled model)
get max_batch_size 0 (no batching), and the summary says why. Serve it with NVIDIA's Triton
image (`tritonserver --model-repository OUT`); robots use `model.backend: triton`.
Exit status 0 on success, 2 on bad input (a bad model folder, a non-empty --out without --force).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from moe_vla_ros.cli import add_output_argument, bad_input, run_tool, tool_parser
from moe_vla_ros.serving.triton_repository import RepositoryConfig, RepositoryReport, build_repository, with_stand_in

PROG = "moe_vla_triton_repository"


def build_parser() -> argparse.ArgumentParser:
    d = RepositoryConfig()
    p = tool_parser(PROG, __doc__)
    p.add_argument("model", type=Path, help="exported model folder (manifest.json)")
    add_output_argument(p, "repository folder to write (must be empty unless --force)")
    p.add_argument("--formulation", choices=("dense", "sparse"), default=d.formulation,
                   help="MoE expert graphs: dense (TensorRT-ready, the GPU choice) or sparse")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default=d.precision,
                   help="graph precision (a gated variant of the folder)")
    p.add_argument("--max-batch-size", type=int, default=d.max_batch_size,
                   help="largest dynamic batch (graphs with a batch axis); 0 = no batching")
    p.add_argument("--max-queue-delay-us", type=int, default=d.max_queue_delay_us,
                   help="how long the dynamic batcher waits to fill a batch")
    p.add_argument("--instances", type=int, default=d.instances, help="instances per model")
    p.add_argument("--instance-kind", choices=("gpu", "cpu"), default="gpu", help="where the instances run")
    p.add_argument("--tensorrt-precision", choices=("FP32", "FP16"), default=d.tensorrt_precision,
                   help="TensorRT accelerator precision of the dense expert graphs")
    p.add_argument("--no-tensorrt", action="store_true", help="no TensorRT accelerator (plain CUDA/CPU onnxruntime)")
    p.add_argument("--stand-in", action="store_true",
                   help="python-backend models running ONNX Runtime instead of the onnxruntime backend "
                        "(servers without it, e.g. the nvidia-pytriton wheel; CPU instances)")
    p.add_argument("--threads", type=int, default=d.intra_op_threads, help="ONNX Runtime threads per stand-in instance")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    return p


def config_from_args(args: argparse.Namespace) -> RepositoryConfig:
    cfg = RepositoryConfig(
        formulation=args.formulation, precision=args.precision, max_batch_size=args.max_batch_size,
        max_queue_delay_us=args.max_queue_delay_us, instances=args.instances,
        instance_kind="KIND_GPU" if args.instance_kind == "gpu" else "KIND_CPU", tensorrt=not args.no_tensorrt,
        tensorrt_precision=args.tensorrt_precision, intra_op_threads=args.threads,
    )
    return with_stand_in(cfg) if args.stand_in else cfg


def summary(report: RepositoryReport, out: Path) -> str:
    lines = [f"wrote the Triton repository of {report.model_id} to {out} ({report.formulation}, {report.precision}"
             f"{', python stand-ins' if report.stand_in else ''})"]
    for m in report.models.values():
        io = ", ".join(f"{t.name}{list(t.dims)}" for t in m.inputs) + " -> " + ", ".join(f"{t.name}{list(t.dims)}" for t in m.outputs)
        lines.append(f"  {m.name:18s} {m.backend:11s} max_batch_size {m.max_batch_size}: {io}")
    if report.batching_reason:
        lines.append(f"  no batching (max_batch_size 0): {report.batching_reason}")
    else:
        lines.append(f"  dynamic batching up to {report.max_batch_size} per stage model")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(PROG, lambda: _run(argv))


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    with bad_input():
        cfg = config_from_args(args)
    report = build_repository(args.model, args.out, cfg, force=args.force)
    print(summary(report, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
