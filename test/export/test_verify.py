"""Export verification passes on a faithful export and fails when graphs and model disagree."""

import numpy as np
import pytest
import torch

from moe_vla_ros.export.config import ExportConfig
from moe_vla_ros.export.errors import ExportVerificationError
from moe_vla_ros.export.verify import input_sets, reasoning_split_error, verify_graphs, verify_policy_parity
from moe_vla_ros.model.checkpoint import load_checkpoint
from moe_vla_ros.runtime.config import CPU_PROVIDER, RuntimeConfig
from moe_vla_ros.runtime.manifest import read_manifest
from moe_vla_ros.runtime.onnx_policy import OnnxRuntimePolicy
from moe_vla_ros.runtime.sample_observations import random_observations


@pytest.fixture
def model(demo_export):
    return load_checkpoint(demo_export.checkpoint)


def test_report_of_the_export(demo_export):
    manifest = read_manifest(demo_export.model)
    graphs = manifest.verification["graphs"]
    assert set(graphs) == {g.file for g in manifest.graphs if g.precision == "fp32"}
    for file, report in graphs.items():
        assert max(report["max_abs_error"].values()) < 1e-4, (file, report)
        if file.startswith(("trunk", "action_head")):
            assert report["idle_expert_covered"], f"{file}: no input left an expert without tokens"
            assert all(r["mismatches"] == 0 for r in report["routing"].values())
    assert "one_word" in graphs["trunk.sparse.onnx"]["input_sets"]
    assert "no_reasoning" in graphs["action_head.dense.onnx"]["input_sets"]
    assert manifest.verification["reasoning_split_max_error"] < 1e-5
    parity = manifest.verification["policy_parity"]
    assert set(parity) == {"sparse", "dense"}
    for r in parity.values():
        assert r["reasoning_identical"] == r["observations"] and r["max_action_error"] < 1e-4


def test_input_sets_are_batch_one_and_distinct(model):
    for stage in ("vision", "trunk", "reasoning_context", "reasoning_step", "action_head"):
        sets = input_sets(model, stage, seed=0)
        assert len({label for label, _ in sets}) == len(sets) >= 2
        assert all(t.shape[0] == 1 for _, inputs in sets for t in inputs)


def test_changed_weights_fail_graph_verification(demo_export, model):
    manifest = read_manifest(demo_export.model)
    entry = manifest.find_graph("action_head", "sparse", "fp32")
    with torch.no_grad():
        model.action_head.out.bias += 0.01
    with pytest.raises(ExportVerificationError, match=r"action_head.sparse.onnx\[no_reasoning\] actions") as info:
        verify_graphs(model, demo_export.model, [entry], manifest.moe_layers, ExportConfig())
    assert "action_head.sparse.onnx" in info.value.report["graphs"]


def test_changed_routing_is_reported(demo_export, model):
    manifest = read_manifest(demo_export.model)
    entry = manifest.find_graph("trunk", "dense", "fp32")
    router = model.trunk.blocks[1].ffn.router
    with torch.no_grad():
        router.weight.copy_(router.weight.flip(0))  # experts swap places
    with pytest.raises(ExportVerificationError, match="trunk.blocks.1.ffn: .* tokens routed differently"):
        verify_graphs(model, demo_export.model, [entry], manifest.moe_layers, ExportConfig())


def test_changed_weights_fail_policy_parity(demo_export, model):
    with torch.no_grad():
        model.action_head.out.bias += 0.01
    cfg = ExportConfig(formulations=("sparse",), policy_observations=1)
    with pytest.raises(ExportVerificationError, match="max .ORT - torch. action"):
        verify_policy_parity(model, demo_export.model, cfg.formulations, cfg)


def test_reasoning_that_differs_at_a_near_tie_passes_and_a_real_difference_fails(demo_export, model):
    cfg = ExportConfig(formulations=("sparse",), policy_observations=1)
    report = verify_policy_parity(model, demo_export.model, cfg.formulations, cfg)["sparse"]
    assert report["reasoning_identical"] == 1 and report["reasoning_tied"] == 0
    ort = OnnxRuntimePolicy.load(demo_export.model, RuntimeConfig(providers=(CPU_PROVIDER,), formulation="sparse",
                                                                   verify_checksums=False))
    obs = random_observations(model.cfg.contract, 1, seed=cfg.seed + 7)[0]
    logits = ort.reasoning_logits(obs, [])  # [V] the first reasoning token's
    ort.close()
    chosen, runner_up = np.argsort(logits)[::-1][:2]
    allowed = cfg.tie_margin * max(1.0, float(np.abs(logits).max()))
    with torch.no_grad():  # torch now prefers the runner-up by less than the tie margin
        model.reasoning.lm_head.bias[runner_up] += float(logits[chosen] - logits[runner_up]) + 0.5 * allowed
    report = verify_policy_parity(model, demo_export.model, cfg.formulations, cfg)["sparse"]
    assert report["reasoning_identical"] == 0 and report["reasoning_tied"] == 1
    with torch.no_grad():  # ... and now by a clear margin
        model.reasoning.lm_head.bias[runner_up] += 0.5
    with pytest.raises(ExportVerificationError, match="torch logit gap .* at the first differing token"):
        verify_policy_parity(model, demo_export.model, cfg.formulations, cfg)


def test_split_reasoning_equals_the_decoder_and_a_changed_decoder_is_caught(model):
    assert reasoning_split_error(model, seed=0, tolerance=1e-5) < 1e-5
    block = model.reasoning.blocks[0]
    block.forward = lambda x, **kw: type(block).forward(block, x * 1.01, **kw)  # a decoder change the split lacks
    with pytest.raises(ExportVerificationError, match="update ReasoningStepGraph"):
        reasoning_split_error(model, seed=0, tolerance=1e-5)


def test_outputs_after_a_near_tied_routing_decision_are_not_compared(demo_export):
    """Tied experts (e.g. a freshly upcycled, zero router) may be picked differently by ORT's and
    torch's top-k: the set is listed as tied and only the first MoE layer's logits are compared;
    without a tie a different expert load is a failure."""
    import numpy as np

    from moe_vla_ros.export.verify import _compare_outputs

    manifest = read_manifest(demo_export.model)
    entry = manifest.find_graph("action_head", "sparse", "fp32")
    specs = [s for s in manifest.moe_layers if s.stage == "action_head"]
    m, e = len(specs), specs[0].num_experts
    rng = np.random.default_rng(0)

    def outputs(logits, load):  # actions, router_logits [M, N, E], expert_load [M, E], router_entropy [M]
        return [np.zeros((1, 4, 3), np.float32), logits, load, np.zeros(m, np.float32)]

    load = np.zeros((m, e), np.float32)
    moved = load.copy()
    load[:, 0], moved[:, 1] = 1.0, 1.0
    for logits, should_fail in ((np.zeros((m, 6, e), np.float32), False),
                                (rng.normal(size=(m, 6, e)).astype(np.float32), True)):
        result, failures = {"max_abs_error": {}, "routing": {}}, []
        _compare_outputs(entry, "set", outputs(logits, load), outputs(logits, moved), specs, ExportConfig(), result,
                         failures)
        assert bool(failures) == should_fail, failures
        assert ("set" in result.get("tied_sets", [])) != should_fail
    result, failures = {"max_abs_error": {}, "routing": {}}, []
    tied = np.zeros((m, 6, e), np.float32)
    _compare_outputs(entry, "set", outputs(tied, load), outputs(tied + 0.5, load), specs, ExportConfig(), result, failures)
    assert any("router_logits" in f for f in failures)  # the first layer's logits are still compared
