"""ONNX Runtime sessions for one policy: provider options, session options, fallback detection.

The onnxruntime-gpu wheel lists TensorRT and CUDA in `get_available_providers()` even where
their libraries cannot load; a session asked for them then silently runs on CPU. So the
providers actually in use are read back from every session (`session.get_providers()`), and:

* the first session of a policy decides: later sessions are only offered the providers the
  first one got (no repeated load attempts, no repeated error spam);
* falling back to CPU when a GPU provider was requested is logged once per policy, as a
  warning, and reported as `cpu_fallback`.

Every session: graph optimisation level ALL, `intra_op_num_threads` from the config,
`session.intra_op.allow_spinning=0` (the policy runs several sessions back to back in one
process; spinning threads would steal the cores the next session needs).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnxruntime as ort

from moe_vla_ros.runtime.config import CPU_PROVIDER, CUDA_PROVIDER, GPU_PROVIDERS, TENSORRT_PROVIDER, RuntimeConfig
from moe_vla_ros.runtime.manifest import GraphEntry, ModelLoadError, TensorSpec

logger = logging.getLogger(__name__)

UINT8_MAX, INT16_MAX = 255, 32767
# CPU features that decide how ONNX Runtime computes int8 MatMuls (and which we report).
INT8_ISA_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8",  # x86
                  "asimd", "asimddp", "i8mm", "sve")  # ARM
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@functools.lru_cache(maxsize=1)
def cpu_description() -> dict[str, Any]:
    """This machine's CPU as the int8 kernels see it: {"machine", "cpu_model", "isa", "int8_kernel"}.

    isa: the INT8_ISA_FLAGS the CPU has (from /proc/cpuinfo; empty where unreadable).
    int8_kernel: "vnni" (x86 int32 dot products), "avx2_int16_pairs" (x86 without VNNI:
    vpmaddubsw, whose int16 pair sums saturate with 8-bit weights), "arm" or "unknown".
    """
    machine = platform.machine().lower()
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "cpu model", "hardware") and not model:
                    model = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    isa = [f for f in INT8_ISA_FLAGS if f in flags]
    if machine in ("x86_64", "amd64", "i686", "i386"):
        kernel = "vnni" if any(f in flags for f in VNNI_FLAGS) else ("avx2_int16_pairs" if flags else "unknown")
    elif machine in ("aarch64", "arm64") or machine.startswith("arm"):
        kernel = "arm"
    else:
        kernel = "unknown"
    return {"machine": machine, "cpu_model": model or platform.processor() or "unknown", "isa": isa,
            "int8_kernel": kernel}


def int8_variant_problem(variant: dict[str, Any] | None, cpu: dict[str, Any] | None = None) -> str:
    """Why an int8 variant (a manifest `variants` entry) would compute wrong results on this CPU ("" = it will not).

    Variants exported before the scheme was recorded used 8-bit U8S8 weights, whose int16 pair
    sums saturate on x86 CPUs without VNNI (see export/quantize.py); those are refused there.
    """
    cpu = cpu or cpu_description()
    scheme = (variant or {}).get("scheme")
    saturation_free = isinstance(scheme, dict) and bool(scheme.get("avx2_saturation_free"))
    if saturation_free or cpu["int8_kernel"] in ("vnni", "arm"):
        return ""
    what = "records no int8 scheme (exported with 8-bit U8S8 weights)" if not isinstance(scheme, dict) else (
        f"uses int8 scheme {scheme.get('name')!r}, which is not saturation-free")
    return (
        f"its int8 variant {what}: on this CPU ({cpu['cpu_model']}, {cpu['machine']}, no VNNI) ONNX Runtime's "
        "U8S8 kernel sums weight pairs in int16 and saturates, giving wrong actions; re-export the model "
        "(moe_vla_export --int8 writes 7-bit weights that cannot saturate) or run precision fp32"
    )


ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(uint8)": "uint8", "tensor(bool)": "bool",
}


def session_options(intra_op_threads: int, profile_prefix: str | None = None) -> ort.SessionOptions:
    """Options shared by every session of a policy (see the module docstring); with
    `profile_prefix`, ONNX Runtime profiles the session until `end_profiling()` (placement)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return options


def placement_from_profile(events: Sequence[dict[str, Any]]) -> dict[str, int]:
    """{provider: number of distinct nodes it ran} from an ONNX Runtime profile's events.

    Node events ("cat": "Node") carry the provider that executed the kernel in args.provider;
    a TensorRT/CUDA-graph partition shows up as one fused node of that provider.
    """
    nodes: dict[str, str] = {}
    for event in events:
        if not isinstance(event, dict):
            continue
        args = event.get("args")
        if event.get("cat") != "Node" or not isinstance(args, dict) or "provider" not in args:
            continue
        name = str(event.get("name", ""))
        for suffix in ("_kernel_time", "_fence_before", "_fence_after"):
            name = name.removesuffix(suffix)
        nodes[name] = str(args["provider"])
    counts: dict[str, int] = {}
    for provider in nodes.values():
        counts[provider] = counts.get(provider, 0) + 1
    return counts


def session_placement(session: ort.InferenceSession) -> dict[str, int]:
    """End a profiled session's profiling (after at least one run) and return its placement.

    The profile file is read and deleted; {} when the session was not profiled.
    """
    path = session.end_profiling()
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            events = json.load(f)
    except (OSError, ValueError):
        return {}
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    return placement_from_profile(events if isinstance(events, list) else [])


def provider_options(cfg: RuntimeConfig, engine_cache_dir: Path | None) -> list[tuple[str, dict[str, Any]]]:
    """(provider, options) pairs for `cfg.providers`, in order.

    TensorRT: FP16 as configured, workspace, engine cache + timing cache in `engine_cache_dir`
    (a cached engine whose graph and settings match is deserialised, never rebuilt).
    """
    pairs: list[tuple[str, dict[str, Any]]] = []
    for name in cfg.providers:
        if name == TENSORRT_PROVIDER:
            if engine_cache_dir is None:
                raise ValueError("the TensorRT provider needs an engine cache folder")
            pairs.append((name, {
                "device_id": cfg.device_id,
                "trt_fp16_enable": cfg.trt_fp16,
                "trt_max_workspace_size": cfg.trt_workspace_mb * (1 << 20),
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(engine_cache_dir),
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": str(engine_cache_dir),
            }))
        elif name == CUDA_PROVIDER:
            pairs.append((name, {"device_id": cfg.device_id}))
        else:
            pairs.append((name, {}))
    return pairs


class SessionFactory:
    """Creates the sessions of one policy and records which providers they actually use.

    Args:
        cfg: the runtime config (providers, threads, TensorRT options).
        engine_cache_dir: TensorRT cache folder of this model (created when TensorRT is requested).
        profile_dir: when set, every session is created with ONNX Runtime profiling on (files
            in this folder) so that `session_placement` can report which provider ran which nodes.
    """

    def __init__(self, cfg: RuntimeConfig, engine_cache_dir: Path | None = None, profile_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.profile_dir = profile_dir  # profile every session (placement report) with files here
        if TENSORRT_PROVIDER in cfg.providers and engine_cache_dir is not None:
            os.makedirs(engine_cache_dir, exist_ok=True)
        self._offered = provider_options(cfg, engine_cache_dir)
        self._decided = False
        self._in_use: list[str] = []
        self._warned = False

    @property
    def providers_in_use(self) -> tuple[str, ...]:
        """Union of the providers of every session created so far, in preference order."""
        return tuple(self._in_use)

    @property
    def gpu_in_use(self) -> bool:
        return any(p in GPU_PROVIDERS for p in self._in_use)

    @property
    def cpu_fallback(self) -> bool:
        """A GPU provider was requested but the sessions run on CPU only."""
        return self.cfg.wants_gpu and bool(self._in_use) and not self.gpu_in_use

    def create(self, path: str | os.PathLike, label: str = "") -> ort.InferenceSession:
        """A session for the ONNX file at `path`; ModelLoadError if ONNX Runtime cannot load it."""
        names = [p for p, _ in self._offered]
        try:
            session = ort.InferenceSession(
                str(path),
                sess_options=session_options(self.cfg.intra_op_threads, self._profile_prefix(path)),
                providers=names,
                provider_options=[o for _, o in self._offered],
            )
        except Exception as e:  # onnxruntime raises its own Fail / InvalidGraph / RuntimeException types
            raise ModelLoadError(f"ONNX Runtime cannot load {path}: {e}") from None
        used = list(session.get_providers())
        for p in used:
            if p not in self._in_use:
                self._in_use.append(p)
        self._in_use.sort(key=lambda p: names.index(p) if p in names else len(names))
        if not self._decided:
            self._decided = True
            # Later sessions are offered only what this one could use (CPU always stays last).
            self._offered = [(p, o) for p, o in self._offered if p in used or p == CPU_PROVIDER]
            self._report(used, label or str(path))
        return session

    def _profile_prefix(self, path: str | os.PathLike) -> str | None:
        if self.profile_dir is None:
            return None
        return str(Path(self.profile_dir) / Path(path).name.removesuffix(".onnx"))

    def _report(self, used: Sequence[str], label: str) -> None:
        missing = [p for p in self.cfg.providers if p in GPU_PROVIDERS and p not in used]
        if not missing or self._warned:
            return
        self._warned = True
        if not any(p in GPU_PROVIDERS for p in used):
            logger.warning(
                "CPU FALLBACK: requested %s but ONNX Runtime runs %s on %s only (GPU provider libraries or "
                "device unavailable); every session of this policy uses the CPU. Inference will be slower.",
                list(self.cfg.providers), label, used,
            )
        else:
            logger.warning("requested %s, %s unavailable: running on %s", list(self.cfg.providers), missing, used)


def check_session_io(session: ort.InferenceSession, entry: GraphEntry, model_dir: str | os.PathLike) -> None:
    """ModelLoadError when the session's inputs/outputs differ from the manifest entry.

    Names, order and dtypes must match; a static dimension the graph declares must equal the
    manifest's (graphs may leave output dimensions symbolic).
    """
    for kind, actual, expected in (
        ("inputs", session.get_inputs(), entry.inputs),
        ("outputs", session.get_outputs(), entry.outputs),
    ):
        got = [_spec(node) for node in actual]
        names = [s.name for s in got]
        want = [s.name for s in expected]
        if names != want:
            raise ModelLoadError(f"{model_dir}/{entry.file}: graph {kind} are {names}, the manifest says {want}")
        for g, e in zip(got, expected):
            dims_match = len(g.shape) == len(e.shape) and all(a < 0 or a == b for a, b in zip(g.shape, e.shape))
            if g.dtype != e.dtype or not dims_match:
                shown = [d if d >= 0 else "?" for d in g.shape]
                raise ModelLoadError(
                    f"{model_dir}/{entry.file}: {kind[:-1]} {g.name!r} is {g.dtype} {shown}, "
                    f"the manifest says {e.dtype} {list(e.shape)}"
                )


def _spec(node: Any) -> TensorSpec:
    """TensorSpec of an onnxruntime NodeArg; symbolic dimensions become -1."""
    shape = tuple(d if isinstance(d, int) else -1 for d in node.shape)
    return TensorSpec(node.name, shape, ORT_TYPES.get(node.type, node.type))

