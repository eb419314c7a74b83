"""MoELayer -> ONNX (torch.onnx.export dynamo, opset 18) -> ONNX Runtime, both formulations."""

import pytest
import torch
from onnx_compare import compare_with_onnxruntime
from torch import Tensor, nn

from moe_vla_ros.export.onnx_check import (
    FORBIDDEN_DYNAMIC_OPS,
    TENSORRT_STATIC_OPS,
    export_onnx,
    graph_op_types,
    ort_session,
)
from moe_vla_ros.export.tensorrt_ops import tensorrt_op_report
from moe_vla_ros.model.moe import MoEConfig, MoELayer

D_MODEL = 16
OUTPUT_NAMES = ["output", "topk_indices", "expert_load", "router_logits", "dropped_tokens"]


class ExportedMoE(nn.Module):
    """The layer in a fixed formulation, returning the tensors a policy export publishes."""

    def __init__(self, layer: MoELayer, formulation: str) -> None:
        super().__init__()
        self.layer = layer
        self.formulation = formulation

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        out = self.layer(x, formulation=self.formulation)
        return out.output, out.topk_indices, out.expert_load, out.router_logits, out.dropped_tokens


def build_layer(**overrides) -> MoELayer:
    """Token choice top-2 of 4, one shared expert, AdaMoE scale adapter; feature 0 drives expert 3."""
    torch.manual_seed(0)
    cfg = MoEConfig(**{
        "d_model": D_MODEL, "d_hidden": 24, "num_experts": 4, "top_k": 2, "num_shared_experts": 1,
        "shared_expert_weight": 0.5, "scale_adapter": True, "activation": "geglu", **overrides,
    })
    layer = MoELayer(cfg)
    with torch.no_grad():
        nn.init.normal_(layer.router.weight, std=0.5)
        nn.init.normal_(layer.scale_adapter.weight, std=0.1)
        layer.router.weight[3, 0] = 8.0  # x[..., 0] = -4 keeps expert 3 out of every token's top 2
    return layer.eval()


def input_sets() -> list[tuple[Tensor]]:
    torch.manual_seed(1)
    starved = torch.randn(2, 9, D_MODEL)
    starved[..., 0] = -4.0
    return [(torch.randn(2, 5, D_MODEL),), (torch.randn(2, 37, D_MODEL),), (starved,)]


def export_and_compare(tmp_path, formulation: str, **overrides):
    layer = build_layer(**overrides)
    module = ExportedMoE(layer, formulation)
    path = tmp_path / f"moe_{formulation}.onnx"
    model = export_onnx(
        module, (torch.randn(2, 8, D_MODEL),), path,
        input_names=["x"], output_names=OUTPUT_NAMES,
        dynamic_shapes=({1: torch.export.Dim("tokens", min=1, max=4096)},),
    )
    inputs = input_sets()
    with torch.no_grad():
        starved = module(*inputs[-1])
    assert starved[2][3].item() == 0.0, "the starved input must leave expert 3 without tokens"
    report = compare_with_onnxruntime(module, ort_session(path), inputs)
    return model, report


@pytest.mark.parametrize("formulation", ["sparse", "dense"])
def test_export_matches_torch_at_two_token_counts_and_with_an_idle_expert(tmp_path, formulation):
    model, report = export_and_compare(tmp_path, formulation)
    assert report.ok, (report.integer_mismatches, report.shape_mismatches)
    assert report.max_abs_error <= 1e-4, report.per_output_error
    ops = graph_op_types(model)
    if formulation == "dense":
        assert ops <= TENSORRT_STATIC_OPS, sorted(ops - TENSORRT_STATIC_OPS)
    else:  # the loop form needs data-dependent ops: the allowlist check above is not vacuous
        assert ops & FORBIDDEN_DYNAMIC_OPS == {"NonZero"}, "no ScatterND: the combine gathers"
    assert tensorrt_op_report(model)["unsupported"] == [], "TensorRT 10 parses both formulations whole"


def test_sparse_export_with_capacity_drops_has_no_scatter(tmp_path):
    model, report = export_and_compare(tmp_path, "sparse", capacity_factor=0.75)
    assert report.ok and report.max_abs_error <= 1e-4, report
    assert "ScatterND" not in graph_op_types(model) and tensorrt_op_report(model)["unsupported"] == []


def test_sparse_expert_choice_export_matches_torch_without_scatter(tmp_path):
    """Expert choice: a token may be picked by more experts than top_k; every pick is summed."""
    module = ExportedMoE(build_layer(router="expert_choice", capacity_factor=1.5, top_k=1), "sparse")
    path = tmp_path / "expert_choice.onnx"
    model = export_onnx(module, (torch.randn(2, 8, D_MODEL),), path, input_names=["x"], output_names=OUTPUT_NAMES,
                        dynamic_shapes=({1: torch.export.Dim("tokens", min=1, max=4096)},))
    with torch.no_grad():
        picks = module.layer.forward(input_sets()[1][0]).topk_indices
    report = compare_with_onnxruntime(module, ort_session(path), input_sets())
    assert report.ok and report.max_abs_error <= 1e-4, report
    assert "ScatterND" not in graph_op_types(model) and tensorrt_op_report(model)["unsupported"] == []
    assert picks.shape[-1] == 1  # only the best pick is listed, yet tokens with more picks sum them all


def test_dense_export_with_capacity_drops(tmp_path):
    model, report = export_and_compare(tmp_path, "dense", capacity_factor=0.75)
    assert report.ok and report.max_abs_error <= 1e-4, report
    assert "CumSum" in graph_op_types(model) and graph_op_types(model) <= TENSORRT_STATIC_OPS
    with torch.no_grad():
        dropped = build_layer(capacity_factor=0.75)(input_sets()[1][0]).dropped_tokens
    assert dropped.item() > 0, "the comparison must cover dropped token slots"
