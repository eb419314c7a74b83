"""A Triton Inference Server model repository from an exported model folder.

    report = build_repository("models/default", "build/triton_repo", RepositoryConfig())

Layout (one Triton model per stage, `config.pbtxt` + `1/model.onnx`), plus the decode loop:

    vision/              onnxruntime backend   images -> vision_tokens
    trunk/               onnxruntime backend   -> trunk_tokens + per-sample MoE telemetry
    action_head/         onnxruntime backend   -> actions + per-sample MoE telemetry
    reasoning_context/   onnxruntime backend   trunk_tokens -> cross_kv (batch on axis 2: unbatched model)
    reasoning_step/      onnxruntime backend   cross_kv, tokens -> logits (unbatched model)
    reasoning/           python backend        trunk_tokens, max_new_tokens -> reasoning_ids/mask/eos:
                                               the whole greedy loop on the server (BLS calls to the
                                               two reasoning graphs; no client round trip per token)
    moe_vla_repository.json   model id, formulation, precision, batching (and why not), models

Batching: with a dynamic batch axis on every selected graph (new exports: symbolic dim "batch")
and MoE layers whose routing is per token (token choice without capacity: a token's experts do
not depend on the other tokens of the batch), the stage models get `max_batch_size` and dynamic
batching. Their telemetry outputs are made per sample ([B, M, S, E], [B, M, E], [B, M]) by
appending ONNX nodes to the graph (`per_sample_telemetry`): the exported graphs output telemetry
over all routed tokens of the batch. Graphs with a fixed batch of 1 (e.g. the bundled model,
exported before the batch axis) or batch-dependent routing get `max_batch_size: 0` (no batching;
`report.batching_reason` says why).

Dense MoE graphs get the TensorRT execution accelerator (GPU instances). `stand_in=True` writes
python-backend models that run the same graphs with ONNX Runtime (`python_models/stand_in.py`)
in place of the onnxruntime backend, with the same names, inputs, outputs and batching: for a
server without Triton's onnxruntime backend (the nvidia-pytriton wheel ships only the python
backend; tests and CPU benchmarks use it). No torch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, helper

from moe_vla_ros.errors import BadInputError
from moe_vla_ros.runtime.manifest import MOE_STAGES, STAGES, GraphEntry, Manifest, MoELayerSpec, TensorSpec, read_manifest
from moe_vla_ros.runtime.tokenization import BOS_ID, EOS_ID, PAD_ID

REPOSITORY_INFO = "moe_vla_repository.json"
REPOSITORY_FORMAT = "moe_vla_triton_repository"
REASONING_MODEL = "reasoning"
MODEL_ID_PARAMETER = "moe_vla_model_id"
TRITON_DTYPES = {
    "float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64", "int32": "TYPE_INT32",
    "uint8": "TYPE_UINT8", "bool": "TYPE_BOOL",
}
INSTANCE_KINDS = ("KIND_GPU", "KIND_CPU")
TENSORRT_PRECISIONS = ("FP32", "FP16")
BATCH_AXIS = {("reasoning_context", "cross_kv"): 2, ("reasoning_step", "cross_kv"): 2}  # else 0
UNBATCHED_STAGES = ("reasoning_context", "reasoning_step")  # cross_kv carries the batch on axis 2
REASONING_INPUTS = ("trunk_tokens", "max_new_tokens")
REASONING_OUTPUTS = ("reasoning_ids", "reasoning_mask", "reasoning_eos")
PYTHON_MODELS = Path(__file__).resolve().parent / "python_models"


class RepositoryError(BadInputError):
    """The model folder or the repository settings cannot make a Triton repository."""


@dataclass(frozen=True)
class RepositoryConfig:
    """How the repository serves the model.

    Attributes:
        formulation: MoE formulation of the expert graphs: "dense" (every expert on every token,
            TensorRT ops only: the GPU choice) or "sparse".
        precision: "fp32", or a gated variant of the folder ("fp16" dense, "int8").
        max_batch_size: largest batch the dynamic batcher forms (graphs with a batch axis only);
            0 turns batching off.
        max_queue_delay_us: how long the dynamic batcher waits to fill a batch.
        instances: model instances per stage model.
        instance_kind: "KIND_GPU" or "KIND_CPU".
        tensorrt: TensorRT execution accelerator on the dense expert graphs (GPU instances).
        tensorrt_precision: its precision_mode, "FP32" or "FP16".
        stand_in: python-backend models running ONNX Runtime in place of the onnxruntime backend
            (same I/O and batching; CPU instances; for servers without the onnxruntime backend).
        intra_op_threads: ONNX Runtime threads per stand-in instance.
    """

    formulation: str = "dense"
    precision: str = "fp32"
    max_batch_size: int = 8
    max_queue_delay_us: int = 2000
    instances: int = 1
    instance_kind: str = "KIND_GPU"
    tensorrt: bool = True
    tensorrt_precision: str = "FP32"
    stand_in: bool = False
    intra_op_threads: int = 1

    def __post_init__(self) -> None:
        if self.formulation not in ("dense", "sparse"):
            raise RepositoryError(f"formulation must be 'dense' or 'sparse', got {self.formulation!r}")
        if self.max_batch_size < 0:
            raise RepositoryError(f"max_batch_size must be >= 0, got {self.max_batch_size}")
        if self.max_queue_delay_us < 0:
            raise RepositoryError(f"max_queue_delay_us must be >= 0, got {self.max_queue_delay_us}")
        if self.instances < 1:
            raise RepositoryError(f"instances must be >= 1, got {self.instances}")
        if self.instance_kind not in INSTANCE_KINDS:
            raise RepositoryError(f"instance_kind must be one of {INSTANCE_KINDS}, got {self.instance_kind!r}")
        if self.tensorrt_precision not in TENSORRT_PRECISIONS:
            raise RepositoryError(f"tensorrt_precision must be one of {TENSORRT_PRECISIONS}, got {self.tensorrt_precision!r}")
        if self.intra_op_threads < 1:
            raise RepositoryError(f"intra_op_threads must be >= 1, got {self.intra_op_threads}")


@dataclass(frozen=True)
class ModelIO:
    """One input/output of a Triton model: dims without the batch axis when the model batches."""

    name: str
    dtype: str  # numpy name, e.g. "float32"
    dims: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "dims": list(self.dims)}


@dataclass(frozen=True)
class TritonModel:
    """What the repository declares for one Triton model (also in moe_vla_repository.json)."""

    name: str
    backend: str  # "onnxruntime" | "python"
    max_batch_size: int
    inputs: tuple[ModelIO, ...]
    outputs: tuple[ModelIO, ...]
    stage: str = ""  # the stage graph it serves ("" for the reasoning loop)
    source_file: str = ""  # graph file of the model folder

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "backend": self.backend, "max_batch_size": self.max_batch_size, "stage": self.stage,
            "source_file": self.source_file, "inputs": [i.to_dict() for i in self.inputs],
            "outputs": [o.to_dict() for o in self.outputs],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TritonModel:
        io = lambda items: tuple(ModelIO(i["name"], i["dtype"], tuple(i["dims"])) for i in items)
        return cls(d["name"], d["backend"], int(d["max_batch_size"]), io(d["inputs"]), io(d["outputs"]),
                   d.get("stage", ""), d.get("source_file", ""))


@dataclass
class RepositoryReport:
    """What build_repository wrote (moe_vla_repository.json holds the same)."""

    model_id: str
    formulation: str
    precision: str
    max_batch_size: int  # of the batched models; 0 = no batching
    batching_reason: str  # why batching is off ("" when on)
    stand_in: bool
    models: dict[str, TritonModel] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPOSITORY_FORMAT, "version": 1, "model_id": self.model_id, "formulation": self.formulation,
            "precision": self.precision, "max_batch_size": self.max_batch_size,
            "batching_reason": self.batching_reason, "stand_in": self.stand_in,
            "models": {name: m.to_dict() for name, m in self.models.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RepositoryReport:
        models = {name: TritonModel.from_dict(m) for name, m in d["models"].items()}
        return cls(d["model_id"], d["formulation"], d["precision"], int(d["max_batch_size"]), d["batching_reason"],
                   bool(d["stand_in"]), models)


def read_repository_info(repository: str | os.PathLike) -> RepositoryReport:
    """The moe_vla_repository.json of a generated repository."""
    path = Path(repository) / REPOSITORY_INFO
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RepositoryError(f"{path}: not a moe_vla Triton repository ({e})") from None
    if raw.get("format") != REPOSITORY_FORMAT:
        raise RepositoryError(f"{path}: format is {raw.get('format')!r}, expected {REPOSITORY_FORMAT!r}")
    return RepositoryReport.from_dict(raw)


# ----------------------------------------------------------------------------- graphs
def batch_axis(stage: str, name: str) -> int:
    return BATCH_AXIS.get((stage, name), 0)


def graph_batch_problem(path: Path, entry: GraphEntry) -> str:
    """"" when every input of the graph has a symbolic batch axis, else why not."""
    model = onnx.load(str(path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        axis = batch_axis(entry.stage, value.name)
        if len(dims) <= axis or not dims[axis].dim_param:
            shown = [d.dim_param or d.dim_value for d in dims]
            return (f"{entry.file} has a fixed batch axis (input {value.name!r} is {shown}; exported before "
                    "the dynamic batch axis: re-export the checkpoint with moe_vla_export)")
    return ""


def routing_batch_problem(layers: Sequence[MoELayerSpec]) -> str:
    """"" when every MoE layer routes each token on its own (batch-independent), else why not."""
    for layer in layers:
        if layer.router != "token_choice" or layer.capacity_factor is not None:
            return (f"MoE layer {layer.name} routes with {layer.router} (capacity factor {layer.capacity_factor}): "
                    "a token's experts depend on the other tokens of a batch")
    return ""


def per_sample_telemetry(model: onnx.ModelProto, layers: Sequence[MoELayerSpec]) -> onnx.ModelProto:
    """The MoE stage graph with per-sample telemetry outputs.

    The graph's telemetry covers all N = B*S routed tokens of a batch: router_logits [M, B*S, E],
    expert_load [M, E], router_entropy [M]. The returned graph outputs instead

        router_logits  [B, M, S, E]  (the same logits, per sample)
        expert_load    [B, M, E]     fraction of each sample's S*K routed slots per expert
                                     (token choice: each token's top-K experts by logit)
        router_entropy [B, M]        mean over the sample's tokens of entropy(softmax(logits))

    which for one sample equal the graph's own outputs (model/moe_routing.py). `layers` are the
    stage's MoE layers in telemetry order (all token choice with one top_k and one E).
    """
    if not layers:
        raise RepositoryError("per_sample_telemetry needs the stage's MoE layers")
    m = len(layers)
    e, k, s = layers[0].num_experts, layers[0].top_k, layers[0].num_tokens
    if any((x.num_experts, x.top_k, x.num_tokens) != (e, k, s) for x in layers):
        raise RepositoryError(f"MoE layers of one stage differ in experts/top_k/tokens: {[x.name for x in layers]}")
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    outputs = {o.name: o for o in graph.output}
    renamed = {}
    for name in ("router_logits", "expert_load", "router_entropy"):
        if name not in outputs:
            raise RepositoryError(f"graph has no output {name!r} (outputs: {list(outputs)})")
        renamed[name] = f"{name}__all_tokens"
    for node in graph.node:  # the producers write the internal names; consumers read them
        node.output[:] = [renamed.get(o, o) for o in node.output]
        node.input[:] = [renamed.get(i, i) for i in node.input]
    keep = [o for o in graph.output if o.name not in renamed]
    del graph.output[:]
    graph.output.extend(keep)

    def const(name: str, values: Sequence[int], dtype: int = TensorProto.INT64) -> str:
        graph.initializer.append(helper.make_tensor(name, dtype, [len(values)], list(values)))
        return name

    p = "per_sample_telemetry__"
    shape = const(p + "shape", [m, -1, s, e])
    nodes = [
        helper.make_node("Reshape", [renamed["router_logits"], shape], [p + "logits_mbse"]),  # [M, B, S, E]
        helper.make_node("Transpose", [p + "logits_mbse"], ["router_logits"], perm=[1, 0, 2, 3]),  # [B, M, S, E]
        helper.make_node("LogSoftmax", ["router_logits"], [p + "log_probs"], axis=-1),  # [B, M, S, E]
        helper.make_node("Exp", [p + "log_probs"], [p + "probs"]),
        helper.make_node("Mul", [p + "probs", p + "log_probs"], [p + "plogp"]),
        helper.make_node("ReduceSum", [p + "plogp", const(p + "axis_e", [3])], [p + "neg_entropy"], keepdims=0),  # [B, M, S]
        helper.make_node("ReduceMean", [p + "neg_entropy", const(p + "axis_s", [2])], [p + "neg_mean"], keepdims=0),  # [B, M]
        helper.make_node("Neg", [p + "neg_mean"], ["router_entropy"]),  # [B, M]
        helper.make_node("TopK", ["router_logits", const(p + "k", [k])], [p + "top_values", p + "top_indices"],
                         axis=-1, largest=1, sorted=1),  # [B, M, S, K]
        helper.make_node("OneHot", [p + "top_indices", const(p + "depth", [e]),
                                    helper.make_tensor(p + "onehot_values", TensorProto.FLOAT, [2], [0.0, 1.0]).name],
                         [p + "assigned"], axis=-1),  # [B, M, S, K, E]
        helper.make_node("ReduceSum", [p + "assigned", const(p + "axes_sk", [2, 3])], [p + "slots"], keepdims=0),  # [B, M, E]
        helper.make_node("Div", [p + "slots", p + "num_slots"], ["expert_load"]),  # [B, M, E]
    ]
    graph.initializer.append(helper.make_tensor(p + "onehot_values", TensorProto.FLOAT, [2], [0.0, 1.0]))
    graph.initializer.append(helper.make_tensor(p + "num_slots", TensorProto.FLOAT, [], [float(s * k)]))
    graph.node.extend(nodes)
    batch = "batch"
    graph.output.extend([
        helper.make_tensor_value_info("router_logits", TensorProto.FLOAT, [batch, m, s, e]),
        helper.make_tensor_value_info("expert_load", TensorProto.FLOAT, [batch, m, e]),
        helper.make_tensor_value_info("router_entropy", TensorProto.FLOAT, [batch, m]),
    ])
    onnx.checker.check_model(model)
    return model


# ----------------------------------------------------------------------------- models
def _io(specs: Sequence[TensorSpec], stage: str, batched: bool, graph_batch: bool) -> tuple[ModelIO, ...]:
    """Manifest specs (batch 1) -> Triton I/O: without the batch axis when batched, else full dims
    with -1 where the graph's batch axis is symbolic."""
    out = []
    for spec in specs:
        dims = list(spec.shape)
        axis = batch_axis(stage, spec.name)
        if batched:
            del dims[axis]
        elif graph_batch:
            dims[axis] = -1
        out.append(ModelIO(spec.name, spec.dtype, tuple(dims)))
    return tuple(out)


def _telemetry_io(entry: GraphEntry, layers: Sequence[MoELayerSpec]) -> tuple[ModelIO, ...]:
    """Per-sample telemetry dims (batch axis excluded): [M, S, E], [M, E], [M]."""
    m, e, s = len(layers), layers[0].num_experts, layers[0].num_tokens
    head = tuple(o for o in _io(entry.outputs, entry.stage, True, True) if o.name not in ("router_logits", "expert_load", "router_entropy"))
    return head + (ModelIO("router_logits", "float32", (m, s, e)), ModelIO("expert_load", "float32", (m, e)),
                   ModelIO("router_entropy", "float32", (m,)))


def plan_models(manifest: Manifest, graphs: Mapping[str, GraphEntry], max_batch_size: int, graph_batch: bool,
                stand_in: bool) -> dict[str, TritonModel]:
    """The Triton models of the repository (stage models + the reasoning loop)."""
    backend = "python" if stand_in else "onnxruntime"
    batched = max_batch_size > 0
    models: dict[str, TritonModel] = {}
    for stage in STAGES:
        entry = graphs[stage]
        stage_batched = batched and stage not in UNBATCHED_STAGES
        inputs = _io(entry.inputs, stage, stage_batched, graph_batch)
        layers = [x for x in manifest.moe_layers if x.stage == stage]
        if stage_batched and stage in MOE_STAGES:
            outputs = _telemetry_io(entry, layers)
        else:
            outputs = _io(entry.outputs, stage, stage_batched, graph_batch)
        models[stage] = TritonModel(stage, backend, max_batch_size if stage_batched else 0, inputs, outputs, stage,
                                    entry.file)
    trunk_tokens = next(s for s in graphs["reasoning_context"].inputs if s.name == "trunk_tokens")
    r = manifest.contract.max_reasoning_tokens
    if batched:
        inputs = (ModelIO("trunk_tokens", trunk_tokens.dtype, tuple(trunk_tokens.shape[1:])), ModelIO("max_new_tokens", "int64", (1,)))
        outputs = (ModelIO("reasoning_ids", "int64", (r,)), ModelIO("reasoning_mask", "int64", (r,)),
                   ModelIO("reasoning_eos", "int64", (1,)))
    else:
        inputs = (ModelIO("trunk_tokens", trunk_tokens.dtype, tuple(trunk_tokens.shape)), ModelIO("max_new_tokens", "int64", (1,)))
        outputs = (ModelIO("reasoning_ids", "int64", (1, r)), ModelIO("reasoning_mask", "int64", (1, r)),
                   ModelIO("reasoning_eos", "int64", (1, 1)))
    models[REASONING_MODEL] = TritonModel(REASONING_MODEL, "python", max_batch_size, inputs, outputs)
    return models


# ----------------------------------------------------------------------------- config.pbtxt
def _quote(value: str) -> str:
    return json.dumps(str(value))


def _io_block(kind: str, items: Sequence[ModelIO]) -> list[str]:
    lines = [f"{kind} ["]
    for i, item in enumerate(items):
        dims = ", ".join(str(d) for d in item.dims)
        sep = "," if i < len(items) - 1 else ""
        lines.append(f"  {{ name: {_quote(item.name)} data_type: {TRITON_DTYPES[item.dtype]} dims: [ {dims} ] }}{sep}")
    lines.append("]")
    return lines


def _parameters(values: Mapping[str, str]) -> list[str]:
    return [f"parameters {{ key: {_quote(k)} value: {{ string_value: {_quote(v)} }} }}" for k, v in values.items()]


def model_config_text(model: TritonModel, cfg: RepositoryConfig, manifest: Manifest, comments: Sequence[str] = (),
                      parameters: Mapping[str, str] | None = None) -> str:
    """The config.pbtxt of one model (protobuf text format of inference.ModelConfig)."""
    lines = [f"# {c}" for c in comments]
    lines += [f"name: {_quote(model.name)}", f"backend: {_quote(model.backend)}", f"max_batch_size: {model.max_batch_size}"]
    lines += _io_block("input", model.inputs) + _io_block("output", model.outputs)
    if model.max_batch_size > 0:
        lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {cfg.max_queue_delay_us} }}")
    python = model.backend == "python"
    kind = "KIND_CPU" if cfg.stand_in else cfg.instance_kind
    if python and model.name == REASONING_MODEL:
        kind = "KIND_CPU"  # the loop itself is light; its graphs run on the stage models' instances
    lines.append(f"instance_group [ {{ count: {cfg.instances} kind: {kind} }} ]")
    dense_expert = model.stage in MOE_STAGES and cfg.formulation == "dense"
    if dense_expert and cfg.tensorrt and not python and kind == "KIND_GPU":
        lines += [
            "optimization { execution_accelerators { gpu_execution_accelerator: [ {",
            '  name: "tensorrt"',
            f'  parameters {{ key: "precision_mode" value: {_quote(cfg.tensorrt_precision)} }}',
            '  parameters { key: "max_workspace_size_bytes" value: "1073741824" }',
            '  parameters { key: "trt_engine_cache_enable" value: "true" }',
            "} ] } }",
        ]
    params = {MODEL_ID_PARAMETER: manifest.model_id, "formulation": cfg.formulation, "precision": cfg.precision,
              **(parameters or {})}
    lines += _parameters(params)
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- build
def build_repository(model_dir: str | os.PathLike, out_dir: str | os.PathLike, cfg: RepositoryConfig | None = None,
                     force: bool = False) -> RepositoryReport:
    """Write the Triton model repository of `model_dir` to `out_dir` (see the module docstring)."""
    cfg = cfg or RepositoryConfig()
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        if not force:
            raise RepositoryError(f"output folder {out_dir} is not empty; pass force (--force) to replace it")
        shutil.rmtree(out_dir) if out_dir.is_dir() else out_dir.unlink()
    manifest = read_manifest(model_dir)
    graphs = manifest.select_graphs(cfg.formulation, cfg.precision)
    batch_problems = [p for p in (graph_batch_problem(model_dir / graphs[s].file, graphs[s]) for s in STAGES) if p]
    graph_batch = not batch_problems
    reason = batch_problems[0] if batch_problems else routing_batch_problem(manifest.moe_layers)
    if not reason and cfg.max_batch_size == 0:
        reason = "max_batch_size 0 was asked for"
    max_batch_size = 0 if reason else cfg.max_batch_size
    models = plan_models(manifest, graphs, max_batch_size, graph_batch, cfg.stand_in)
    staging = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _write_models(staging, model_dir, manifest, graphs, models, cfg, reason, graph_batch)
        report = RepositoryReport(manifest.model_id, cfg.formulation, cfg.precision, max_batch_size, reason,
                                  cfg.stand_in, models)
        (staging / REPOSITORY_INFO).write_text(json.dumps(report.to_dict(), indent=1) + "\n")
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _write_models(root: Path, model_dir: Path, manifest: Manifest, graphs: Mapping[str, GraphEntry],
                  models: Mapping[str, TritonModel], cfg: RepositoryConfig, reason: str, graph_batch: bool) -> None:
    batching = f"max_batch_size {models['vision'].max_batch_size}: dynamic batching" if not reason else \
        f"max_batch_size 0 (no batching): {reason}"
    for stage in STAGES:
        model = models[stage]
        version = root / model.name / "1"
        version.mkdir(parents=True)
        entry = graphs[stage]
        if model.max_batch_size > 0 and stage in MOE_STAGES:
            graph = onnx.load(str(model_dir / entry.file))
            layers = [x for x in manifest.moe_layers if x.stage == stage]
            onnx.save(per_sample_telemetry(graph, layers), str(version / "model.onnx"))
        else:
            shutil.copy2(model_dir / entry.file, version / "model.onnx")
        comments = [f"moe_vla {manifest.model_id}: {stage} graph {entry.file} ({entry.formulation}, {entry.precision})",
                    batching]
        parameters = {}
        if cfg.stand_in:
            comments.append("stand-in: python backend running model.onnx with ONNX Runtime (no onnxruntime backend)")
            shutil.copy2(PYTHON_MODELS / "stand_in.py", version / "model.py")
            parameters["intra_op_threads"] = str(cfg.intra_op_threads)
        text = model_config_text(model, cfg, manifest, comments, parameters)
        (root / model.name / "config.pbtxt").write_text(text)
    model = models[REASONING_MODEL]
    version = root / model.name / "1"
    version.mkdir(parents=True)
    shutil.copy2(PYTHON_MODELS / "reasoning.py", version / "model.py")
    parameters = {
        "bos_id": str(BOS_ID), "eos_id": str(EOS_ID), "pad_id": str(PAD_ID),
        "max_reasoning_tokens": str(manifest.contract.max_reasoning_tokens),
        "context_model": "reasoning_context", "step_model": "reasoning_step",
        "graph_batch": "dynamic" if graph_batch else "fixed",
    }
    comments = [f"moe_vla {manifest.model_id}: greedy reasoning decode loop (BLS: reasoning_context once, "
                "reasoning_step per token)", batching]
    (root / model.name / "config.pbtxt").write_text(model_config_text(model, cfg, manifest, comments, parameters))


def with_stand_in(cfg: RepositoryConfig) -> RepositoryConfig:
    """`cfg` for a python stand-in repository (CPU instances, no TensorRT)."""
    return dataclasses.replace(cfg, stand_in=True, instance_kind="KIND_CPU", tensorrt=False)
