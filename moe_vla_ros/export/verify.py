"""Export verification: every graph against PyTorch, then the whole ONNX Runtime policy against
the torch policy. Any failure fails the export (ExportVerificationError with the full report).

Graph level (`verify_graphs`), per graph, ONNX Runtime CPU vs the torch module on labelled
input sets:

    vision             random scene, all-black and all-white images
    trunk              a random batch; full-length and one-word instructions; degenerate tokens;
                       identical vision tokens along the direction that concentrates routing most
    reasoning_context  trunk tokens of a random batch; all-zero tokens
    reasoning_step     only BOS, half and full token buffers
    action_head        no reasoning (all-zero mask), partial and full reasoning; degenerate tokens

"Degenerate" inputs (identical tokens, PAD-only instructions) concentrate routing so that
some expert receives no token; for the trunk, `CONCENTRATION_DIRECTIONS` seeded directions are
tried and the one leaving the most experts idle in torch is verified (a property of the weights,
so searched rather than assumed). The report says whether such a case was covered
(`idle_expert_covered`). Float outputs must agree within tolerance + 1e-4 * max|output|; the
top-k routing implied by each MoE layer's router logits must agree except at near-ties. The
split reasoning pair (context + step) must also equal ReasoningDecoder.forward in torch.

Policy level (`verify_policy_parity`): OnnxRuntimePolicy (CPU, fp32, each formulation) vs the
torch policy on the same observations: identical reasoning tokens, actions within
`action_tolerance` in contract units (except observations whose routing has a near-tie, counted
as `tied_observations`), no routing mismatch. Reasoning may differ only where greedy decoding
met a near-tie: at the first differing token, the torch logits of the two choices are within
`tie_margin` x max(1, largest |logit|) (`reasoning_tied`; an untrained model's logits tie often).
The actions of such an observation follow a different text and are not compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from moe_vla_ros.export.config import ExportConfig
from moe_vla_ros.export.errors import ExportVerificationError
from moe_vla_ros.export.examples import example_batch
from moe_vla_ros.export.graphs import GRAPH_MODULES, ReasoningContextGraph, check_reasoning_split, moe_formulation
from moe_vla_ros.export.onnx_check import ort_session
from moe_vla_ros.model.vla import MoEVLA
from moe_vla_ros.runtime.config import CPU_PROVIDER, RuntimeConfig
from moe_vla_ros.runtime.manifest import ANY_FORMULATION, STAGE_OUTPUTS, GraphEntry, MoELayerSpec
from moe_vla_ros.runtime.onnx_policy import OnnxRuntimePolicy
from moe_vla_ros.runtime.sample_observations import random_observations
from moe_vla_ros.runtime.telemetry import routing_agreement
from moe_vla_ros.runtime.tokenization import BOS_ID, EOS_ID, PAD_ID
from moe_vla_ros.runtime.torch_policy import TorchPolicy
from moe_vla_ros.runtime.types import PolicyMetadata

RELATIVE_TOLERANCE = 1e-4
CONCENTRATION_DIRECTIONS = 8  # seeded directions tried for the trunk's concentrated-routing input set
InputSet = tuple[str, tuple[Tensor, ...]]


@torch.no_grad()
def input_sets(model: MoEVLA, stage: str, seed: int) -> list[InputSet]:
    """Labelled batch-1 input sets of one stage (see the module docstring)."""
    cfg = model.cfg
    b = example_batch(cfg, batch_size=1, seed=seed + 1)
    vision_tokens = model.vision(b["images"]).tokens  # [1, Nv, D]
    ids, mask, state = b["instruction_ids"], b["instruction_mask"], b["state"]
    trunk_tokens = model.trunk(vision_tokens, ids, mask, state).tokens  # [1, S, D]
    L, R = cfg.contract.max_instruction_tokens, cfg.contract.max_reasoning_tokens
    g = torch.Generator().manual_seed(seed + 2)
    words = torch.randint(4, cfg.vocab_size, (1, max(L, R)), generator=g)  # [1, max(L, R)]
    one_word = torch.full((1, L), PAD_ID, dtype=torch.long)
    one_word[0, 0] = words[0, 0]
    first = (torch.arange(L) < 1).long()[None]  # [1, L]
    if stage == "vision":
        shape = b["images"].shape
        return [("random_scene", (b["images"],)), ("black", (torch.zeros(shape, dtype=torch.uint8),)),
                ("white", (torch.full(shape, 255, dtype=torch.uint8),))]
    if stage == "trunk":
        full_ids, full_mask = words[:, :L], torch.ones(1, L, dtype=torch.long)
        zeros = torch.zeros_like(vision_tokens)
        return [
            ("random", (vision_tokens, ids, mask, state)),
            ("full_instruction", (vision_tokens, full_ids, full_mask, state)),
            ("one_word", (vision_tokens, one_word, first, state)),
            ("degenerate_zero_tokens", (zeros, one_word, first, torch.zeros_like(state))),
            ("degenerate_constant_tokens", (zeros + 3.0, one_word, first, torch.zeros_like(state))),
            ("degenerate_negative_tokens", (zeros - 3.0, one_word, first, torch.zeros_like(state))),
            ("concentrated_routing", (concentrated_vision_tokens(model, (zeros, one_word, first, torch.zeros_like(state)), seed),
                                      one_word, first, torch.zeros_like(state))),
        ]
    if stage == "reasoning_context":
        return [("random", (trunk_tokens,)), ("zero_tokens", (torch.zeros_like(trunk_tokens),))]
    if stage == "reasoning_step":
        cross_kv = ReasoningContextGraph(model)(trunk_tokens)  # [Lr, 2, 1, Hr, S, Dh]
        return [(label, (cross_kv, tokens)) for label, (_, tokens) in reasoning_inputs(trunk_tokens, words, R)]
    reasoning = words[:, :R]
    none, full = torch.zeros(1, R, dtype=torch.long), (torch.arange(R) < R - 1).long()[None]
    half = (torch.arange(R) < (R - 1) // 2).long()[None]
    zeros = torch.zeros_like(trunk_tokens)
    return [
        ("no_reasoning", (trunk_tokens, state, torch.zeros_like(reasoning), none)),
        ("half_reasoning", (trunk_tokens, state, reasoning * half, half)),
        ("full_reasoning", (trunk_tokens, state, reasoning * full, full)),
        ("degenerate_zero_tokens", (zeros, torch.zeros_like(state), torch.zeros_like(reasoning), none)),
        ("degenerate_constant_tokens", (zeros + 3.0, torch.zeros_like(state), torch.zeros_like(reasoning), none)),
    ]


def concentrated_vision_tokens(model: MoEVLA, trunk_inputs: tuple[Tensor, ...], seed: int) -> Tensor:
    """Vision tokens [1, Nv, D] all equal to one seeded direction: of CONCENTRATION_DIRECTIONS
    tried with the other trunk inputs of `trunk_inputs` (vision tokens, ids, mask, state), the one
    whose trunk routing (torch) leaves the most expert slots idle."""
    vision_tokens, ids, mask, state = trunk_inputs
    g = torch.Generator().manual_seed(seed + 3)
    best, best_idle = vision_tokens, -1
    for _ in range(CONCENTRATION_DIRECTIONS):
        tokens = torch.randn(vision_tokens.shape[-1], generator=g).expand_as(vision_tokens).contiguous()
        idle = int((model.trunk(tokens, ids, mask, state).expert_load == 0).sum())  # expert_load [M, E]
        if idle > best_idle:
            best, best_idle = tokens, idle
    return best


def reasoning_inputs(trunk_tokens: Tensor, words: Tensor, r: int) -> list[InputSet]:
    """(trunk_tokens, tokens [1, R]) with BOS and 0, half and all R - 1 generated tokens."""
    sets = []
    for label, n in (("bos_only", 0), ("half", (r - 1) // 2), ("full", r - 1)):
        tokens = torch.full((1, r), PAD_ID, dtype=torch.long)
        tokens[0, 0] = BOS_ID
        tokens[0, 1 : n + 1] = words[0, :n]
        sets.append((label, (trunk_tokens, tokens)))
    return sets


@torch.no_grad()
def reasoning_split_error(model: MoEVLA, seed: int, tolerance: float) -> float:
    """check_reasoning_split (torch: split pair vs ReasoningDecoder.forward) on the reasoning_step input sets."""
    trunk_tokens = input_sets(model, "reasoning_context", seed)[0][1][0]  # [1, S, D]
    r = model.cfg.contract.max_reasoning_tokens
    words = torch.randint(4, model.cfg.vocab_size, (1, r), generator=torch.Generator().manual_seed(seed + 2))
    return max(check_reasoning_split(model, t, tokens, tolerance) for _, (t, tokens) in reasoning_inputs(trunk_tokens, words, r))


def _compare_outputs(entry: GraphEntry, label: str, expected: Sequence[np.ndarray], actual: Sequence[np.ndarray],
                     specs: Sequence[MoELayerSpec], cfg: ExportConfig, result: dict, failures: list[str]) -> None:
    """Routing first, then the outputs. Where some token's routing decision is a near-tie (gap
    below `cfg.tie_margin`, e.g. a freshly upcycled router, whose experts all tie) torch's and
    ORT's top-k may legitimately pick different experts, so the outputs after the first MoE
    layer's logits are not compared for that input set (listed in `result["tied_sets"]`); a
    routing difference beyond the tie margin is a failure."""
    names = STAGE_OUTPUTS[entry.stage]
    tied = False
    if "router_logits" in names:
        logits_index = names.index("router_logits")
        for spec in specs:
            reference = expected[logits_index][spec.index]  # [N, E]
            agree = routing_agreement(reference, actual[logits_index][spec.index], spec, cfg.tie_margin)
            stats = result["routing"].setdefault(spec.name, {"mismatches": 0, "near_ties": 0})
            stats["mismatches"] += agree.mismatches
            stats["near_ties"] += agree.near_ties
            tied = tied or agree.tied
            if agree.mismatches:
                failures.append(f"{entry.file}[{label}] {spec.name}: {agree.mismatches} tokens routed differently")
    if tied:
        result.setdefault("tied_sets", []).append(label)
        # only the first MoE layer's logits do not depend on a routing decision
        compared = [("router_logits", expected[logits_index][:1], actual[logits_index][:1])]
    else:
        compared = list(zip(names, expected, actual))
    for name, want, got in compared:
        if want.shape != got.shape:
            failures.append(f"{entry.file}[{label}] {name}: torch shape {want.shape}, ORT {got.shape}")
            continue
        err = float(np.max(np.abs(want.astype(np.float64) - got), initial=0.0))
        result["max_abs_error"][name] = max(result["max_abs_error"].get(name, 0.0), err)
        allowed = cfg.tolerance + RELATIVE_TOLERANCE * float(np.max(np.abs(want), initial=0.0))
        if err > allowed:
            failures.append(f"{entry.file}[{label}] {name}: max |torch - ORT| = {err:.3g} > {allowed:.3g}")


def verify_graph(model: MoEVLA, entry: GraphEntry, path: Path, specs: Sequence[MoELayerSpec],
                 cfg: ExportConfig, failures: list[str]) -> dict[str, Any]:
    """Compare one exported graph with its torch module; appends problems to `failures`."""
    session = ort_session(path)
    module = GRAPH_MODULES[entry.stage](model).eval()
    stage_specs = [s for s in specs if s.stage == entry.stage]
    result: dict[str, Any] = {"input_sets": [], "max_abs_error": {}, "routing": {}}
    idle = False
    formulation = entry.formulation if entry.formulation != ANY_FORMULATION else "sparse"
    with moe_formulation(model, formulation), torch.no_grad():
        for label, inputs in input_sets(model, entry.stage, cfg.seed):
            out = module(*inputs)
            expected = [t.numpy() for t in ((out,) if isinstance(out, Tensor) else out)]
            feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs)}
            actual = session.run(None, feeds)
            _compare_outputs(entry, label, expected, actual, stage_specs, cfg, result, failures)
            if "expert_load" in STAGE_OUTPUTS[entry.stage]:
                idle = idle or bool((expected[STAGE_OUTPUTS[entry.stage].index("expert_load")] == 0).any())
            result["input_sets"].append(label)
    if stage_specs:
        result["idle_expert_covered"] = idle
    return result


def verify_graphs(model: MoEVLA, staging: Path, entries: Sequence[GraphEntry], specs: Sequence[MoELayerSpec],
                  cfg: ExportConfig) -> dict[str, Any]:
    """verify_graph for every entry + the reasoning split check; raises ExportVerificationError listing
    every failure. Returns {"graphs": {file: report}, "reasoning_split_max_error": float}."""
    failures: list[str] = []
    report: dict[str, Any] = {"graphs": {e.file: verify_graph(model, e, staging / e.file, specs, cfg, failures)
                                         for e in entries}}
    try:
        report["reasoning_split_max_error"] = reasoning_split_error(model, cfg.seed, cfg.tolerance)
    except ExportVerificationError as e:
        failures.append(str(e))
    if failures:
        raise ExportVerificationError("exported graphs differ from PyTorch:\n  " + "\n  ".join(failures), report)
    return report


def torch_policy_from_model(model: MoEVLA, tokenizer, specs: Sequence[MoELayerSpec], formulation: str) -> TorchPolicy:
    """A TorchPolicy around an in-memory model (no checkpoint round trip)."""
    model.set_moe_formulation(formulation)
    cfg = RuntimeConfig(backend="torch", formulation=formulation)
    metadata = PolicyMetadata("export-reference", "torch", ("torch:cpu",), False, formulation)
    return TorchPolicy(model.eval(), torch.device("cpu"), tokenizer, tuple(specs), cfg, metadata)


def generated_tokens(reasoning) -> np.ndarray:
    """The tokens greedy decoding chose [R]: the generated ids, EOS where the text ended, PAD after."""
    ids = np.where(reasoning.token_mask == 1, reasoning.token_ids, PAD_ID)  # [R]
    if reasoning.num_tokens < ids.size:
        ids[reasoning.num_tokens] = EOS_ID if reasoning.stopped_at_eos else PAD_ID
    return ids


def reasoning_tie_gap(torch_policy: TorchPolicy, observation, a, b, tie_margin: float) -> tuple[float, float]:
    """(|torch logit of a's token - of b's token| at the first token where reasoning a and b
    differ, the largest gap counted as a tie: tie_margin x max(1, largest |logit| there)).
    The gap is inf when the texts differ without a differing choice (e.g. only in length)."""
    ta, tb = generated_tokens(a), generated_tokens(b)  # [R], [R]
    differ = np.flatnonzero(ta != tb)
    if differ.size == 0 or PAD_ID in (ta[differ[0]], tb[differ[0]]):
        return float("inf"), 0.0
    k = int(differ[0])
    logits = torch_policy.reasoning_logits(observation, ta[:k])  # [V]
    allowed = tie_margin * max(1.0, float(np.max(np.abs(logits))))
    return abs(float(logits[ta[k]] - logits[tb[k]])), allowed


def verify_policy_parity(model: MoEVLA, staging: Path, formulations: Sequence[str], cfg: ExportConfig) -> dict[str, Any]:
    """End-to-end ORT vs torch policy per formulation (see the module docstring)."""
    report: dict[str, Any] = {}
    failures: list[str] = []
    observations = random_observations(model.cfg.contract, cfg.policy_observations, seed=cfg.seed + 7)
    for formulation in formulations:
        runtime_cfg = RuntimeConfig(providers=(CPU_PROVIDER,), formulation=formulation, verify_checksums=False)
        ort_policy = OnnxRuntimePolicy.load(staging, runtime_cfg)
        torch_policy = torch_policy_from_model(model, ort_policy.tokenizer, ort_policy.moe_layers, formulation)
        max_err, same_reasoning, tied_reasoning, mismatches, tied = 0.0, 0, 0, 0, 0
        for i, obs in enumerate(observations):
            ort_policy.reset()
            torch_policy.reset()
            a, a_logits = ort_policy.infer_with_router_logits(obs)
            b, b_logits = torch_policy.infer_with_router_logits(obs)
            same_text = np.array_equal(a.reasoning.token_ids, b.reasoning.token_ids)
            # the action head reads the reasoning: its routing is comparable only for the same text
            layers = [s for s in ort_policy.moe_layers if same_text or s.stage != "action_head"]
            agreements = [routing_agreement(b_logits[s.name], a_logits[s.name], s, cfg.tie_margin) for s in layers]
            mismatches += sum(agree.mismatches for agree in agreements)
            routing_tied = any(agree.tied for agree in agreements)
            if same_text:
                same_reasoning += 1
            elif routing_tied:  # other experts in the trunk may write another text
                tied_reasoning += 1
            else:
                gap, allowed = reasoning_tie_gap(torch_policy, obs, a.reasoning, b.reasoning, cfg.tie_margin)
                if gap <= allowed:
                    tied_reasoning += 1
                else:
                    failures.append(f"{formulation} observation {i}: reasoning {a.reasoning.text!r} (ORT) vs "
                                    f"{b.reasoning.text!r} (torch); torch logit gap {gap:.3g} at the first "
                                    f"differing token > tie margin {allowed:.3g}")
            # near-tied routing may pick other experts in ORT, and near-tied reasoning another text:
            # those actions legitimately differ
            if routing_tied:
                tied += 1
            elif same_text:
                max_err = max(max_err, float(np.max(np.abs(a.actions - b.actions))))
        ort_policy.close()
        if max_err > cfg.action_tolerance:
            failures.append(f"{formulation}: max |ORT - torch| action = {max_err:.3g} > {cfg.action_tolerance:.3g}")
        if mismatches:
            failures.append(f"{formulation}: {mismatches} tokens routed differently by ORT and torch")
        report[formulation] = {
            "observations": len(observations), "max_action_error": max_err,
            "reasoning_identical": same_reasoning, "reasoning_tied": tied_reasoning, "routing_mismatches": mismatches,
            "tied_observations": tied,
        }
    if failures:
        raise ExportVerificationError("the ONNX Runtime policy differs from the torch policy:\n  " + "\n  ".join(failures),
                                      {"policy_parity": report})
    return report
