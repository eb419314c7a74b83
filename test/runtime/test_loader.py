"""load_policy picks the backend from the config; the ONNX Runtime backend is the default."""

import pytest

from moe_vla_ros.runtime.config import RuntimeConfig
from moe_vla_ros.runtime.loader import ModelLoadError, load_policy
from moe_vla_ros.runtime.onnx_policy import OnnxRuntimePolicy
from moe_vla_ros.runtime.torch_policy import TorchPolicy


def test_backend_dispatch(demo_export):
    assert isinstance(load_policy(demo_export.model, RuntimeConfig(providers=("CPUExecutionProvider",))), OnnxRuntimePolicy)
    assert isinstance(load_policy(demo_export.model, RuntimeConfig(backend="torch")), TorchPolicy)


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_missing_folder(tmp_path, backend):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_policy(tmp_path / "missing", RuntimeConfig(backend=backend))


def test_checkpoint_folder_is_not_an_onnx_model(demo_export):
    with pytest.raises(ModelLoadError, match="has no manifest.json"):
        load_policy(demo_export.checkpoint, RuntimeConfig(providers=("CPUExecutionProvider",)))


def test_triton_backend_dispatch_refuses_a_long_deadline_and_an_unreachable_server_before_fallback(monkeypatch):
    """Pure: no server (tritonclient connects lazily and fails fast on a closed port)."""
    import dataclasses as dc

    from moe_vla_ros.paths import bundled_model_dir
    from moe_vla_ros.runtime import onnx_policy
    from moe_vla_ros.runtime.config import RuntimeConfig, TritonConfig, TritonConfigError
    from moe_vla_ros.runtime.triton_policy import ServerUnavailableError
    from moe_vla_ros.serving.triton_server import free_port

    pytest.importorskip("tritonclient.grpc")
    loaded = []
    monkeypatch.setattr(onnx_policy.OnnxRuntimePolicy, "load", classmethod(lambda cls, *a, **kw: loaded.append(a)))
    base = RuntimeConfig(backend="triton", providers=("CPUExecutionProvider",))
    with pytest.raises(TritonConfigError, match="deadline_s 100 ms is not shorter than the model's control period"):
        load_policy(bundled_model_dir(), dc.replace(base, triton=TritonConfig(deadline_s=0.1)))
    url = f"127.0.0.1:{free_port()}"
    cfg = dc.replace(base, triton=TritonConfig(url=url, connect_timeout_s=0.5, fallback_onboard=True))
    with pytest.raises(ServerUnavailableError, match=f"Triton server at {url} is not reachable"):
        load_policy(bundled_model_dir(), cfg)
    assert not loaded, "the onboard fallback is loaded only once the server checked out"


def test_fallback_policy_tries_the_server_again():
    from moe_vla_ros.runtime.triton_policy import DeadlineExceededError, FallbackPolicy
    from moe_vla_ros.runtime.types import Policy, PolicyMetadata

    class Scripted(Policy):
        contract = None

        def __init__(self, name):
            self.name, self.error, self.ready, self.resets = name, None, True, 0

        @property
        def metadata(self):
            return PolicyMetadata(model_id="m", backend=self.name, execution_providers=(), cpu_fallback=False)

        def infer(self, observation, generate_reasoning=True):
            if self.error is not None:
                raise self.error
            return self.name

        def server_ready(self):
            return self.ready

        def reset(self):
            self.resets += 1

    now = [0.0]
    remote, onboard = Scripted("triton"), Scripted("onnxruntime")
    policy = FallbackPolicy(remote, onboard, retry_primary_s=1.0, clock=lambda: now[0])
    remote.error = DeadlineExceededError("deadline")
    with pytest.raises(DeadlineExceededError):
        policy.infer(None)
    assert policy.infer(None) == "onnxruntime" and policy.switches == 1
    now[0] = 1.0
    remote.ready = False  # the probe says no: served onboard, no remote try
    assert policy.infer(None) == "onnxruntime" and remote.resets == 0
    now[0] = 2.0
    remote.ready, remote.error = True, DeadlineExceededError("still late")  # a failed try: onboard, same step
    assert policy.infer(None) == "onnxruntime" and policy.fallback_reason == "still late"
    now[0] = 2.5
    remote.error = None
    assert policy.infer(None) == "onnxruntime"  # not due yet
    now[0] = 3.0
    assert policy.infer(None) == "triton" and policy.recoveries == 1 and policy.fallback_reason == ""
    assert policy.last_fallback_reason == "deadline" and remote.resets == 2  # fresh reasoning state
    assert policy.metadata.backend == "triton"
    never = FallbackPolicy(Scripted("triton"), Scripted("onnxruntime"), retry_primary_s=0.0, clock=lambda: now[0])
    never.primary.error = DeadlineExceededError("x")
    with pytest.raises(DeadlineExceededError):
        never.infer(None)
    never.primary.error = None
    now[0] = 1e6
    assert never.infer(None) == "onnxruntime"
