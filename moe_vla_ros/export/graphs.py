"""The four stage graphs: tensor-only wrappers around MoEVLA's submodules and their export.

Every graph has a dynamic batch axis (symbolic dim "batch", `BATCH_DIM`; axis 2 of cross_kv) and
static shapes otherwise (token buffers are padded to the contract's lengths). The robot runs one
observation at a time (batch 1, the shapes below and in the manifest); a policy server batches
the requests of many robots (moe_vla_ros/serving/). MoE telemetry covers all N = B*S routed
tokens of a batch (router_logits [M, B*S, E], batch-major; expert_load and router_entropy over
all of them); the serving repository makes it per sample. If torch cannot export a stage with a
symbolic batch (a model whose code fixes it), that graph is exported with batch 1 and a warning:
the Triton repository then turns batching off.

    vision          images [1, C, 3, H, W] uint8                   -> vision_tokens [1, Nv, D]
    trunk           vision_tokens [1, Nv, D], instruction_ids/mask [1, L] int64, state [1, J]
                                                                    -> trunk_tokens [1, S, D],
                                                                       router_logits [Mt, S, E],
                                                                       expert_load [Mt, E],
                                                                       router_entropy [Mt]
    reasoning_context  trunk_tokens [1, S, D]                      -> cross_kv [Lr, 2, 1, Hr, S, Dh]
    reasoning_step  cross_kv, tokens [1, R] int64                   -> logits [1, R, V]
    action_head     trunk_tokens, state [1, J], reasoning_ids/mask [1, R] int64
                                                                    -> actions [1, H, J] + telemetry
                                                                       ([Ma, H, E], [Ma, E], [Ma])

The trunk and action head are exported once per MoE formulation: "sparse" (loop over experts;
NonZero inside, data-dependent shapes, experts combined by Concat/CumSum/Gather without any
ScatterND, so TensorRT 10 parses it whole) and "dense" (every expert on every token, only
TENSORRT_STATIC_OPS; asserted by `check_graph_ops`). The export also records, per graph, the
ops TensorRT 10 cannot parse (export/tensorrt_ops.py).

The reasoning decoder (`ReasoningDecoder.forward(trunk_tokens, tokens)`) is split in two: its
cross-attention keys/values depend on the trunk tokens only, so they are computed once per
trace (reasoning_context) instead of at each of the up to R - 1 greedy steps; measured on the
small() preset this makes a trace ~19% faster with ONNX Runtime on CPU. The step graph
re-composes TransformerBlock / Attention from the decoder's own submodules;
`check_reasoning_split` asserts (and export verification re-checks) that the pair computes
exactly what the decoder computes.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import onnx
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from moe_vla_ros.export.errors import ExportVerificationError
from moe_vla_ros.export.examples import example_batch
from moe_vla_ros.export.onnx_check import FORBIDDEN_DYNAMIC_OPS, TENSORRT_STATIC_OPS, export_onnx, graph_op_types
from moe_vla_ros.model.moe import MoELayer
from moe_vla_ros.model.vla import MoEVLA
from moe_vla_ros.runtime.manifest import ANY_FORMULATION, MOE_STAGES, STAGE_INPUTS, STAGE_OUTPUTS, GraphEntry, TensorSpec

BATCH_DIM = "batch"  # name of the symbolic batch axis of every stage graph
MAX_EXPORT_BATCH = 4096
FILE_STEMS = {stage: stage for stage in ("vision", "trunk", "reasoning_context", "reasoning_step", "action_head")}


class VisionGraph(nn.Module):
    def __init__(self, model: MoEVLA) -> None:
        super().__init__()
        self.vision = model.vision

    def forward(self, images: Tensor) -> Tensor:
        return self.vision(images).tokens  # [1, Nv, D]


class MoEStageGraph(nn.Module):
    """A MoE stage of the model (`stage`: trunk or action head) as a graph: the stage's own output
    and the router telemetry the runtime reads (aux_loss and dropped_tokens are training-only).
    The submodule keeps its name in the model, so the graph's initializers are named as its weights."""

    stage = ""

    def __init__(self, model: MoEVLA) -> None:
        super().__init__()
        self.add_module(self.stage, getattr(model, self.stage))

    def forward(self, a: Tensor, b: Tensor, c: Tensor, d: Tensor):
        """The stage's inputs (manifest STAGE_INPUTS) -> STAGE_OUTPUTS."""
        out = getattr(self, self.stage)(a, b, c, d)
        return out[0], out.router_logits, out.expert_load, out.router_entropy


class TrunkGraph(MoEStageGraph):
    stage = "trunk"  # vision_tokens, instruction_ids, instruction_mask, state -> trunk_tokens + telemetry


class ReasoningContextGraph(nn.Module):
    """Cross-attention keys/values of every decoder block: trunk_tokens [B, S, D] -> [Lr, 2, B, Hr, S, Dh]."""

    def __init__(self, model: MoEVLA) -> None:
        super().__init__()
        self.reasoning = model.reasoning

    def forward(self, trunk_tokens: Tensor) -> Tensor:
        b, s, _ = trunk_tokens.shape
        kv = []
        for block in self.reasoning.blocks:
            attn = block.cross_attn  # as Attention.forward: k, v = kv_proj(context) split per head
            kv.append(attn.kv_proj(trunk_tokens).reshape(b, s, 2, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4))
        return torch.stack(kv)  # [Lr, 2, B, Hr, S, Dh]


class ReasoningStepGraph(nn.Module):
    """ReasoningDecoder.forward with precomputed cross-attention keys/values: cross_kv, tokens [B, R] -> logits [B, R, V]."""

    def __init__(self, model: MoEVLA) -> None:
        super().__init__()
        self.reasoning = model.reasoning

    def forward(self, cross_kv: Tensor, tokens: Tensor) -> Tensor:
        dec = self.reasoning
        x = dec.token_embed(tokens) + dec.position_embed  # [B, R, D]
        b, r, d = x.shape
        for i, block in enumerate(dec.blocks):  # TransformerBlock.forward (eval: dropout is identity)
            x = x + block.self_attn(block.norm_self(x))  # causal self-attention, [B, R, D]
            attn = block.cross_attn
            q = attn.q_proj(block.norm_cross(x)).reshape(b, r, attn.num_heads, attn.head_dim).transpose(1, 2)  # [B, Hr, R, Dh]
            y = F.scaled_dot_product_attention(q, cross_kv[i, 0], cross_kv[i, 1])  # [B, Hr, R, Dh]
            x = x + attn.out_proj(y.transpose(1, 2).reshape(b, r, d))  # [B, R, D]
            x = x + block.ffn(block.norm_ffn(x))  # [B, R, D]
        return dec.lm_head(dec.norm(x))  # [B, R, V]


class ActionHeadGraph(MoEStageGraph):
    stage = "action_head"  # trunk_tokens, state, reasoning_ids, reasoning_mask -> actions + telemetry


GRAPH_MODULES: dict[str, type[nn.Module]] = {
    "vision": VisionGraph, "trunk": TrunkGraph, "reasoning_context": ReasoningContextGraph,
    "reasoning_step": ReasoningStepGraph, "action_head": ActionHeadGraph,
}


@contextlib.contextmanager
def moe_formulation(model: MoEVLA, name: str) -> Iterator[None]:
    """Run every MoE layer of `model` in formulation `name` inside the block; restore afterwards."""
    layers = [m for m in model.modules() if isinstance(m, MoELayer)]
    previous = [layer.formulation for layer in layers]
    for layer in layers:
        layer.set_formulation(name)
    try:
        yield
    finally:
        for layer, old in zip(layers, previous):
            layer.set_formulation(old)


def graph_file(stage: str, formulation: str, precision: str = "fp32") -> str:
    """e.g. "vision.onnx", "trunk.dense.onnx", "action_head.sparse.int8.onnx"."""
    parts = [FILE_STEMS[stage]]
    if stage in MOE_STAGES:
        parts.append(formulation)
    if precision != "fp32":
        parts.append(precision)
    return ".".join(parts) + ".onnx"


@torch.no_grad()
def example_inputs(model: MoEVLA, seed: int = 0) -> dict[str, tuple[Tensor, ...]]:
    """Batch-1 inputs of every stage, each computed from the previous stage (realistic values)."""
    b = example_batch(model.cfg, batch_size=1, seed=seed)
    model.eval()
    vision_tokens = model.vision(b["images"]).tokens  # [1, Nv, D]
    trunk = (vision_tokens, b["instruction_ids"], b["instruction_mask"], b["state"])
    trunk_tokens = model.trunk(*trunk).tokens  # [1, S, D]
    tokens = b["reasoning_ids"].clone()  # [1, R]
    tokens[:, 0] = 1  # BOS
    cross_kv = ReasoningContextGraph(model)(trunk_tokens)  # [Lr, 2, 1, Hr, S, Dh]
    return {
        "vision": (b["images"],),
        "trunk": trunk,
        "reasoning_context": (trunk_tokens,),
        "reasoning_step": (cross_kv, tokens),
        "action_head": (trunk_tokens, b["state"], b["reasoning_ids"], b["reasoning_mask"]),
    }


def batch_dynamic_shapes(stage: str, inputs: tuple[Tensor, ...]) -> tuple[dict[int, object], ...]:
    """torch.export dynamic_shapes with a symbolic batch axis on every input (axis 2 of cross_kv)."""
    batch = torch.export.Dim(BATCH_DIM, min=1, max=MAX_EXPORT_BATCH)
    names = STAGE_INPUTS[stage]
    return tuple({2 if names[i] == "cross_kv" else 0: batch} for i in range(len(inputs)))


def tensor_specs(names: Sequence[str], tensors: Sequence[Tensor]) -> tuple[TensorSpec, ...]:
    return tuple(TensorSpec(n, tuple(t.shape), str(t.detach().cpu().numpy().dtype)) for n, t in zip(names, tensors))


def export_stage(model: MoEVLA, stage: str, formulation: str, inputs: tuple[Tensor, ...], out_dir: Path,
                 opset: int) -> GraphEntry:
    """Export one stage graph to `out_dir`; `formulation` is ignored ("any") for stages without MoE."""
    formulation = formulation if stage in MOE_STAGES else ANY_FORMULATION
    module = GRAPH_MODULES[stage](model).eval()
    path = out_dir / graph_file(stage, formulation)
    registration_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration_log.level
    registration_log.setLevel(logging.ERROR)  # "torchvision is not installed" notices
    try:
        with moe_formulation(model, formulation if stage in MOE_STAGES else "sparse"), torch.no_grad():
            names = {"input_names": STAGE_INPUTS[stage], "output_names": STAGE_OUTPUTS[stage], "opset_version": opset}
            try:
                with warnings.catch_warnings():  # "axis name: batch will not be used" (every input shares the one Dim)
                    warnings.filterwarnings("ignore", message=".*will not be used, since it shares.*")
                    export_onnx(module, inputs, path, dynamic_shapes=batch_dynamic_shapes(stage, inputs), **names)
            except Exception as e:
                logging.getLogger(__name__).warning("%s: no dynamic batch axis (%s: %s); exporting with batch 1",
                                                    path.name, type(e).__name__, str(e).splitlines()[0][:300])
                export_onnx(module, inputs, path, **names)
            outputs = module(*inputs)
    finally:
        registration_log.setLevel(level)
    outputs = (outputs,) if isinstance(outputs, Tensor) else tuple(outputs)
    return GraphEntry(
        file=path.name, stage=stage, formulation=formulation, precision="fp32",
        inputs=tensor_specs(STAGE_INPUTS[stage], inputs), outputs=tensor_specs(STAGE_OUTPUTS[stage], outputs),
    )


@torch.no_grad()
def check_reasoning_split(model: MoEVLA, trunk_tokens: Tensor, tokens: Tensor, tolerance: float) -> float:
    """max |ReasoningStepGraph(ReasoningContextGraph(t), x) - model.reasoning(t, x)|; raises above `tolerance`."""
    model.eval()
    split = ReasoningStepGraph(model)(ReasoningContextGraph(model)(trunk_tokens), tokens)  # [B, R, V]
    reference = model.reasoning(trunk_tokens, tokens).logits  # [B, R, V]
    err = float((split - reference).abs().max())
    if err > tolerance:
        raise ExportVerificationError(
            f"the split reasoning graphs differ from ReasoningDecoder.forward by {err:.3g} > {tolerance:.3g}: "
            "the decoder block changed; update ReasoningStepGraph (moe_vla_ros/export/graphs.py)"
        )
    return err


def check_graph_ops(path: Path, entry: GraphEntry) -> dict[str, list[str]]:
    """Op types of a graph; raises ExportVerificationError when a dense graph leaves the TensorRT allowlist.

    Dense MoE graphs must use only TENSORRT_STATIC_OPS; no graph of a dense pipeline (the
    shared vision and reasoning graphs included) may contain FORBIDDEN_DYNAMIC_OPS.
    """
    ops = graph_op_types(onnx.load(str(path), load_external_data=False))
    outside = sorted(ops - TENSORRT_STATIC_OPS)
    dynamic = sorted(ops & FORBIDDEN_DYNAMIC_OPS)
    if entry.formulation == "dense" and outside:
        raise ExportVerificationError(f"{entry.file}: dense graph uses ops outside the TensorRT allowlist: {outside}")
    if entry.formulation in ("dense", ANY_FORMULATION) and dynamic:
        raise ExportVerificationError(f"{entry.file}: graph shared with the dense pipeline uses dynamic ops {dynamic}")
    return {"ops": sorted(ops), "outside_tensorrt_allowlist": outside}
