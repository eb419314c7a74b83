"""On-target verification (runtime/golden.py, loader.py) and honest provider placement (providers.py)."""

import json
from pathlib import Path

import numpy as np
import pytest

from moe_vla_ros.paths import bundled_model_dir
from moe_vla_ros.runtime.config import CPU_PROVIDER, RuntimeConfig
from moe_vla_ros.runtime.golden import (
    FP32_TARGET_GATE,
    GOLDEN_FILE,
    GoldenError,
    load_golden,
    target_gate,
    verify_on_target,
)
from moe_vla_ros.runtime.loader import load_policy
from moe_vla_ros.runtime.manifest import STAGES, ModelLoadError, read_manifest, sha256_file
from moe_vla_ros.runtime.providers import placement_from_profile


def _cfg(**kw) -> RuntimeConfig:
    return RuntimeConfig(providers=(CPU_PROVIDER,), verify_on_target=True, **kw)


def _edit_manifest(model_dir: Path, edit) -> None:
    path = model_dir / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=1))


def test_every_shipped_variant_passes_on_target(tiny_model_dir):
    manifest = read_manifest(tiny_model_dir)
    variants = manifest.available_variants()
    assert {"int8", "fp16"} <= {p for _, p in variants}, variants
    for formulation, precision in variants:
        policy = load_policy(tiny_model_dir, _cfg(formulation=formulation, precision=precision))
        v = policy.metadata.verification
        assert v["status"] == "passed", v
        assert v["variant"] == f"{formulation}/{precision}" and not v["fallbacks"]
        assert v["metrics"]["observations"] == 3
        assert v["metrics"]["max_action_error"] <= v["thresholds"]["max_action_error"]
        if precision != "fp32":  # held to its own export gate
            assert v["thresholds"] == manifest.variant(formulation, precision)["thresholds"]
        else:
            assert v["thresholds"] == FP32_TARGET_GATE
        policy.close()


def test_export_writes_golden_outputs(tiny_model_dir):
    manifest = read_manifest(tiny_model_dir)
    entry = manifest.golden
    assert entry["file"] == GOLDEN_FILE and entry["observations"] == 3
    assert entry["sha256"] == sha256_file(tiny_model_dir / GOLDEN_FILE) == manifest.files[GOLDEN_FILE]
    assert "fp32 ONNX graphs" in entry["reference"] and "not torch" in entry["reference"]
    golden = load_golden(tiny_model_dir, manifest)
    s = manifest.contract.sensors
    assert len(golden.observations) == 3
    assert golden.observations[0].images[s.camera_names[0]].shape == (s.image_height, s.image_width, 3)
    assert golden.actions.shape == (3, manifest.contract.chunk_length, s.num_joints)
    assert set(golden.router_logits) == {layer.name for layer in manifest.moe_layers}
    for record in manifest.variants:  # every kept variant was also checked against the golden outputs
        if record["kept"]:
            assert record["golden_check"]["passed"], record


def test_verify_on_target_function(tiny_model_dir):
    manifest = read_manifest(tiny_model_dir)
    golden = load_golden(tiny_model_dir, manifest)
    policy = load_policy(tiny_model_dir, RuntimeConfig(providers=(CPU_PROVIDER,), formulation="sparse", precision="int8"))
    gate = target_gate(manifest, "sparse", "int8")
    result = verify_on_target(policy, golden, gate)
    assert result.passed and result.variant == "sparse/int8" and result.reason == ""
    strict = {**gate, "max_action_error": 1e-9}
    missed = verify_on_target(policy, golden, strict)
    assert not missed.passed and "max action error" in missed.reason
    policy.close()


@pytest.mark.parametrize("verify_checksums", [True, False])
def test_corrupted_golden_is_refused(model_copy, verify_checksums):
    path = model_copy / GOLDEN_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="golden.npz") as info:
        load_policy(model_copy, _cfg(verify_checksums=verify_checksums))
    if not verify_checksums:  # the golden file's own sha256 check, independent of verify_checksums
        assert isinstance(info.value, GoldenError)
        assert "corrupted" in str(info.value) and "sha256" in str(info.value)


def test_variant_that_misses_its_gate_falls_back_with_reason(model_copy):
    def tighten(data):
        for v in data["variants"]:
            if (v["formulation"], v["precision"]) == ("sparse", "int8"):
                v["thresholds"]["max_action_error"] = 1e-9  # no int8 graph is that close to fp32

    _edit_manifest(model_copy, tighten)
    policy = load_policy(model_copy, _cfg(formulation="sparse", precision="int8"))
    v = policy.metadata.verification
    assert v["status"] == "fallback" and v["variant"] == "sparse/fp32" and v["requested"] == "sparse/int8"
    assert len(v["fallbacks"]) == 1 and "sparse/int8" in v["fallbacks"][0]
    assert "max action error" in v["fallbacks"][0] and "FALLBACK" in v["summary"]
    assert {g.precision for g in policy.graphs.values()} == {"fp32"}
    policy.close()


def test_fp16_falls_back_to_fp32_dense(model_copy):
    def tighten(data):
        for v in data["variants"]:
            if v["precision"] == "fp16":
                v["thresholds"]["max_action_error"] = 1e-9

    _edit_manifest(model_copy, tighten)
    policy = load_policy(model_copy, _cfg(formulation="dense", precision="fp16"))
    assert policy.metadata.verification["variant"] == "dense/fp32"
    assert "dense/fp16" in policy.metadata.verification["fallbacks"][0]
    policy.close()


def test_no_variant_passes_is_refused_with_every_reason(model_copy):
    # Golden outputs that no variant of these weights reproduces (as if recorded from other weights).
    path = model_copy / GOLDEN_FILE
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["actions"] = arrays["actions"] + 0.5
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    digest = sha256_file(path)

    def resign(data):
        data["golden"]["sha256"] = digest
        data["files"][GOLDEN_FILE] = digest

    _edit_manifest(model_copy, resign)
    with pytest.raises(ModelLoadError, match="no variant passed on-target verification") as info:
        load_policy(model_copy, _cfg(precision="int8"))
    message = str(info.value)
    for variant in ("sparse/int8", "sparse/fp32", "dense/fp32"):
        assert variant in message
    assert "max action error" in message


def test_folder_without_golden_loads_unverified(model_copy):
    (model_copy / GOLDEN_FILE).unlink()

    def drop(data):
        data.pop("golden")
        data["files"].pop(GOLDEN_FILE)

    _edit_manifest(model_copy, drop)
    policy = load_policy(model_copy, _cfg())
    assert policy.metadata.verification["status"] == "unavailable"
    assert "no golden outputs" in policy.metadata.verification["summary"]
    policy.close()


def test_bundled_model_golden_verification_and_placement():
    model_dir = bundled_model_dir()
    for formulation in ("sparse", "dense"):
        policy = load_policy(model_dir, _cfg(formulation=formulation))
        v = policy.metadata.verification
        assert v["status"] == "passed" and v["variant"] == f"{formulation}/fp32", v
        assert v["metrics"]["max_action_error"] < 1e-4
        placement = policy.metadata.provider_placement
        assert set(placement) == set(STAGES)
        for stage, counts in placement.items():
            assert set(counts) == {CPU_PROVIDER} and counts[CPU_PROVIDER] > 0, (stage, counts)
        assert policy.metadata.execution_providers == (CPU_PROVIDER,)
        policy.close()


def test_placement_is_read_from_the_profile():
    events = [
        {"cat": "Session", "name": "session_initialization"},
        {"cat": "Node", "name": "TRTKernel_graph_0_kernel_time", "args": {"provider": "TensorrtExecutionProvider"}},
        {"cat": "Node", "name": "TRTKernel_graph_0_fence_before", "args": {"provider": "TensorrtExecutionProvider"}},
        {"cat": "Node", "name": "node_gather_kernel_time", "args": {"provider": CPU_PROVIDER}},
        {"cat": "Node", "name": "node_gather_kernel_time", "args": {"provider": CPU_PROVIDER}},  # second run
        {"cat": "Node", "name": "node_topk_kernel_time", "args": {"provider": CPU_PROVIDER}},
        "not an event",
    ]
    assert placement_from_profile(events) == {"TensorrtExecutionProvider": 1, CPU_PROVIDER: 2}


def test_placement_can_be_turned_off(tiny_model_dir):
    policy = load_policy(tiny_model_dir, RuntimeConfig(providers=(CPU_PROVIDER,), report_placement=False))
    assert policy.metadata.provider_placement == {}
    assert policy.metadata.execution_providers == (CPU_PROVIDER,)
    policy.close()
