"""Time one MoE layer on CPU (torch eager and ONNX Runtime): sparse vs dense formulation vs an equal-compute dense FFN.

Two sweeps, median wall time of repeated forward passes after warm-up, torch.no_grad, --threads
(torch and ORT intra-op; use 1 on a shared 2-core machine). With --ort every layer and FFN is
also exported (torch.onnx dynamo, opset 18) and timed with ONNX Runtime CPU (level ALL), which
is what the robot runs:

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
import logging
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

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


class _Output(nn.Module):
    """x [1, T, D] -> the layer's output only (what an exported stage graph computes of it)."""

    def __init__(self, module: nn.Module, formulation: str | None = None) -> None:
        super().__init__()
        self.module, self.formulation = module, formulation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.formulation is None:
            return self.module(x)  # [1, T, D]
        return self.module(x, formulation=self.formulation).output  # [1, T, D]


def interleaved_ms(fns: dict[str, Callable[[], object]], warmup: int, repeats: int) -> dict[str, float]:
    """Median ms of each fn, timed in turns (one call of each per round) so load drift on a shared
    machine hits every variant alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def ort_runner(module: nn.Module, x: torch.Tensor, threads: int) -> Callable[[], object]:
    """`module` exported to ONNX and loaded in ONNX Runtime CPU: a callable running it on x."""
    import onnxruntime as ort

    from moe_vla_ros.export.onnx_check import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "layer.onnx"
        export_onnx(module, (x,), path, input_names=["x"], output_names=["y"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"x": x.numpy()}
    want = module(x).numpy()
    got = session.run(None, feed)[0]
    assert np.abs(got - want).max() <= 1e-3 * max(1.0, float(np.abs(want).max())), "ORT differs from torch"
    return lambda: session.run(None, feed)


def combine_index_add(layer: MoELayer, tokens: torch.Tensor, routing) -> torch.Tensor:
    """The sparse combine before the scatter-free one (index_add -> ScatterND reduction=add), for comparison."""
    combine = routing.combine_weights.to(tokens.dtype)  # [N, E]
    out = torch.zeros_like(tokens)  # [N, D]
    for expert in range(layer.cfg.num_experts):
        token_idx = torch.where(routing.dispatch_mask[:, expert])[0]  # [n_e]
        expert_out = layer.experts.forward_one(expert, tokens[token_idx])  # [n_e, D]
        out = out.index_add(0, token_idx, expert_out * combine[token_idx, expert].unsqueeze(-1))  # [N, D]
    return out


def time_moe(cfg: MoEConfig, tokens: int, warmup: int, repeats: int, ort_threads: int = 0,
             index_add: bool = False) -> dict[str, float]:
    """Median ms of the sparse and dense formulations of one layer on x [1, tokens, d_model]
    (torch; and ONNX Runtime when ort_threads > 0; the former index_add sparse combine with
    `index_add`). Variants are timed in turns (interleaved_ms)."""
    torch.manual_seed(0)
    layer = MoELayer(cfg).eval()
    torch.nn.init.normal_(layer.router.weight, std=1.0)  # a trained-looking, uneven router
    x = torch.randn(1, tokens, cfg.d_model)
    fns: dict[str, Callable[[], object]] = {}
    with torch.no_grad():
        for formulation in ("sparse", "dense"):
            fns[f"{formulation}_ms"] = lambda f=formulation: layer(x, formulation=f)
            if ort_threads:
                fns[f"ort_{formulation}_ms"] = ort_runner(_Output(layer, formulation), x, ort_threads)
        if index_add:
            old = MoELayer(cfg).eval()
            old.load_state_dict(layer.state_dict())
            old._combine_sparse = lambda t, r: combine_index_add(old, t, r)  # this instance only
            fns["index_add_ms"] = lambda: old(x, formulation="sparse")
            if ort_threads:
                fns["ort_index_add_ms"] = ort_runner(_Output(old, "sparse"), x, ort_threads)
        return interleaved_ms(fns, warmup, repeats)


def time_dense_ffn(cfg: MoEConfig, tokens: int, warmup: int, repeats: int, ort_threads: int = 0) -> dict[str, float]:
    """Median ms of a DenseFFN with the MoE layer's active width (d_hidden * top_k)."""
    torch.manual_seed(0)
    ffn = DenseFFN(cfg.d_model, cfg.d_hidden * cfg.top_k, cfg.activation).eval()
    x = torch.randn(1, tokens, cfg.d_model)
    with torch.no_grad():
        fns: dict[str, Callable[[], object]] = {"dense_ffn_ms": lambda: ffn(x)}
        if ort_threads:
            fns["ort_dense_ffn_ms"] = ort_runner(_Output(ffn), x, ort_threads)
        return interleaved_ms(fns, warmup, repeats)


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
    parser.add_argument("--ort", action="store_true", help="also export each layer and time it with ONNX Runtime")
    parser.add_argument("--index-add", action="store_true",
                        help="also time the former index_add (ScatterND) sparse combine beside the current one")
    args = parser.parse_args()
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)  # torchvision notices

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
    ort_threads = args.threads if args.ort else 0
    ort_head = f" {'ORT sparse':>11} {'ORT dense':>10} {'ORT FFN':>8} {'ORT sp/FFN':>11}" if args.ort else ""

    if args.index_add:
        ort_head += f" {'idx_add':>8}" + (f" {'ORT idx_add':>12} {'ORT ia/FFN':>11}" if args.ort else "")

    def ort_cells(row: dict) -> str:
        cells = ""
        if args.ort:
            cells += (f" {row['ort_sparse_ms']:>11.2f} {row['ort_dense_ms']:>10.2f} {row['ort_dense_ffn_ms']:>8.2f} "
                      f"{row['ort_sparse_ms'] / row['ort_dense_ffn_ms']:>11.2f}")
        if args.index_add:
            cells += f" {row['index_add_ms']:>8.2f}"
            if args.ort:
                cells += f" {row['ort_index_add_ms']:>12.2f} {row['ort_index_add_ms'] / row['ort_dense_ffn_ms']:>11.2f}"
        return cells

    print(f"\n1) tokens, E={args.experts}   dense FFN has hidden {args.d_hidden * args.top_k} (same active params)")
    print(f"{'T':>6} {'sparse':>9} {'dense':>9} {'dense FFN':>10} {'sparse/FFN':>11} {'dense/FFN':>10}{ort_head}")
    token_rows = []
    for tokens in token_counts:
        row = {"tokens": tokens, **time_moe(config(args.experts), tokens, warmup, repeats, ort_threads, args.index_add)}
        row.update(time_dense_ffn(config(args.experts), tokens, warmup, repeats, ort_threads))
        token_rows.append(row)
        print(f"{tokens:>6} {row['sparse_ms']:>9.2f} {row['dense_ms']:>9.2f} {row['dense_ffn_ms']:>10.2f} "
              f"{row['sparse_ms'] / row['dense_ffn_ms']:>11.2f} {row['dense_ms'] / row['dense_ffn_ms']:>10.2f}"
              f"{ort_cells(row)}")

    print(f"\n2) experts, T={sweep_tokens}, top-{args.top_k} (dense FFN: hidden {args.d_hidden * args.top_k})")
    print(f"{'E':>6} {'sparse':>9} {'dense':>9} {'dense FFN':>10} {'sparse/FFN':>11} {'dense/sparse':>13}{ort_head}")
    expert_rows = []
    ffn = time_dense_ffn(config(expert_counts[0]), sweep_tokens, warmup, repeats, ort_threads)
    for num_experts in expert_counts:
        row = {"num_experts": num_experts, **time_moe(config(num_experts), sweep_tokens, warmup, repeats, ort_threads, args.index_add)}
        row.update(ffn)
        expert_rows.append(row)
        print(f"{num_experts:>6} {row['sparse_ms']:>9.2f} {row['dense_ms']:>9.2f} {row['dense_ffn_ms']:>10.2f} "
              f"{row['sparse_ms'] / row['dense_ffn_ms']:>11.2f} {row['dense_ms'] / row['sparse_ms']:>13.2f}"
              f"{ort_cells(row)}")

    result = {
        "benchmark": "moe_layer",
        "quick": args.quick,
        "d_model": args.d_model,
        "d_hidden": args.d_hidden,
        "top_k": args.top_k,
        "activation": args.activation,
        "threads": args.threads,
        "onnxruntime": args.ort,
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
