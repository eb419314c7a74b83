"""TritonPolicy: the policy served by a Triton Inference Server (gRPC), for robots without a strong GPU
or a fleet sharing one.

    policy = TritonPolicy.load("models/default", TritonConfig(url="server:8001", deadline_s=0.08))
    out = policy.infer(observation)   # the same PolicyOutput as OnnxRuntimePolicy

The node selects it with `model.backend: triton` (`load_policy`, RuntimeConfig.triton: TritonConfig
in runtime/config.py, re-exported here).

The server runs a repository made by `moe_vla_triton_repository` (moe_vla_ros/serving/): one
model per stage graph and "reasoning", the greedy decode loop on the server (one request per
trace, no round trip per token). The robot keeps the model folder (the same one an onboard
fallback would load): tokenisation, normalisation, caching of reasoning and telemetry decoding are
the shared StagedPolicy pipeline, so only the stage numerics run remotely. Reasoning state is per
policy object (per robot): the server holds none.

At load (configure) every served model is checked against the folder's manifest: the model id
recorded in each config, input/output names, dtypes and shapes from the server's model metadata
(a batched model's shapes lead with -1; its telemetry is per sample). A mismatch raises
ModelLoadError naming the model, tensor and both values; an unreachable server raises
ServerUnavailableError.

Every infer() has one deadline (TritonConfig.deadline_s, shorter than the control period): each
gRPC call gets what is left of it. A call past the deadline raises DeadlineExceededError, a lost
server ServerUnavailableError, any other server error RemotePolicyError: all RemotePolicyError
(a FailedError), which the node turns into a hold; `FallbackPolicy` then serves the next steps
from an onboard policy (the node's optional fallback).
tritonclient is imported only when this backend is used.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moe_vla_ros.contract import SensorContract
from moe_vla_ros.errors import FailedError
from moe_vla_ros.runtime.config import RuntimeConfig, TritonConfig, TritonConfigError
from moe_vla_ros.runtime.manifest import TELEMETRY_OUTPUTS, GraphEntry, Manifest, ModelLoadError, read_manifest
from moe_vla_ros.runtime.onnx_policy import check_contract, load_tokenizer
from moe_vla_ros.runtime.staged_policy import StagedPolicy, StepFunction
from moe_vla_ros.runtime.telemetry import StageTelemetry
from moe_vla_ros.runtime.tokenization import InstructionReading, RuntimeTokenizer
from moe_vla_ros.runtime.types import Observation, Policy, PolicyMetadata

logger = logging.getLogger(__name__)

BACKEND_NAME = "triton"
MODEL_ID_PARAMETER = "moe_vla_model_id"  # serving/triton_repository.py writes it into every config
REASONING_MODEL = "reasoning"
SERVED_STAGES = ("vision", "trunk", "action_head")  # called by the client; the reasoning graphs run behind "reasoning"
REASONING_INPUTS = {"trunk_tokens": "float32", "max_new_tokens": "int64"}
REASONING_OUTPUTS = ("reasoning_ids", "reasoning_mask", "reasoning_eos")
TRITON_TO_NUMPY = {"FP32": "float32", "FP16": "float16", "INT64": "int64", "INT32": "int32", "UINT8": "uint8", "BOOL": "bool"}
NUMPY_TO_TRITON = {v: k for k, v in TRITON_TO_NUMPY.items()}


class RemotePolicyError(FailedError):
    """The server did not deliver this inference; the robot holds (and may fall back onboard)."""


class DeadlineExceededError(RemotePolicyError):
    """The inference did not finish within TritonConfig.deadline_s."""


class ServerUnavailableError(RemotePolicyError):
    """The server cannot be reached (down, restarting, network lost)."""


@dataclass(frozen=True)
class ServedModel:
    """What the server says about one model (from its metadata and config)."""

    name: str
    max_batch_size: int
    inputs: Mapping[str, tuple[str, tuple[int, ...]]]  # name -> (numpy dtype, shape incl. -1 batch axis)
    outputs: Mapping[str, tuple[str, tuple[int, ...]]]

    @property
    def batched(self) -> bool:
        return self.max_batch_size > 0


def _grpc():
    try:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException
    except ImportError as e:  # pragma: no cover - requirements.txt installs it
        raise ModelLoadError(f"the triton backend needs tritonclient[grpc] (requirements.txt): {e}") from None
    return grpcclient, InferenceServerException


def _remote_error(error: Exception, what: str) -> RemotePolicyError:
    """An InferenceServerException as the RemotePolicyError kind it is."""
    status = str(getattr(error, "status", lambda: "")() or "")
    text = f"{what}: {getattr(error, 'message', lambda: str(error))() or error}"
    if "DEADLINE_EXCEEDED" in status or "Deadline Exceeded" in text:
        return DeadlineExceededError(text)
    if "UNAVAILABLE" in status or "failed to connect" in text.lower() or "Socket closed" in text:
        return ServerUnavailableError(text)
    return RemotePolicyError(text)


def expected_io(entry: GraphEntry, batched: bool, names: Sequence[str] | None = None) -> dict[str, tuple[str, tuple[int, ...]]]:
    """What a served stage model must declare: the manifest's batch-1 specs, with a leading -1 batch
    axis when batched (MoE telemetry: per sample, [M, N, E] -> [-1, M, N, E])."""
    specs = entry.inputs if names is None else tuple(s for s in entry.outputs if s.name in names)
    out = {}
    for spec in specs:
        shape = tuple(spec.shape)
        if batched:
            shape = (-1, *shape) if spec.name in TELEMETRY_OUTPUTS else (-1, *shape[1:])
        out[spec.name] = (spec.dtype, shape)
    return out


def _shapes_match(got: tuple[int, ...], want: tuple[int, ...]) -> bool:
    return len(got) == len(want) and all(a == b or (a == -1 and i == 0) for i, (a, b) in enumerate(zip(got, want)))


class TritonPolicy(StagedPolicy):
    """Runs the stage graphs on a Triton server; build with `load` (see the module docstring)."""

    def __init__(self, model_dir: Path, manifest: Manifest, tokenizer: RuntimeTokenizer, cfg: RuntimeConfig,
                 triton: TritonConfig, client: Any, served: Mapping[str, ServedModel], metadata: PolicyMetadata) -> None:
        super().__init__(manifest.contract, tokenizer, manifest.moe_layers, cfg, metadata)
        self.model_dir = model_dir
        self.manifest = manifest
        self.triton = triton
        self.served = dict(served)
        self._client = client
        self._deadline = 0.0
        self._deadline_s = triton.deadline_s  # of the next infer() (warm_up_deadline: connect_timeout_s)
        self.calls = 0  # gRPC inference calls made (diagnostics)

    # ----------------------------------------------------------------------------- load
    @classmethod
    def load(cls, model_dir: str | os.PathLike, triton: TritonConfig | None = None, cfg: RuntimeConfig | None = None,
             expected_contract: SensorContract | None = None) -> TritonPolicy:
        """Read the local folder, connect, check every served model against the manifest."""
        triton = triton or TritonConfig()
        cfg = cfg or RuntimeConfig()
        model_dir = Path(model_dir)
        manifest = read_manifest(model_dir, verify_checksums=cfg.verify_checksums)
        check_contract(manifest, expected_contract, model_dir)
        tokenizer = load_tokenizer(model_dir, manifest)
        problem = triton.deadline_problem(manifest.contract.sensors.control_rate_hz)
        if problem:  # load_policy (the node) refuses it; tests and benchmarks may ask for long deadlines
            logger.warning("Triton server %s: %s", triton.url, problem)
        grpcclient, server_error = _grpc()
        client = grpcclient.InferenceServerClient(triton.url, ssl=triton.ssl)
        try:
            served, formulation = cls._check_server(client, server_error, manifest, triton)
        except BaseException:
            client.close()
            raise
        metadata = PolicyMetadata(
            model_id=manifest.model_id, backend=BACKEND_NAME, execution_providers=(triton.endpoint,),
            cpu_fallback=False, formulation=formulation,
        )
        return cls(model_dir, manifest, tokenizer, cfg, triton, client, served, metadata)

    @staticmethod
    def _check_server(client: Any, server_error: type, manifest: Manifest, triton: TritonConfig) -> tuple[dict[str, ServedModel], str]:
        timeout = triton.connect_timeout_s
        try:
            ready = client.is_server_ready(client_timeout=timeout)
        except server_error as e:
            raise ServerUnavailableError(f"Triton server at {triton.url} is not reachable: {e}") from None
        if not ready:
            raise ServerUnavailableError(f"Triton server at {triton.url} is not ready")
        served: dict[str, ServedModel] = {}
        formulation = ""
        graphs = manifest.select_graphs(manifest.formulations()[0], "fp32")  # I/O is the same for every variant
        for name in (*SERVED_STAGES, REASONING_MODEL):
            where = f"Triton server {triton.url}, model {name!r}"
            try:
                if not client.is_model_ready(name, triton.model_version, client_timeout=timeout):
                    raise ModelLoadError(f"{where} is not ready (is the repository made from {manifest.model_id}?)")
                config = client.get_model_config(name, triton.model_version, as_json=True, client_timeout=timeout)["config"]
                meta = client.get_model_metadata(name, triton.model_version, as_json=True, client_timeout=timeout)
            except server_error as e:
                raise _remote_error(e, where) from None
            params = config.get("parameters", {})
            served_id = params.get(MODEL_ID_PARAMETER, {}).get("string_value", "")
            if served_id != manifest.model_id:
                raise ModelLoadError(f"{where} serves model {served_id or '(unknown)'!r}, the robot's folder is "
                                     f"{manifest.model_id!r}: the contract cannot be trusted")
            io = lambda items: {t["name"]: (TRITON_TO_NUMPY.get(t["datatype"], t["datatype"]), tuple(int(d) for d in t["shape"]))
                                for t in items}
            model = ServedModel(name, int(config.get("max_batch_size", 0)), io(meta.get("inputs", [])), io(meta.get("outputs", [])))
            if name == REASONING_MODEL:
                want_in = {"trunk_tokens": ("float32", expected_io(graphs["reasoning_context"], model.batched)["trunk_tokens"][1]),
                           "max_new_tokens": ("int64", (-1, 1) if model.batched else (1,))}
                r = manifest.contract.max_reasoning_tokens
                shape = (-1, r) if model.batched else (1, r)
                want_out = {"reasoning_ids": ("int64", shape), "reasoning_mask": ("int64", shape),
                            "reasoning_eos": ("int64", (-1, 1) if model.batched else (1, 1))}
            else:
                entry = graphs[name]
                want_in = expected_io(entry, model.batched)
                want_out = expected_io(entry, model.batched, [s.name for s in entry.outputs])
            for kind, got, want in (("input", model.inputs, want_in), ("output", model.outputs, want_out)):
                if list(got) != list(want):
                    raise ModelLoadError(f"{where}: {kind}s are {list(got)}, the manifest of {manifest.model_id} "
                                         f"says {list(want)}")
                for tensor, (dtype, shape) in want.items():
                    g_dtype, g_shape = got[tensor]
                    if g_dtype != dtype or not _shapes_match(g_shape, shape):
                        raise ModelLoadError(f"{where}: {kind} {tensor!r} is {g_dtype} {list(g_shape)}, the manifest of "
                                             f"{manifest.model_id} says {dtype} {list(shape)}")
            served[name] = model
            comment = config.get("parameters", {}).get("formulation", {}).get("string_value", "")
            formulation = formulation or comment
        return served, formulation

    # ----------------------------------------------------------------------------- calls
    @contextlib.contextmanager
    def warm_up_deadline(self) -> Iterator[None]:
        """Inferences inside get TritonConfig.connect_timeout_s as their deadline: warm-up at
        configure (the first calls include connection set-up and the server's own warm-up)."""
        self._deadline_s = max(self.triton.deadline_s, self.triton.connect_timeout_s)
        try:
            yield
        finally:
            self._deadline_s = self.triton.deadline_s

    def server_ready(self, timeout_s: float | None = None) -> bool:
        """Whether the server answers and says it is ready (one short call; never raises)."""
        _, server_error = _grpc()
        try:
            return bool(self._client.is_server_ready(client_timeout=timeout_s or self.triton.deadline_s))
        except server_error:
            return False

    def _remaining(self, what: str) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceededError(f"{what}: the {self._deadline_s * 1000:.0f} ms deadline passed before the call")
        return left

    def _infer(self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]) -> list[np.ndarray]:
        grpcclient, server_error = _grpc()
        where = f"Triton {self.triton.url} model {model!r}"
        timeout = self._remaining(where)
        tensors = []
        for name, value in inputs.items():
            value = np.ascontiguousarray(value)
            t = grpcclient.InferInput(name, list(value.shape), NUMPY_TO_TRITON[str(value.dtype)])
            t.set_data_from_numpy(value)
            tensors.append(t)
        requested = [grpcclient.InferRequestedOutput(n) for n in outputs]
        self.calls += 1
        try:
            result = self._client.infer(model, tensors, model_version=self.triton.model_version, outputs=requested,
                                        client_timeout=timeout)
        except server_error as e:
            raise _remote_error(e, where) from None
        return [result.as_numpy(n) for n in outputs]

    def infer_with_router_logits(self, observation: Observation, generate_reasoning: bool = True):
        self._deadline = time.monotonic() + self._deadline_s
        return super().infer_with_router_logits(observation, generate_reasoning)

    def _telemetry(self, model: str, logits: np.ndarray, load: np.ndarray, entropy: np.ndarray) -> StageTelemetry:
        if self.served[model].batched:  # per sample: [1, M, N, E], [1, M, E], [1, M]
            logits, load, entropy = logits[0], load[0], entropy[0]
        return StageTelemetry(logits, load, entropy)  # [M, N, E], [M, E], [M]

    def _run_vision(self, images: np.ndarray) -> np.ndarray:
        return self._infer("vision", {"images": images}, ["vision_tokens"])[0]  # [1, Nv, D]

    def _run_trunk(self, vision_tokens, instruction_ids, instruction_mask, state):
        tokens, logits, load, entropy = self._infer("trunk", {
            "vision_tokens": vision_tokens, "instruction_ids": instruction_ids,
            "instruction_mask": instruction_mask, "state": state,
        }, ["trunk_tokens", *TELEMETRY_OUTPUTS])
        return tokens, self._telemetry("trunk", logits, load, entropy)

    def _reasoning_step(self, trunk_tokens: Any) -> StepFunction:  # pragma: no cover - the loop runs on the server
        raise NotImplementedError("TritonPolicy decodes reasoning on the server (model 'reasoning')")

    def _decode_reasoning(self, trunk_tokens: Any) -> tuple[np.ndarray, np.ndarray, bool]:
        """The whole decode loop in one call to the server's reasoning model."""
        r = self.contract.max_reasoning_tokens
        limit = r - 1 if self.cfg.max_reasoning_tokens is None else min(int(self.cfg.max_reasoning_tokens), r - 1)
        batched = self.served[REASONING_MODEL].batched
        max_new = np.full((1, 1) if batched else (1,), limit, dtype=np.int64)
        ids, mask, eos = self._infer(REASONING_MODEL, {"trunk_tokens": trunk_tokens, "max_new_tokens": max_new},
                                     list(REASONING_OUTPUTS))
        ids, mask = ids.reshape(-1).astype(np.int64), mask.reshape(-1).astype(np.int64)  # [R], [R]
        return ids, mask, bool(eos.reshape(-1)[0])

    def _run_action_head(self, trunk_tokens, state, reasoning_ids, reasoning_mask):
        actions, logits, load, entropy = self._infer("action_head", {
            "trunk_tokens": trunk_tokens, "state": state,
            "reasoning_ids": reasoning_ids, "reasoning_mask": reasoning_mask,
        }, ["actions", *TELEMETRY_OUTPUTS])
        return actions, self._telemetry("action_head", logits, load, entropy)  # [1, H, J], telemetry

    def _release(self) -> None:
        try:
            self._client.close()
        except Exception:
            pass


class FallbackPolicy(Policy):
    """A remote policy with an onboard one behind it (the node's optional fallback).

    infer() runs `primary` (a TritonPolicy) until it raises a RemotePolicyError; that error is
    re-raised (the node holds for that step: the fallback's first answer would come late) and
    the following steps are served by `fallback` (an OnnxRuntimePolicy loaded at configure, so
    switching costs no loading). `fallback_reason` says why it switched ("" on the primary).

    Back to the primary: with `retry_primary_s` > 0, a step at least that long after the switch
    (or the last try) first asks the primary's server whether it is ready (`server_ready`, one
    short call) and then tries a remote inference (the primary's reasoning state reset first: its
    last trace predates the outage); a success serves the step and switches back, a failure is
    served by the fallback in the same step (no further hold). With 0 it stays on the fallback
    until reset_to_primary() (e.g. the next configure). `switches` and `recoveries` count both
    directions, `last_fallback_reason` keeps the last switch's reason. metadata is the active policy's.
    """

    def __init__(self, primary: Policy, fallback: Policy, retry_primary_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if primary.contract != fallback.contract:
            raise ModelLoadError("the fallback policy's contract differs from the remote policy's")
        if not (math.isfinite(retry_primary_s) and retry_primary_s >= 0):
            raise TritonConfigError(f"retry_primary_s must be >= 0, got {retry_primary_s!r}")
        self.primary, self.fallback = primary, fallback
        self.contract = primary.contract
        self.retry_primary_s = float(retry_primary_s)
        self.fallback_reason = ""
        self.last_fallback_reason = ""  # why it switched last (kept after going back)
        self.fallback_since = 0.0  # clock() at the switch
        self.switches = 0
        self.recoveries = 0
        self._clock = clock
        self._next_try = math.inf

    @property
    def active(self) -> Policy:
        return self.fallback if self.fallback_reason else self.primary

    @property
    def metadata(self) -> PolicyMetadata:
        return self.active.metadata

    def infer(self, observation: Observation, generate_reasoning: bool = True):
        if self.fallback_reason:
            if self._clock() >= self._next_try:
                out = self._try_primary(observation)
                if out is not None:
                    return out
            return self.fallback.infer(observation, generate_reasoning)
        try:
            return self.primary.infer(observation, generate_reasoning)
        except RemotePolicyError as e:
            self.fallback_reason = self.last_fallback_reason = str(e)
            self.fallback_since = self._clock()
            self.switches += 1
            self._schedule_try()
            self.fallback.reset()
            logger.warning("remote policy failed, the following steps run onboard (%s): %s",
                           ",".join(self.fallback.metadata.execution_providers), e)
            raise

    def _schedule_try(self) -> None:
        self._next_try = self._clock() + self.retry_primary_s if self.retry_primary_s > 0 else math.inf

    def _try_primary(self, observation: Observation):
        """One try to go back to the primary: its output, or None (the fallback serves this step)."""
        self._schedule_try()
        ready = getattr(self.primary, "server_ready", None)
        if ready is not None and not ready():
            return None
        self.primary.reset()
        try:
            out = self.primary.infer(observation, True)
        except RemotePolicyError as e:
            self.fallback_reason = str(e)
            return None
        logger.warning("remote policy answers again after %.1f s onboard: back on %s",
                       self._clock() - self.fallback_since, ",".join(self.primary.metadata.execution_providers))
        self.fallback_reason = ""
        self.recoveries += 1
        self._next_try = math.inf
        return out

    def reset_to_primary(self) -> None:
        self.fallback_reason = ""
        self._next_try = math.inf
        self.primary.reset()

    def reset(self) -> None:
        self.active.reset()

    def read_instruction(self, text: str) -> InstructionReading | None:
        """The primary's reading (both serve the same model folder, so the same vocabulary)."""
        return self.primary.read_instruction(text)

    def close(self) -> None:
        self.primary.close()
        self.fallback.close()
