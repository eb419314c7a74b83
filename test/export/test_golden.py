"""Golden outputs of the exported tiny policy (random weights from seed 0, no training).

A fixed observation goes through the exported graphs (both formulations) and the torch backend;
actions, reasoning ids and expert loads must equal the values stored in golden_tiny_policy.json,
so any change of the export, the runtime or the model numerics shows up here.

After an intended change, regenerate (and say why in the commit message):

    MOE_VLA_REGENERATE_GOLDEN=1 .venv/bin/python -m pytest test/export/test_golden.py
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from moe_vla_ros.export.pipeline import weights_digest
from moe_vla_ros.runtime.config import RuntimeConfig
from moe_vla_ros.runtime.loader import load_policy
from moe_vla_ros.runtime.sample_observations import random_observation

GOLDEN = Path(__file__).with_name("golden_tiny_policy.json")
REGENERATE = os.environ.get("MOE_VLA_REGENERATE_GOLDEN") == "1"
OBSERVATION_SEED = 2024
INSTRUCTION = "reach the red square"


def observation_digest(obs) -> str:
    digest = hashlib.sha256()
    for name in sorted(obs.images):
        digest.update(name.encode() + obs.images[name].tobytes())
    digest.update(np.asarray(obs.joint_positions, dtype=np.float64).tobytes() + obs.instruction.encode())
    return digest.hexdigest()


def run(model_dir, backend: str, formulation: str) -> dict:
    policy = load_policy(model_dir, RuntimeConfig(backend=backend, providers=("CPUExecutionProvider",),
                                                  formulation=formulation))
    obs = random_observation(policy.contract, OBSERVATION_SEED, INSTRUCTION)
    out = policy.infer(obs)
    return {
        "weights_digest": weights_digest(Path(model_dir) / "checkpoint" / "model.safetensors"),
        "observation_sha256": observation_digest(obs),
        "actions": out.actions.tolist(),
        "reasoning_ids": out.reasoning.token_ids.tolist(),
        "reasoning_text": out.reasoning.text,
        "expert_load": {u.layer_name: u.expert_load.tolist() for u in out.expert_usage},
    }


@pytest.mark.parametrize("backend, formulation", [("onnxruntime", "sparse"), ("onnxruntime", "dense"), ("torch", "sparse")])
def test_matches_golden_values(demo_export, backend, formulation):
    result = run(demo_export.model, backend, formulation)
    if REGENERATE:
        if (backend, formulation) == ("onnxruntime", "sparse"):
            GOLDEN.write_text(json.dumps(result, indent=1) + "\n")
        pytest.skip("golden values regenerated")
    golden = json.loads(GOLDEN.read_text())
    assert result["weights_digest"] == golden["weights_digest"], "the seeded tiny checkpoint changed (model init / RNG)"
    assert result["observation_sha256"] == golden["observation_sha256"], "sample_observations changed"
    assert result["reasoning_ids"] == golden["reasoning_ids"] and result["reasoning_text"] == golden["reasoning_text"]
    np.testing.assert_allclose(result["actions"], golden["actions"], atol=1e-5, rtol=0)
    assert result["expert_load"].keys() == golden["expert_load"].keys()
    for name, load in golden["expert_load"].items():
        np.testing.assert_allclose(result["expert_load"][name], load, atol=1e-6)
