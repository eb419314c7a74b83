"""RuntimeConfig: how `load_policy` runs a model folder (backend, providers, graphs, threads).

    cfg = RuntimeConfig(providers=("CUDAExecutionProvider", "CPUExecutionProvider"), precision="int8")
    policy = load_policy("models/demo", cfg)

The policy node's `model.*` parameters (moe_vla_ros/spec/policy_node.py `ModelParams`) take their
choices and ranges from the constants here and build their RuntimeConfig with
`ModelParams.runtime_config()`: one definition, the two cannot disagree.
`TritonConfig` (held by RuntimeConfig.triton) says where the policy server of the "triton" backend
is and how long an inference may take (runtime/triton_policy.py).
No torch, no onnxruntime, no tritonclient import here.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from moe_vla_ros.errors import BadInputError

BACKENDS = ("onnxruntime", "torch", "triton")
TENSORRT_PROVIDER = "TensorrtExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
KNOWN_PROVIDERS = (TENSORRT_PROVIDER, CUDA_PROVIDER, CPU_PROVIDER)
GPU_PROVIDERS = (TENSORRT_PROVIDER, CUDA_PROVIDER)
FORMULATION_CHOICES = ("auto", "sparse", "dense")
PRECISION_CHOICES = ("fp32", "int8", "fp16")
DEFAULT_ENGINE_CACHE = "~/.cache/moe_vla_ros/trt"
# Inclusive ranges of the integer fields (also the ranges of the node's model.* parameters).
INT_RANGES = {"device_id": (0, 64), "intra_op_threads": (0, 64), "trt_workspace_mb": (64, 65536)}
# Inclusive ranges of TritonConfig's float fields [s] (also the ranges of the node's model.triton.* parameters).
TRITON_RANGES = {"deadline_s": (0.001, 60.0), "connect_timeout_s": (0.1, 600.0), "retry_primary_s": (0.0, 3600.0)}


class RuntimeConfigError(BadInputError):
    """A RuntimeConfig field has an invalid value."""


class TritonConfigError(RuntimeConfigError):
    """A TritonConfig field is invalid, or its deadline does not fit the model's control period."""


@dataclass(frozen=True)
class TritonConfig:
    """Where the policy server of the "triton" backend is and how long an inference may take.

    Attributes:
        url: the server's gRPC endpoint, "host:port".
        deadline_s: per inference (all its gRPC calls together); keep it below the control
            period so a late answer becomes a hold, never a stale command. `load_policy` refuses
            a deadline that is not shorter than the model's control period (`check_deadline`);
            warm-up inferences at configure get `connect_timeout_s` instead (the first calls
            include the server's own warm-up).
        connect_timeout_s: per call while loading (server checks, model metadata) and per
            warm-up inference.
        model_version: served model version ("" = the server's choice).
        ssl: gRPC over TLS.
        fallback_onboard: `load_policy` also loads the folder's ONNX Runtime policy (same
            providers, formulation, precision, on-target verification) and returns a
            FallbackPolicy: the step whose remote inference fails is a hold, the following
            steps are served onboard.
        retry_primary_s: with fallback_onboard, how often to try the server again while running
            onboard (a successful remote inference switches back; a failed try is served onboard
            in the same step, no hold); 0: stay onboard until the next configure.
    """

    url: str = "127.0.0.1:8001"
    deadline_s: float = 0.08
    connect_timeout_s: float = 5.0
    model_version: str = ""
    ssl: bool = False
    fallback_onboard: bool = False
    retry_primary_s: float = 5.0

    def __post_init__(self) -> None:
        host, _, port = str(self.url).rpartition(":")
        if not isinstance(self.url, str) or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise TritonConfigError(f"url must be 'host:port', got {self.url!r}")
        for name, (lo, hi) in TRITON_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and lo <= value <= hi):
                raise TritonConfigError(f"{name} must be a number of seconds in [{lo}, {hi}], got {value!r}")
        if not isinstance(self.model_version, str) or not (self.model_version == "" or self.model_version.isdigit()):
            raise TritonConfigError(f"model_version must be '' (the server's choice) or a version number, got {self.model_version!r}")
        for name in ("ssl", "fallback_onboard"):
            if not isinstance(getattr(self, name), bool):
                raise TritonConfigError(f"{name} must be a bool, got {getattr(self, name)!r}")

    @property
    def endpoint(self) -> str:
        """"triton://host:port" (how PolicyMetadata.execution_providers names the server)."""
        return f"triton://{self.url}"

    def deadline_problem(self, control_rate_hz: float) -> str:
        """"" when deadline_s is shorter than the control period of a model running at
        `control_rate_hz`, else why not."""
        period = 1.0 / control_rate_hz
        if self.deadline_s < period:
            return ""
        return (f"deadline_s {self.deadline_s * 1000:.0f} ms is not shorter than the model's control period "
                f"{period * 1000:.0f} ms ({control_rate_hz:g} Hz): a late answer would delay the next command "
                f"instead of becoming a hold")

    def check_deadline(self, control_rate_hz: float) -> None:
        """TritonConfigError unless deadline_s is shorter than the control period."""
        problem = self.deadline_problem(control_rate_hz)
        if problem:
            raise TritonConfigError(f"Triton server {self.url}: {problem}")


@dataclass(frozen=True)
class RuntimeConfig:
    """How to run a policy.

    Backend:
        backend: "onnxruntime" (the robot backend), "torch" (eager PyTorch from the folder's
            checkpoint, for debugging and parity checks) or "triton" (the stage graphs served by
            a Triton Inference Server, `triton`; the folder still provides tokenizer,
            normalisation and the contract, and the onboard fallback).
        torch_device: torch backend device ("cpu", "cuda", "cuda:1").
        triton: server, deadline and onboard fallback of the "triton" backend (TritonConfig).

    ONNX Runtime execution providers:
        providers: in order of preference, from KNOWN_PROVIDERS; CPUExecutionProvider is
            appended when missing so a session can always be created. Which providers are
            actually in use is read back from every session (PolicyMetadata).
        device_id: GPU index for the TensorRT and CUDA providers.
        trt_fp16: let TensorRT build FP16 engines.
        trt_engine_cache_dir: TensorRT engine + timing cache folder ("" = DEFAULT_ENGINE_CACHE);
            engines live in a per-model subfolder and a cached engine that matches the graph
            is loaded instead of being rebuilt.
        trt_workspace_mb: TensorRT builder workspace in MiB.
        intra_op_threads: ONNX Runtime intra-op threads per session (torch: torch.set_num_threads);
            0 = library default (ONNX Runtime: one per physical core). The default 1 is what
            measured fastest for policies of the small() size on CPU: per-op work is too small
            for a thread pool to pay off (benchmarks/bench_policy.py). Sessions never spin
            (several run back to back in one process).

    Graphs:
        formulation: MoE graphs to run: "sparse" (loop over experts, fastest on CPU), "dense"
            (static shapes, TensorRT) or "auto" (dense when a GPU provider is in use, else sparse).
        precision: "fp32", "int8" or "fp16": stages with a gated variant of that precision use
            it, the others fp32 (int8 exists for CPU graphs, fp16 for dense graphs).

    Behaviour:
        reasoning_enabled: False = never generate reasoning; actions follow an empty trace.
        max_reasoning_tokens: cap on generated reasoning tokens (None: the contract's R - 1).
        verify_checksums: check every file's sha256 against the manifest when loading.
        report_placement: profile one warm-up run at load and report, per graph, which provider
            ran how many nodes (PolicyMetadata.provider_placement); the providers in use are
            then those that ran nodes, not merely those registered with a session.
        verify_on_target: run the loaded variant on the folder's golden observations and hold
            it to its export gate; a variant that misses it falls back to the next one
            (int8/fp16 -> fp32, then the other formulation when "auto"); see runtime/loader.py.
            ONNX Runtime only (the "triton" backend: its onboard fallback policy).
    """

    backend: str = "onnxruntime"
    providers: tuple[str, ...] = KNOWN_PROVIDERS
    device_id: int = 0
    trt_fp16: bool = True
    trt_engine_cache_dir: str = ""
    trt_workspace_mb: int = 2048
    intra_op_threads: int = 1
    formulation: str = "auto"
    precision: str = "fp32"
    torch_device: str = "cpu"
    reasoning_enabled: bool = True
    max_reasoning_tokens: int | None = None
    verify_checksums: bool = True
    report_placement: bool = True
    verify_on_target: bool = False
    triton: TritonConfig = field(default_factory=TritonConfig)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise RuntimeConfigError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if isinstance(self.providers, str):
            raise RuntimeConfigError(f"providers must be a list of provider names, got the string {self.providers!r}")
        providers = tuple(self.providers)
        unknown = [p for p in providers if p not in KNOWN_PROVIDERS]
        if unknown:
            raise RuntimeConfigError(f"providers has unknown entries {unknown}; known: {list(KNOWN_PROVIDERS)}")
        if len(set(providers)) != len(providers):
            raise RuntimeConfigError(f"providers has duplicates: {list(providers)}")
        if CPU_PROVIDER not in providers:
            providers = providers + (CPU_PROVIDER,)
        object.__setattr__(self, "providers", providers)
        for name, (lo, hi) in INT_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise RuntimeConfigError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
        if self.formulation not in FORMULATION_CHOICES:
            raise RuntimeConfigError(f"formulation must be one of {FORMULATION_CHOICES}, got {self.formulation!r}")
        if self.precision not in PRECISION_CHOICES:
            raise RuntimeConfigError(f"precision must be one of {PRECISION_CHOICES}, got {self.precision!r}")
        if not (self.torch_device == "cpu" or self.torch_device.startswith("cuda")):
            raise RuntimeConfigError(f"torch_device must be 'cpu' or 'cuda[:N]', got {self.torch_device!r}")
        m = self.max_reasoning_tokens
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 0):
            raise RuntimeConfigError(f"max_reasoning_tokens must be None or an integer >= 0, got {m!r}")
        for name in ("trt_fp16", "reasoning_enabled", "verify_checksums", "report_placement", "verify_on_target"):
            if not isinstance(getattr(self, name), bool):
                raise RuntimeConfigError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if not isinstance(self.triton, TritonConfig):
            raise RuntimeConfigError(f"triton must be a TritonConfig, got {self.triton!r}")

    @property
    def wants_gpu(self) -> bool:
        """True when a GPU provider (TensorRT or CUDA) is requested."""
        return any(p in GPU_PROVIDERS for p in self.providers)

    def engine_cache_dir(self, model_id: str) -> Path:
        """The TensorRT engine/timing cache folder of one model."""
        base = self.trt_engine_cache_dir or DEFAULT_ENGINE_CACHE
        return Path(os.path.expanduser(base)) / model_id

