"""Time one MoE layer on CPU (torch eager): sparse vs dense formulation vs an equal-compute dense FFN.

Two sweeps, median wall time of repeated forward passes after warm-up, torch.no_grad, 2 threads:

1. token scaling: T in (64, 256, 1024) tokens (batch 1) with E experts top-k, against a DenseFFN
   with the same ACTIVE parameters (hidden width d_hidden * k);
2. expert scaling: E in (4, 8, 16, 32) at fixed top-k and T. The sparse form runs each token
   through k experts only, so it should stay near-flat; the dense form runs all E.

Prints a table and writes JSON (default build/benchmarks/moe_layer.json).

    .venv/bin/python benchmarks/bench_moe_layer.py --quick
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from moe_vla_ros.model.moe import DenseFFN, MoEConfig, MoELayer


def median_ms(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    """Median wall time of fn() in milliseconds after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def time_moe(cfg: MoEConfig, tokens: int, warmup: int, repeats: int) -> dict[str, float]:
    """Median ms of the sparse and dense formulations of one layer on x [1, tokens, d_model]."""
    torch.manual_seed(0)
    layer = MoELayer(cfg).eval()
    torch.nn.init.normal_(layer.router.weight, std=1.0)  # a trained-looking, uneven router
    x = torch.randn(1, tokens, cfg.d_model)
    result = {}
    with torch.no_grad():
        for formulation in ("sparse", "dense"):
            result[f"{formulation}_ms"] = median_ms(lambda: layer(x, formulation=formulation), warmup, repeats)
    return result


def time_dense_ffn(cfg: MoEConfig, tokens: int, warmup: int, repeats: int) -> float:
    """Median ms of a DenseFFN with the MoE layer's active width (d_hidden * top_k)."""
    torch.manual_seed(0)
    ffn = DenseFFN(cfg.d_model, cfg.d_hidden * cfg.top_k, cfg.activation).eval()
    x = torch.randn(1, tokens, cfg.d_model)
    with torch.no_grad():
        return median_ms(lambda: ffn(x), warmup, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repeats (a smoke run, noisier numbers)")
    parser.add_argument("--out", type=Path, default=Path("build/benchmarks/moe_layer.json"), help="JSON output path")
    parser.add_argument("--d-model", type=int, default=384)
    parser.add_argument("--d-hidden", type=int, default=768, help="hidden width of one expert")
    parser.add_argument("--experts", type=int, default=8, help="experts in the token sweep")
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--activation", default="gelu", choices=["gelu", "gelu_tanh", "geglu", "swiglu"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    warmup, repeats = (2, 7) if args.quick else (10, 50)
    token_counts = (64, 256, 1024)
    expert_counts = (4, 8, 16, 32)
    sweep_tokens = 256

    def config(num_experts: int) -> MoEConfig:
        return MoEConfig(args.d_model, args.d_hidden, num_experts=num_experts, top_k=args.top_k,
                         activation=args.activation)

    print(f"MoE layer, d_model={args.d_model}, expert d_hidden={args.d_hidden}, top-{args.top_k}, "
          f"{args.activation}, torch {torch.__version__} eager CPU, {args.threads} threads, "
          f"median of {repeats} after {warmup} warm-up (ms)")
    print(f"\n1) tokens, E={args.experts}   dense FFN has hidden {args.d_hidden * args.top_k} (same active params)")
    print(f"{'T':>6} {'sparse':>9} {'dense':>9} {'dense FFN':>10} {'sparse/FFN':>11} {'dense/FFN':>10}")
    token_rows = []
    for tokens in token_counts:
        row = {"tokens": tokens, **time_moe(config(args.experts), tokens, warmup, repeats)}
        row["dense_ffn_ms"] = time_dense_ffn(config(args.experts), tokens, warmup, repeats)
        token_rows.append(row)
        print(f"{tokens:>6} {row['sparse_ms']:>9.2f} {row['dense_ms']:>9.2f} {row['dense_ffn_ms']:>10.2f} "
              f"{row['sparse_ms'] / row['dense_ffn_ms']:>11.2f} {row['dense_ms'] / row['dense_ffn_ms']:>10.2f}")

    print(f"\n2) experts, T={sweep_tokens}, top-{args.top_k}")
    print(f"{'E':>6} {'sparse':>9} {'dense':>9} {'dense/sparse':>13}")
    expert_rows = []
    for num_experts in expert_counts:
        row = {"num_experts": num_experts, **time_moe(config(num_experts), sweep_tokens, warmup, repeats)}
        expert_rows.append(row)
        print(f"{num_experts:>6} {row['sparse_ms']:>9.2f} {row['dense_ms']:>9.2f} "
              f"{row['dense_ms'] / row['sparse_ms']:>13.2f}")

    result = {
        "benchmark": "moe_layer",
        "quick": args.quick,
        "d_model": args.d_model,
        "d_hidden": args.d_hidden,
        "top_k": args.top_k,
        "activation": args.activation,
        "threads": args.threads,
        "warmup": warmup,
        "repeats": repeats,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "token_sweep": {"num_experts": args.experts, "rows": token_rows},
        "expert_sweep": {"tokens": sweep_tokens, "rows": expert_rows},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
