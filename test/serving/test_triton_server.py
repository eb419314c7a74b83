"""The bundled model, as exported with a fixed batch of 1 (no batching) and as exported today (a
batch axis: dynamic batching), served by the bundled tritonserver
through python stand-ins: TritonPolicy gives the in-process actions, reasoning and telemetry.
Skipped, with the reason, when the server venv is missing (scripts/setup_triton_server.sh)."""

import sys

import numpy as np
import pytest

from moe_vla_ros.paths import bundled_model_dir
from moe_vla_ros.runtime.config import RuntimeConfig
from moe_vla_ros.runtime.onnx_policy import OnnxRuntimePolicy
from moe_vla_ros.runtime.sample_observations import random_observations
from moe_vla_ros.runtime.triton_policy import TritonConfig, TritonPolicy
from moe_vla_ros.serving.triton_repository import RepositoryConfig, build_repository, with_stand_in
from moe_vla_ros.serving.triton_server import TritonServer, server_venv_problem

pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] not installed (requirements.txt)")
CPU = RuntimeConfig(providers=("CPUExecutionProvider",), formulation="dense", report_placement=False)


@pytest.fixture(scope="module", params=["fixed_batch", "batch_axis"])
def served(request, tmp_path_factory):
    """(model folder, its running server, whether it is batched): a copy exported with a fixed batch
    of 1 (served unbatched), then the bundled model (a symbolic batch axis: dynamic batching)."""
    problem = server_venv_problem()
    if problem:
        print(f"\nTriton tests skipped: {problem}", file=sys.stderr)
        pytest.skip(problem)
    fixed = request.param == "fixed_batch"
    model = request.getfixturevalue("fixed_batch_model") if fixed else bundled_model_dir()
    repo = tmp_path_factory.mktemp("triton") / "repo"
    report = build_repository(model, repo, with_stand_in(RepositoryConfig()))
    assert report.max_batch_size == (0 if fixed else RepositoryConfig().max_batch_size), report.batching_reason
    server = TritonServer(repo).start()
    yield model, server, not fixed
    server.stop()


def test_served_model_equals_in_process(served):
    model, server, batched = served
    local = OnnxRuntimePolicy.load(model, CPU)
    remote = TritonPolicy.load(model, TritonConfig(url=server.grpc_url, deadline_s=20.0), CPU)
    try:
        assert all(m.batched == batched for m in remote.served.values()), remote.served
        for obs in random_observations(local.contract, 2, seed=5):
            a, b = local.infer(obs), remote.infer(obs)
            np.testing.assert_allclose(b.actions, a.actions, atol=1e-4, rtol=0)
            assert b.reasoning.text == a.reasoning.text and b.reasoning.stopped_at_eos == a.reasoning.stopped_at_eos
            for ua, ub in zip(a.expert_usage, b.expert_usage):
                np.testing.assert_allclose(ub.expert_load, ua.expert_load, atol=1e-6)
    finally:
        remote.close()
        local.close()
