"""Model folder validation: every way a folder can be broken is a ModelLoadError (or ContractError) at load."""

import json

import onnx
import pytest

from moe_vla_ros.contract import ContractError, SensorContract
from moe_vla_ros.runtime.config import RuntimeConfig
from moe_vla_ros.runtime.loader import load_policy
from moe_vla_ros.runtime.manifest import (
    FORMAT_NAME,
    MANIFEST_FILE,
    ModelLoadError,
    read_manifest,
    sha256_file,
)

CPU = RuntimeConfig(providers=("CPUExecutionProvider",))


def edit_manifest(model_dir, change):
    path = model_dir / MANIFEST_FILE
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def rehash(model_dir, rel):
    edit_manifest(model_dir, lambda d: d["files"].__setitem__(rel, sha256_file(model_dir / rel)))


def test_valid_folder_reads_back(demo_export):
    manifest = read_manifest(demo_export.model)
    assert manifest.model_id.startswith("checkpoint_tiny_0-") and len(manifest.model_id.split("-")[-1]) == 10
    assert manifest.formulations() == ("sparse", "dense")
    assert [g.file for g in manifest.graphs if g.precision == "fp32"] == [
        "vision.onnx", "trunk.sparse.onnx", "trunk.dense.onnx", "reasoning_context.onnx", "reasoning_step.onnx",
        "action_head.sparse.onnx", "action_head.dense.onnx",
    ]
    assert [layer.name for layer in manifest.moe_layers] == ["trunk.blocks.1.ffn", "action_head.blocks.0.ffn"]


def test_missing_folder_and_manifest(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_policy(tmp_path / "nope", CPU)
    with pytest.raises(ModelLoadError, match="has no manifest.json"):
        load_policy(tmp_path, CPU)


def test_invalid_json_and_wrong_format(model_copy):
    (model_copy / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        load_policy(model_copy, CPU)
    (model_copy / MANIFEST_FILE).write_text(json.dumps({"format": "something_else", "version": 1}))
    with pytest.raises(ModelLoadError, match="'something_else'"):
        load_policy(model_copy, CPU)
    (model_copy / MANIFEST_FILE).write_text(json.dumps({"format": FORMAT_NAME, "version": 99}))
    with pytest.raises(ModelLoadError, match="version 99 is not supported"):
        load_policy(model_copy, CPU)


def test_missing_key(model_copy):
    edit_manifest(model_copy, lambda d: d.pop("moe_layers"))
    with pytest.raises(ModelLoadError, match=r"missing keys \['moe_layers'\]"):
        load_policy(model_copy, CPU)


@pytest.mark.parametrize("rel", ["trunk.sparse.onnx", "tokenizer.json", "checkpoint/model.safetensors"])
def test_missing_file(model_copy, rel):
    (model_copy / rel).unlink()
    with pytest.raises(ModelLoadError, match=f"file {rel} listed in manifest.json is missing"):
        load_policy(model_copy, CPU)


def test_modified_file_fails_checksum(model_copy):
    with open(model_copy / "action_head.sparse.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelLoadError, match="action_head.sparse.onnx was modified after export"):
        load_policy(model_copy, CPU)


def test_unreadable_onnx_with_matching_checksum(model_copy):
    (model_copy / "vision.onnx").write_bytes(b"this is not a protobuf \xff\xff\xff")
    rehash(model_copy, "vision.onnx")
    with pytest.raises(ModelLoadError, match="vision.onnx is not a readable ONNX model"):
        load_policy(model_copy, CPU)


def test_unreadable_tokenizer_with_matching_checksum(model_copy):
    (model_copy / "tokenizer.json").write_text("{broken")
    rehash(model_copy, "tokenizer.json")
    with pytest.raises(ModelLoadError, match="cannot read the tokenizer"):
        load_policy(model_copy, CPU)


def test_truncated_onnx_without_checksum_verification(model_copy):
    data = (model_copy / "reasoning_step.onnx").read_bytes()
    (model_copy / "reasoning_step.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="reasoning_step.onnx is not a readable ONNX model"):
        load_policy(model_copy, RuntimeConfig(providers=("CPUExecutionProvider",), verify_checksums=False))


def test_graph_opset_differs_from_manifest(model_copy):
    path = model_copy / "trunk.dense.onnx"
    model = onnx.load(str(path))
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = 19
    onnx.save(model, str(path))
    rehash(model_copy, "trunk.dense.onnx")
    with pytest.raises(ModelLoadError, match="trunk.dense.onnx has opset 19, the manifest says 18"):
        load_policy(model_copy, CPU)


def test_unsupported_manifest_opset(model_copy):
    edit_manifest(model_copy, lambda d: d.__setitem__("opset", 9))
    with pytest.raises(ModelLoadError, match="manifest opset 9 is not supported"):
        load_policy(model_copy, CPU)


def test_graph_inputs_not_matching_manifest(model_copy):
    def wrong_shape(d):
        entry = next(g for g in d["graphs"] if g["file"] == "trunk.sparse.onnx")
        entry["inputs"][3]["shape"] = [1, 99]  # state [1, J]

    edit_manifest(model_copy, wrong_shape)
    with pytest.raises(ModelLoadError, match=r"input 'state' is float32 \[\S+, 3\], the manifest says float32 \[1, 99\]"):
        load_policy(model_copy, RuntimeConfig(providers=("CPUExecutionProvider",), formulation="sparse"))


def test_graph_outputs_not_matching_manifest(model_copy):
    def renamed(d):
        entry = next(g for g in d["graphs"] if g["file"] == "vision.onnx")
        entry["outputs"][0]["dtype"] = "float16"

    edit_manifest(model_copy, renamed)
    with pytest.raises(ModelLoadError, match="output 'vision_tokens' is float32"):
        load_policy(model_copy, CPU)


def test_contract_mismatch_names_both_values(demo_export):
    sensors = read_manifest(demo_export.model).contract.sensors
    other = SensorContract(
        camera_names=("front",), image_height=sensors.image_height, image_width=48,
        joint_names=("a", "b", "c"), control_rate_hz=sensors.control_rate_hz,
    )
    for backend in ("onnxruntime", "torch"):
        with pytest.raises(ContractError) as info:
            load_policy(demo_export.model, RuntimeConfig(backend=backend, providers=("CPUExecutionProvider",)), other)
        message = str(info.value)
        assert "camera_names" in message and "['front', 'wrist']" in message and "['front']" in message
        assert "image_width" in message and "32" in message and "48" in message
        assert "['joint_1', 'joint_2', 'gripper']" in message and "['a', 'b', 'c']" in message


def test_matching_contract_loads(demo_export):
    sensors = read_manifest(demo_export.model).contract.sensors
    policy = load_policy(demo_export.model, CPU, expected_contract=sensors)
    assert policy.contract.sensors == sensors
