"""export_policy round trip: the model folder, its manifest, output-folder safety."""

import json

import pytest

from moe_vla_ros.export import pipeline
from moe_vla_ros.export.config import ExportConfig
from moe_vla_ros.export.errors import ExportError, ExportVerificationError
from moe_vla_ros.export.pipeline import export_policy, weights_digest
from moe_vla_ros.model.checkpoint import read_checkpoint_config
from moe_vla_ros.runtime.config import RuntimeConfig
from moe_vla_ros.runtime.loader import load_policy
from moe_vla_ros.runtime.manifest import FORMAT_NAME, FORMAT_VERSION, MANIFEST_FILE, ModelLoadError, read_manifest, sha256_file


def test_manifest_describes_the_folder(demo_export):
    raw = json.loads((demo_export.model / MANIFEST_FILE).read_text())
    assert (raw["format"], raw["version"], raw["opset"]) == (FORMAT_NAME, FORMAT_VERSION, 18)
    manifest = read_manifest(demo_export.model)
    model_cfg, _ = read_checkpoint_config(demo_export.checkpoint)
    assert manifest.contract == model_cfg.contract
    weights_sha = sha256_file(demo_export.checkpoint / "model.safetensors")
    assert manifest.model_id == f"checkpoint_tiny_0-{weights_digest(demo_export.checkpoint / 'model.safetensors')[:10]}"
    files = {p.relative_to(demo_export.model).as_posix() for p in demo_export.model.rglob("*") if p.is_file()}
    assert set(manifest.files) == files - {MANIFEST_FILE}, "every file has a sha256, nothing unlisted"
    for rel in ("tokenizer.json", "tokenizer_config.json"):
        assert manifest.files[rel] == sha256_file(demo_export.checkpoint / rel)
    assert manifest.checkpoint_dir == "checkpoint"
    assert manifest.files["checkpoint/model.safetensors"] == weights_sha
    assert {"torch", "onnx", "onnxscript", "onnxruntime", "moe_vla_ros"} <= set(manifest.exporter)
    trunk = manifest.find_graph("trunk", "sparse", "fp32")
    assert [s.name for s in trunk.outputs] == ["trunk_tokens", "router_logits", "expert_load", "router_entropy"]
    assert trunk.outputs[1].shape == (1, model_cfg.num_trunk_tokens, 4)


def test_refuses_a_non_empty_output_folder(demo_export, tmp_path):
    out = tmp_path / "occupied"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="is not empty; pass force"):
        export_policy(demo_export.checkpoint, out)
    assert (out / "keep.txt").read_text() == "mine"


def test_incomplete_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ExportError, match=r"lacks \['model.safetensors', 'tokenizer.json'"):
        export_policy(tmp_path, tmp_path / "out")


def test_failed_verification_leaves_nothing_behind(demo_export, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise ExportVerificationError("injected parity failure")

    monkeypatch.setattr(pipeline, "verify_policy_parity", fail)
    with pytest.raises(ExportVerificationError, match="injected"):
        export_policy(demo_export.checkpoint, tmp_path / "out", ExportConfig(formulations=("sparse",)))
    assert list(tmp_path.iterdir()) == [], "no output folder and no staging folder"


def test_dense_only_export_without_checkpoint(demo_export, tmp_path):
    cfg = ExportConfig(formulations=("dense",), keep_checkpoint=False, name="jetson", policy_observations=1)
    manifest = export_policy(demo_export.checkpoint, tmp_path / "jetson", cfg)
    assert manifest.model_id.startswith("jetson-") and manifest.checkpoint_dir == ""
    assert {g.formulation for g in manifest.graphs} == {"dense", "any"}
    assert not (tmp_path / "jetson" / "checkpoint").exists()
    policy = load_policy(tmp_path / "jetson", RuntimeConfig(providers=("CPUExecutionProvider",)))
    assert policy.metadata.formulation == "dense", "auto falls back to the only formulation there is"
    with pytest.raises(ModelLoadError, match="kept no checkpoint"):
        load_policy(tmp_path / "jetson", RuntimeConfig(backend="torch"))
