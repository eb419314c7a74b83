"""Every exported stage graph takes a batch: batch-B results equal B batch-1 results."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from moe_vla_ros.export.graphs import BATCH_DIM
from moe_vla_ros.runtime.manifest import STAGES, read_manifest
from moe_vla_ros.runtime.preprocessing import normalize_state, stack_images
from moe_vla_ros.runtime.sample_observations import random_observations
from moe_vla_ros.runtime.tokenization import BOS_ID, RuntimeTokenizer

B = 3
TOLERANCE = 2e-5


def _session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _stage_inputs(model_dir, manifest, formulation):
    """Batch-1 inputs of every stage for B observations, each stage fed by the previous one."""
    tokenizer = RuntimeTokenizer.load(model_dir)
    graphs = manifest.select_graphs(formulation, "fp32")
    sessions = {s: _session(model_dir / graphs[s].file) for s in STAGES}
    rows = []
    for i, obs in enumerate(random_observations(manifest.contract, B, seed=7)):
        images = stack_images(obs.images, manifest.contract.sensors.camera_names)
        state = normalize_state(obs.joint_positions, manifest.contract.normalization)
        ids, mask = tokenizer.encode(obs.instruction)
        vision = sessions["vision"].run(None, {"images": images})[0]
        trunk_in = {"vision_tokens": vision, "instruction_ids": ids[None], "instruction_mask": mask[None], "state": state}
        trunk_tokens = sessions["trunk"].run(None, trunk_in)[0]
        cross_kv = sessions["reasoning_context"].run(None, {"trunk_tokens": trunk_tokens})[0]
        r = manifest.contract.max_reasoning_tokens
        tokens = np.random.default_rng(i).integers(4, tokenizer.vocab_size, (1, r)).astype(np.int64)
        tokens[:, 0] = BOS_ID
        reasoning_mask = (np.arange(r) < 3 + i)[None].astype(np.int64)
        rows.append({
            "vision": {"images": images},
            "trunk": trunk_in,
            "reasoning_context": {"trunk_tokens": trunk_tokens},
            "reasoning_step": {"cross_kv": cross_kv, "tokens": tokens},
            "action_head": {"trunk_tokens": trunk_tokens, "state": state, "reasoning_ids": tokens * reasoning_mask,
                            "reasoning_mask": reasoning_mask},
        })
    return graphs, sessions, rows


@pytest.mark.parametrize("formulation", ["sparse", "dense"])
def test_batch_equals_batch_one(demo_export, formulation):
    model_dir = demo_export.model
    manifest = read_manifest(model_dir)
    graphs, sessions, rows = _stage_inputs(model_dir, manifest, formulation)
    for stage in STAGES:
        graph = onnx.load(str(model_dir / graphs[stage].file), load_external_data=False)
        for value in graph.graph.input:
            axis = 2 if value.name == "cross_kv" else 0
            assert value.type.tensor_type.shape.dim[axis].dim_param == BATCH_DIM, (graphs[stage].file, value.name)
        session = sessions[stage]
        names = [o.name for o in session.get_outputs()]
        singles = [dict(zip(names, session.run(None, row[stage]))) for row in rows]
        batch = {k: np.concatenate([row[stage][k] for row in rows], axis=2 if k == "cross_kv" else 0)
                 for k in rows[0][stage]}
        batched = dict(zip(names, session.run(None, batch)))
        for name in names:
            got = batched[name]
            if name == "router_logits":  # [M, B*S, E], batch-major
                want = np.concatenate([s[name] for s in singles], axis=1)
            elif name in ("expert_load", "router_entropy"):  # over all B*S tokens = mean of the samples
                want = np.mean([s[name] for s in singles], axis=0)
            else:
                want = np.concatenate([s[name] for s in singles], axis=2 if name == "cross_kv" else 0)
            assert got.shape == want.shape, (stage, name)
            err = float(np.abs(got.astype(np.float64) - want).max())
            assert err <= TOLERANCE, f"{graphs[stage].file} {name}: batch-{B} differs from batch-1 by {err:.3g}"
