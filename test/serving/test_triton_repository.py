"""moe_vla_triton_repository: configs that parse as Triton ModelConfig and match the manifest (no server)."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from google.protobuf import text_format

from moe_vla_ros.runtime.manifest import STAGES, read_manifest
from moe_vla_ros.serving import cli
from moe_vla_ros.serving.triton_repository import (
    REASONING_MODEL,
    REPOSITORY_INFO,
    RepositoryConfig,
    RepositoryError,
    build_repository,
    per_sample_telemetry,
    read_repository_info,
    with_stand_in,
)

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient[grpc] not installed")
NUMPY = {"TYPE_FP32": "float32", "TYPE_INT64": "int64", "TYPE_UINT8": "uint8", "TYPE_FP16": "float16"}


def _config(repo, name):
    config = model_config_pb2.ModelConfig()
    text_format.Parse((repo / name / "config.pbtxt").read_text(), config)
    return config


def _io(items):
    return {t.name: (NUMPY[model_config_pb2.DataType.Name(t.data_type)], tuple(t.dims)) for t in items}


@pytest.fixture(scope="module")
def demo_repo(demo_export, tmp_path_factory):
    out = tmp_path_factory.mktemp("triton") / "repo"
    return out, build_repository(demo_export.model, out, RepositoryConfig(max_batch_size=8))


def test_batched_repository_matches_the_manifest(demo_export, demo_repo):
    repo, report = demo_repo
    manifest = read_manifest(demo_export.model)
    graphs = manifest.select_graphs("dense", "fp32")
    assert report.max_batch_size == 8 and report.batching_reason == ""
    for stage in STAGES:
        config = _config(repo, stage)
        entry = graphs[stage]
        assert (config.name, config.backend) == (stage, "onnxruntime")
        assert config.parameters["moe_vla_model_id"].string_value == manifest.model_id
        assert (repo / stage / "1" / "model.onnx").is_file()
        if stage.startswith("reasoning_"):  # cross_kv has its batch on axis 2: not batched by Triton
            assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
            continue
        assert config.max_batch_size == 8 and config.HasField("dynamic_batching")
        assert _io(config.input) == {s.name: (s.dtype, s.shape[1:]) for s in entry.inputs}
        outputs = _io(config.output)
        for spec in entry.outputs:
            per_sample = spec.shape if spec.name in ("router_logits", "expert_load", "router_entropy") else spec.shape[1:]
            assert outputs[spec.name] == (spec.dtype, per_sample), (stage, spec.name)
        dense_expert = stage in ("trunk", "action_head")
        accelerators = config.optimization.execution_accelerators.gpu_execution_accelerator
        assert [a.name for a in accelerators] == (["tensorrt"] if dense_expert else [])
        assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    reasoning = _config(repo, REASONING_MODEL)
    assert (reasoning.backend, reasoning.max_batch_size) == ("python", 8)
    r = manifest.contract.max_reasoning_tokens
    assert _io(reasoning.output) == {"reasoning_ids": ("int64", (r,)), "reasoning_mask": ("int64", (r,)),
                                     "reasoning_eos": ("int64", (1,))}
    assert (repo / REASONING_MODEL / "1" / "model.py").is_file()
    assert read_repository_info(repo).to_dict() == json.loads((repo / REPOSITORY_INFO).read_text())


def test_fixed_batch_model_gets_no_batching(fixed_batch_model, tmp_path):
    report = build_repository(fixed_batch_model, tmp_path / "repo", with_stand_in(RepositoryConfig()))
    assert report.max_batch_size == 0 and "fixed batch axis" in report.batching_reason
    manifest = read_manifest(fixed_batch_model)
    trunk = _config(tmp_path / "repo", "trunk")
    assert trunk.max_batch_size == 0 and not trunk.HasField("dynamic_batching")
    assert trunk.backend == "python" and (tmp_path / "repo" / "trunk" / "1" / "model.py").is_file()
    graph = manifest.select_graphs("dense", "fp32")["trunk"]
    assert _io(trunk.input) == {s.name: (s.dtype, s.shape) for s in graph.inputs}
    assert "no batching" in (tmp_path / "repo" / "trunk" / "config.pbtxt").read_text().splitlines()[1]


def test_per_sample_telemetry_equals_batch_one(demo_export):
    manifest = read_manifest(demo_export.model)
    entry = manifest.select_graphs("sparse", "fp32")["action_head"]
    layers = [x for x in manifest.moe_layers if x.stage == "action_head"]
    graph = onnx.load(str(demo_export.model / entry.file))
    original = ort.InferenceSession(str(demo_export.model / entry.file), providers=["CPUExecutionProvider"])
    surgery = ort.InferenceSession(per_sample_telemetry(graph, layers).SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    rows = []
    for i in range(3):
        feeds = {}
        for spec in entry.inputs:
            if spec.dtype == "float32":
                feeds[spec.name] = rng.standard_normal(spec.shape).astype(np.float32)
            else:
                feeds[spec.name] = rng.integers(0, 2 if "mask" in spec.name else 20, spec.shape).astype(np.int64)
        rows.append(feeds)
    batch = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    names = [o.name for o in surgery.get_outputs()]
    assert names == ["actions", "router_logits", "expert_load", "router_entropy"]
    got = dict(zip(names, surgery.run(None, batch)))
    for i, feeds in enumerate(rows):
        want = dict(zip(names, original.run(None, feeds)))
        for name in names:
            np.testing.assert_allclose(got[name][i] if name != "actions" else got[name][i:i + 1], want[name], atol=2e-5)


def test_cli(demo_export, tmp_path, capsys):
    assert cli.main([str(demo_export.model), "-o", str(tmp_path / "repo"), "--stand-in", "--max-batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "dynamic batching up to 4" in out and "python stand-ins" in out
    assert _config(tmp_path / "repo", "vision").backend == "python"
    assert cli.main([str(demo_export.model), "-o", str(tmp_path / "repo")]) == 2  # occupied without --force
    assert "is not empty" in capsys.readouterr().err
    assert cli.main([str(demo_export.model), "-o", str(tmp_path / "r2"), "--max-batch-size", "-1"]) == 2
    with pytest.raises(RepositoryError, match="instances"):
        RepositoryConfig(instances=0)
