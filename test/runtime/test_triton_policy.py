"""TritonPolicy against a real Triton server (the bundled tritonserver of .venv-triton, python
stand-ins running ONNX Runtime in place of the onnxruntime backend): results equal in-process,
concurrent robots are batched, a wrong contract, a missed deadline and a lost server are clear
errors. Skipped, with the reason, when the server venv is missing (scripts/setup_triton_server.sh)."""

import dataclasses
import sys
import threading
import time

import numpy as np
import pytest

from moe_vla_ros.contract import ContractError
from moe_vla_ros.paths import bundled_model_dir
from moe_vla_ros.runtime.config import RuntimeConfig
from moe_vla_ros.runtime.manifest import ModelLoadError
from moe_vla_ros.runtime.onnx_policy import OnnxRuntimePolicy
from moe_vla_ros.runtime.sample_observations import random_observations
from moe_vla_ros.runtime.triton_policy import (
    DeadlineExceededError,
    FallbackPolicy,
    RemotePolicyError,
    ServerUnavailableError,
    TritonConfig,
    TritonConfigError,
    TritonPolicy,
)
from moe_vla_ros.runtime.types import Policy, PolicyMetadata
from moe_vla_ros.serving.triton_repository import RepositoryConfig, build_repository, with_stand_in
from moe_vla_ros.serving.triton_server import TritonServer, free_port, read_metrics, server_venv_problem

pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] not installed (requirements.txt)")
CPU = RuntimeConfig(providers=("CPUExecutionProvider",), formulation="dense", report_placement=False)
SLOW = 20.0  # deadline for tests that check results, not timing (2 shared cores)
CLIENTS = 4


@pytest.fixture(scope="module")
def server(demo_export, tmp_path_factory):
    problem = server_venv_problem()
    if problem:
        print(f"\nTriton tests skipped: {problem}", file=sys.stderr)
        pytest.skip(problem)
    repo = tmp_path_factory.mktemp("triton") / "repo"
    build_repository(demo_export.model, repo, with_stand_in(RepositoryConfig(max_batch_size=8, max_queue_delay_us=10000)))
    server = TritonServer(repo).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def local(demo_export):
    policy = OnnxRuntimePolicy.load(demo_export.model, CPU)
    yield policy
    policy.close()


def _remote(demo_export, server, **kw):
    return TritonPolicy.load(demo_export.model, TritonConfig(url=server.grpc_url, **{"deadline_s": SLOW, **kw}), CPU)


def _assert_same(a, b, atol=1e-4):
    np.testing.assert_allclose(b.actions, a.actions, atol=atol, rtol=0)
    assert (b.reasoning is None) == (a.reasoning is None)
    if a.reasoning is not None:
        assert b.reasoning.text == a.reasoning.text
        np.testing.assert_array_equal(b.reasoning.token_ids, a.reasoning.token_ids)
        np.testing.assert_array_equal(b.reasoning.token_mask, a.reasoning.token_mask)
        assert b.reasoning.stopped_at_eos == a.reasoning.stopped_at_eos
    assert [u.layer_name for u in b.expert_usage] == [u.layer_name for u in a.expert_usage]
    for ua, ub in zip(a.expert_usage, b.expert_usage):
        np.testing.assert_allclose(ub.expert_load, ua.expert_load, atol=1e-6)
        assert ub.router_entropy == pytest.approx(ua.router_entropy, abs=1e-4)
        assert (ub.num_tokens, ub.dropped_tokens) == (ua.num_tokens, ua.dropped_tokens)


def test_results_equal_in_process(demo_export, server, local):
    remote = _remote(demo_export, server)
    try:
        assert remote.metadata.backend == "triton" and remote.metadata.formulation == "dense"
        assert all(m.batched for m in remote.served.values())
        for obs in random_observations(local.contract, 3, seed=11):
            local.reset(), remote.reset()
            _assert_same(local.infer(obs), remote.infer(obs))
            again = remote.infer(obs, generate_reasoning=False)  # per-robot reasoning state, kept on the client
            assert not again.reasoning_is_new and again.reasoning == remote.infer(obs, False).reasoning
        calls = remote.calls
        remote.infer(obs, generate_reasoning=True)
        assert remote.calls - calls == 4, "vision, trunk, one call for the whole reasoning trace, action head"
    finally:
        remote.close()
    short = dataclasses.replace(CPU, max_reasoning_tokens=3)  # the server loop honours the per-request limit
    local_short = OnnxRuntimePolicy.load(demo_export.model, short)
    remote_short = TritonPolicy.load(demo_export.model, TritonConfig(url=server.grpc_url, deadline_s=SLOW), short)
    try:
        a, b = local_short.infer(obs), remote_short.infer(obs)
        assert b.reasoning.num_tokens == a.reasoning.num_tokens <= 3
        _assert_same(a, b)
    finally:
        remote_short.close(), local_short.close()


def test_concurrent_clients_are_batched(demo_export, server, local):
    observations = [random_observations(local.contract, 3, seed=100 + c) for c in range(CLIENTS)]
    single = _remote(demo_export, server)
    try:
        reference = [[(single.reset(), single.infer(o))[1] for o in obs] for obs in observations]
    finally:
        single.close()
    robots = [_remote(demo_export, server) for _ in range(CLIENTS)]
    before = read_metrics(server.metrics_url)
    results: list = [None] * CLIENTS
    errors: list = []
    barrier = threading.Barrier(CLIENTS)

    def run(c):
        try:
            out = []
            for o in observations[c]:
                robots[c].reset()
                barrier.wait(timeout=SLOW)
                out.append(robots[c].infer(o))
            results[c] = out
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for r in robots:
        r.close()
    assert not errors, errors
    after = read_metrics(server.metrics_url)
    for c in range(CLIENTS):
        for want, got in zip(reference[c], results[c]):
            _assert_same(want, got)
    for model in ("vision", "trunk", "action_head", "reasoning"):
        requests = after[("nv_inference_count", model)] - before.get(("nv_inference_count", model), 0)
        executions = after[("nv_inference_exec_count", model)] - before.get(("nv_inference_exec_count", model), 0)
        assert requests == CLIENTS * 3, model
        if model != "reasoning":
            assert executions < requests, f"{model}: {executions} executions for {requests} requests (no batching)"


class _TamperedClient:
    """Proxies a tritonclient client; the trunk's metadata reports another shape."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)

    def get_model_metadata(self, name, *args, **kw):
        meta = self._client.get_model_metadata(name, *args, **kw)
        if name == "trunk":
            meta["outputs"][0]["shape"][-1] = str(int(meta["outputs"][0]["shape"][-1]) + 1)
        return meta


def test_wrong_contract_is_a_clear_error(demo_export, server, local, monkeypatch):
    with pytest.raises(ModelLoadError, match=r"model 'vision' serves model '.+', the robot's folder is 'default-"):
        TritonPolicy.load(bundled_model_dir(), TritonConfig(url=server.grpc_url), CPU)
    import tritonclient.grpc as grpcclient

    real = grpcclient.InferenceServerClient
    monkeypatch.setattr(grpcclient, "InferenceServerClient", lambda *a, **kw: _TamperedClient(real(*a, **kw)))
    with pytest.raises(ModelLoadError, match=r"model 'trunk': output 'trunk_tokens' is float32 \[-1, \d+, \d+\], "
                                             r"the manifest of .* says float32 \[-1, \d+, \d+\]"):
        _remote(demo_export, server)
    monkeypatch.undo()
    contract = local.contract.sensors
    other = dataclasses.replace(contract, joint_names=tuple(f"other_{n}" for n in contract.joint_names))
    with pytest.raises(ContractError, match="joint_names"):
        TritonPolicy.load(demo_export.model, TritonConfig(url=server.grpc_url), CPU, expected_contract=other)


def test_deadline_and_unreachable_server(demo_export, server, local):
    with pytest.raises(TritonConfigError, match="deadline_s"):
        TritonConfig(deadline_s=0)
    remote = _remote(demo_export, server, deadline_s=0.002)
    obs = random_observations(local.contract, 1, seed=3)[0]
    try:
        start = time.monotonic()
        with pytest.raises(DeadlineExceededError, match="deadline|Deadline"):
            remote.infer(obs)
        assert time.monotonic() - start < 0.5
    finally:
        remote.close()
    start = time.monotonic()
    with pytest.raises(ServerUnavailableError, match="not reachable"):
        TritonPolicy.load(demo_export.model, TritonConfig(url=f"127.0.0.1:{free_port()}", connect_timeout_s=1.0), CPU)
    assert time.monotonic() - start < 3.0


def test_server_down_is_an_error_within_the_deadline(demo_export, server, local):
    """Last test of the module: it stops the server."""
    deadline = 1.0
    remote = _remote(demo_export, server, deadline_s=deadline)
    obs = random_observations(local.contract, 1, seed=4)[0]
    try:
        remote.infer(obs)  # warm connection
        server.stop()
        for _ in range(2):
            start = time.monotonic()
            with pytest.raises(RemotePolicyError):
                remote.infer(obs)
            assert time.monotonic() - start < deadline + 0.25
    finally:
        remote.close()


class _Scripted(Policy):
    """A policy whose infer() returns or raises what it is told."""

    def __init__(self, contract, name, error=None):
        self.contract, self.name, self.error, self.resets, self.closed = contract, name, error, 0, False

    @property
    def metadata(self):
        return PolicyMetadata(model_id="m", backend=self.name, execution_providers=(), cpu_fallback=False)

    def infer(self, observation, generate_reasoning=True):
        if self.error is not None:
            raise self.error
        return self.name

    def reset(self):
        self.resets += 1

    def close(self):
        self.closed = True


def test_fallback_policy_holds_once_then_serves_onboard(local):
    remote = _Scripted(local.contract, "triton")
    onboard = _Scripted(local.contract, "onnxruntime")
    policy = FallbackPolicy(remote, onboard)
    assert policy.infer(None) == "triton" and policy.metadata.backend == "triton"
    remote.error = DeadlineExceededError("trunk: deadline")
    with pytest.raises(DeadlineExceededError):  # this step: the node holds
        policy.infer(None)
    assert policy.fallback_reason == "trunk: deadline" and onboard.resets == 1
    assert policy.infer(None) == "onnxruntime" and policy.metadata.backend == "onnxruntime"
    remote.error = None
    policy.reset_to_primary()
    assert policy.infer(None) == "triton"
    policy.close()
    assert remote.closed and onboard.closed
    other = dataclasses.replace(local.contract, chunk_length=local.contract.chunk_length + 1)
    with pytest.raises(ModelLoadError, match="contract differs"):
        FallbackPolicy(remote, _Scripted(other, "x"))


def test_fallback_policy_reads_instructions_as_its_model_does(local):
    policy = FallbackPolicy(local, _Scripted(local.contract, "onnxruntime"))
    reading = policy.read_instruction("wiggle the zorblax")
    assert reading == local.read_instruction("wiggle the zorblax") and "zorblax" in reading.unknown_words
