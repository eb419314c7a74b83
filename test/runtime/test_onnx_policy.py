"""OnnxRuntimePolicy on the exported tiny model: outputs, reasoning caching, variants, no torch."""

import subprocess
import sys

import numpy as np
import pytest

from moe_vla_ros.runtime.config import RuntimeConfig
from moe_vla_ros.runtime.loader import load_policy
from moe_vla_ros.runtime.manifest import ModelLoadError
from moe_vla_ros.runtime.onnx_policy import OnnxRuntimePolicy
from moe_vla_ros.runtime.sample_observations import random_observation
from moe_vla_ros.runtime.types import ObservationError


def cpu(**kwargs) -> RuntimeConfig:
    return RuntimeConfig(providers=("CPUExecutionProvider",), **kwargs)


@pytest.fixture(scope="module")
def policy(demo_export):
    return OnnxRuntimePolicy.load(demo_export.model, cpu())


def test_output_layout(policy):
    c = policy.contract
    obs = random_observation(c, seed=1, stamp=12.5)
    out = policy.infer(obs)
    assert out.actions.shape == (c.chunk_length, c.sensors.num_joints) and out.actions.dtype == np.float64
    assert np.isfinite(out.actions).all() and out.stamp == 12.5
    assert out.reasoning_is_new and out.reasoning.stamp == 12.5
    r = out.reasoning
    assert r.token_ids.shape == r.token_mask.shape == (c.max_reasoning_tokens,)
    assert r.num_tokens == int(r.token_mask.sum()) and r.text == policy.tokenizer.decode(r.token_ids[: r.num_tokens])
    assert [u.layer_name for u in out.expert_usage] == ["trunk.blocks.1.ffn", "action_head.blocks.0.ffn"]
    for usage in out.expert_usage:
        assert usage.expert_load.sum() == pytest.approx(1.0, abs=1e-5) and usage.dropped_tokens == 0
        assert usage.router_entropy >= 0.0
    assert out.expert_usage[0].num_tokens == 41 and out.expert_usage[1].num_tokens == c.chunk_length
    assert {"preprocess", "vision", "trunk", "reasoning", "action_head", "postprocess"} == set(out.stage_latency_s)
    assert out.latency_s >= sum(out.stage_latency_s.values()) * 0.99


def test_reasoning_is_reused_until_asked_reset_or_new_instruction(policy):
    obs = random_observation(policy.contract, seed=2, instruction="reach the red square")
    policy.reset()
    first = policy.infer(obs, generate_reasoning=False)
    assert first.reasoning_is_new, "the first call after reset always generates"
    again = policy.infer(random_observation(policy.contract, seed=3, instruction="reach the red square"), False)
    assert not again.reasoning_is_new and again.reasoning is first.reasoning
    assert "reasoning" not in again.stage_latency_s
    changed = policy.infer(random_observation(policy.contract, seed=3, instruction="go to the blue square"), False)
    assert changed.reasoning_is_new
    assert policy.infer(obs, generate_reasoning=True).reasoning_is_new
    policy.reset()
    assert policy.infer(obs, generate_reasoning=False).reasoning_is_new


def test_actions_depend_on_reasoning(demo_export, policy):
    obs = random_observation(policy.contract, seed=4)
    policy.reset()
    with_reasoning = policy.infer(obs).actions
    without = OnnxRuntimePolicy.load(demo_export.model, cpu(reasoning_enabled=False)).infer(obs)
    assert without.reasoning is None and not without.reasoning_is_new
    assert not np.allclose(with_reasoning, without.actions), "the head must attend to the reasoning tokens"


def test_reasoning_logits_are_the_ones_greedy_decoding_chose_from(policy):
    obs = random_observation(policy.contract, seed=4)
    policy.reset()
    reasoning = policy.infer(obs).reasoning
    ids = reasoning.token_ids[: reasoning.num_tokens]
    assert reasoning.num_tokens >= 2
    for k in range(2):  # the first token, then the one after it
        assert int(np.argmax(policy.reasoning_logits(obs, ids[:k]))) == ids[k]
    with pytest.raises(ValueError, match="at most"):
        policy.reasoning_logits(obs, np.zeros(policy.contract.max_reasoning_tokens, np.int64))


def test_reasoning_token_cap(demo_export):
    capped = OnnxRuntimePolicy.load(demo_export.model, cpu(max_reasoning_tokens=2))
    assert capped.infer(random_observation(capped.contract, seed=5)).reasoning.num_tokens <= 2


def test_invalid_observation_is_rejected(policy):
    obs = random_observation(policy.contract, seed=6)
    bad = type(obs)(images={"front": obs.images["front"]}, joint_positions=obs.joint_positions, instruction="x")
    with pytest.raises(ObservationError, match="lacks cameras"):
        policy.infer(bad)
    nan = type(obs)(images=obs.images, joint_positions=np.full(3, np.nan), instruction="x")
    with pytest.raises(ObservationError, match="NaN"):
        policy.infer(nan)


@pytest.mark.parametrize("formulation, precision", [("sparse", "int8"), ("dense", "int8"), ("dense", "fp16"), ("dense", "fp32")])
def test_variants_load_and_stay_close(demo_export, policy, formulation, precision):
    variant = load_policy(demo_export.model, cpu(formulation=formulation, precision=precision))
    assert variant.metadata.formulation == formulation
    files = {stage: g.file for stage, g in variant.graphs.items()}
    if precision == "fp16":
        assert files["trunk"] == "trunk.dense.fp16.onnx" and files["vision"] == "vision.onnx"
    elif precision == "int8":
        assert files["vision"] == "vision.int8.onnx" and files["trunk"] == f"trunk.{formulation}.int8.onnx"
    obs = random_observation(policy.contract, seed=7)
    policy.reset()
    reference = policy.infer(obs).actions
    # A kept variant met its gate's action bound at export; the int8 scheme computes the same
    # integers on every CPU (7-bit weights: no AVX2 saturation), so the bound holds here too.
    gate = variant.manifest.variant(formulation, precision)
    tolerance = gate["thresholds"]["max_action_error"] if gate else 0.05
    assert np.max(np.abs(variant.infer(obs).actions - reference)) < tolerance


def test_missing_variant_is_a_load_error(demo_export):
    with pytest.raises(ModelLoadError, match="has no fp16 variant of the sparse graphs"):
        load_policy(demo_export.model, cpu(formulation="sparse", precision="fp16"))


def test_closed_policy_refuses_inference(demo_export):
    p = load_policy(demo_export.model, cpu())
    p.close()
    p.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        p.infer(random_observation(p.contract, seed=8))


def test_robot_side_never_imports_torch(demo_export):
    code = (
        "import sys\n"
        "from moe_vla_ros.runtime.loader import load_policy\n"
        "from moe_vla_ros.runtime.config import RuntimeConfig\n"
        "from moe_vla_ros.runtime.sample_observations import random_observation\n"
        f"p = load_policy({str(demo_export.model)!r}, RuntimeConfig(providers=('CPUExecutionProvider',)))\n"
        "p.infer(random_observation(p.contract, 0))\n"
        "print(sorted(m for m in ('torch', 'transformers', 'onnx') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_sparse_graphs_with_scatter_are_refused_under_tensorrt(demo_export, tmp_path):
    import json
    import shutil

    from moe_vla_ros.runtime.manifest import read_manifest
    from moe_vla_ros.runtime.onnx_policy import check_tensorrt_graphs

    manifest = read_manifest(demo_export.model)
    sparse, dense = manifest.select_graphs("sparse", "fp32"), manifest.select_graphs("dense", "fp32")
    trt = ("TensorrtExecutionProvider", "CPUExecutionProvider")
    check_tensorrt_graphs(manifest, sparse, trt, demo_export.model)  # current sparse graphs: no ScatterND
    check_tensorrt_graphs(manifest, sparse, ("CPUExecutionProvider",), demo_export.model)
    manifest.verification["tensorrt"]["trunk.sparse.onnx"]["unsupported"] = ["ScatterND(reduction=add)"]
    with pytest.raises(ModelLoadError, match=r"cannot run under the TensorRT provider.*ScatterND\(reduction=add\)"):
        check_tensorrt_graphs(manifest, sparse, trt, demo_export.model)
    check_tensorrt_graphs(manifest, dense, trt, demo_export.model)
    check_tensorrt_graphs(manifest, sparse, ("CUDAExecutionProvider", "CPUExecutionProvider"), demo_export.model)
    # A folder exported before the report existed: its sparse graphs are assumed to scatter.
    model = tmp_path / "old"
    shutil.copytree(demo_export.model, model)
    raw = json.loads((model / "manifest.json").read_text())
    del raw["verification"]["tensorrt"]
    (model / "manifest.json").write_text(json.dumps(raw))
    old = read_manifest(model)
    with pytest.raises(ModelLoadError, match="use formulation 'dense'"):
        check_tensorrt_graphs(old, old.select_graphs("sparse", "fp32"), trt, model)
    check_tensorrt_graphs(old, old.select_graphs("dense", "fp32"), trt, model)
