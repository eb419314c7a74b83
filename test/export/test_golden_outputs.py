"""Golden outputs added to a folder without them (export/golden.py, as done for models/default)."""

import json
import shutil

from moe_vla_ros.export.golden import add_golden
from moe_vla_ros.runtime.config import CPU_PROVIDER, RuntimeConfig
from moe_vla_ros.runtime.golden import GOLDEN_FILE
from moe_vla_ros.runtime.loader import load_policy
from moe_vla_ros.runtime.manifest import read_manifest, sha256_file


def test_add_golden_to_a_folder_exported_without(tiny_model_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / GOLDEN_FILE).unlink()
    data = json.loads((model / "manifest.json").read_text())
    data.pop("golden")
    data["files"].pop(GOLDEN_FILE)
    (model / "manifest.json").write_text(json.dumps(data))
    assert read_manifest(model).golden == {}  # an older manifest still loads

    entry = add_golden(model)
    manifest = read_manifest(model)
    assert manifest.golden == entry and entry["observations"] == 3
    assert manifest.files[GOLDEN_FILE] == entry["sha256"] == sha256_file(model / GOLDEN_FILE)
    assert "not torch" in entry["reference"] and manifest.model_id == data["model_id"]
    policy = load_policy(model, RuntimeConfig(providers=(CPU_PROVIDER,), precision="int8", verify_on_target=True))
    assert policy.metadata.verification["status"] == "passed"
    policy.close()
