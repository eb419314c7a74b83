"""Build our telemetry messages (ReasoningTrace, ExpertUsage, PolicyStatus, /diagnostics) from the
runtime's plain results. No graph needed: messages are plain objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from lifecycle_msgs.msg import State

from moe_vla_msgs.msg import ExpertUsage, LatencyStats, LayerExpertUsage, PolicyStatus, ReasoningTrace
from moe_vla_ros.control.latency import LatencySummary
from moe_vla_ros.ros.conversions import make_header, seconds_to_duration
from moe_vla_ros.runtime.types import LayerUsage, PolicyMetadata, Reasoning


def layer_usage_msgs(usage: Sequence[LayerUsage]) -> list[LayerExpertUsage]:
    return [
        LayerExpertUsage(
            layer_name=u.layer_name,
            expert_load=[float(v) for v in u.expert_load],
            router_entropy=float(u.router_entropy),
            num_tokens=int(u.num_tokens),
            dropped_tokens=int(u.dropped_tokens),
        )
        for u in usage
    ]


def reasoning_trace_msg(
    reasoning: Reasoning, chunk_id: int, instruction: str, usage: Sequence[LayerUsage]
) -> ReasoningTrace:
    """The trace, stamped with the observation it was generated from, linked to its chunk."""
    return ReasoningTrace(
        header=make_header(reasoning.stamp),
        text=reasoning.text,
        chunk_id=int(chunk_id),
        instruction=instruction,
        generation_latency=seconds_to_duration(reasoning.latency_s),
        num_tokens=int(reasoning.num_tokens),
        stopped_at_eos=bool(reasoning.stopped_at_eos),
        expert_usage=layer_usage_msgs(usage),
    )


def expert_usage_msg(stamp: float, chunk_id: int, usage: Sequence[LayerUsage]) -> ExpertUsage:
    return ExpertUsage(header=make_header(stamp), chunk_id=int(chunk_id), layers=layer_usage_msgs(usage))


def latency_stats_msg(summary: LatencySummary) -> LatencyStats:
    return LatencyStats(**summary.as_milliseconds())


# StatusSnapshot fields that PolicyStatus carries as they are, under the same name
STATUS_AS_IS = ("chunks_published", "dropped_inputs", "stale_inputs", "rejected_commands", "rejected_inputs",
                "inference_errors", "commanding", "hold_reason", "last_error")


@dataclass(frozen=True)
class StatusSnapshot:
    """Everything PolicyStatus and /diagnostics report, gathered by the node."""

    stamp: float
    lifecycle_id: int
    lifecycle_label: str
    metadata: PolicyMetadata | None
    latency: LatencySummary
    chunks_published: int
    dropped_inputs: int
    stale_inputs: int
    rejected_commands: int
    rejected_inputs: int
    inference_errors: int
    commanding: bool
    hold_reason: str
    last_error: str
    instruction: str
    holds_by_reason: Mapping[str, int] = field(default_factory=dict)
    rejected_inputs_by_reason: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def empty(cls, stamp: float, lifecycle_id: int, lifecycle_label: str, *, hold_reason: str,
              last_error: str = "", instruction: str = "") -> StatusSnapshot:
        """The status of a node without a model (unconfigured, or configure failed)."""
        return cls(
            stamp=stamp, lifecycle_id=lifecycle_id, lifecycle_label=lifecycle_label, metadata=None,
            latency=LatencySummary(0, 0, 0, 0, 0, 0), chunks_published=0, dropped_inputs=0, stale_inputs=0,
            rejected_commands=0, rejected_inputs=0, inference_errors=0, commanding=False,
            hold_reason=hold_reason, last_error=last_error, instruction=instruction,
        )


def policy_status_msg(s: StatusSnapshot) -> PolicyStatus:
    meta = s.metadata
    return PolicyStatus(
        header=make_header(s.stamp),
        lifecycle_state=State(id=s.lifecycle_id, label=s.lifecycle_label),
        backend=meta.backend if meta else "",
        execution_providers=list(meta.execution_providers) if meta else [],
        cpu_fallback=bool(meta.cpu_fallback) if meta else False,
        model_id=meta.model_id if meta else "",
        inference_latency=latency_stats_msg(s.latency),
        hold_causes=list(s.holds_by_reason),
        hold_counts=[int(v) for v in s.holds_by_reason.values()],
        rejected_input_causes=list(s.rejected_inputs_by_reason),
        rejected_input_counts=[int(v) for v in s.rejected_inputs_by_reason.values()],
        **{name: getattr(s, name) for name in STATUS_AS_IS},
    )


def placement_text(placement: Mapping[str, Mapping[str, int]]) -> str:
    """{stage: {provider: nodes}} -> "vision: CPUExecutionProvider=48; trunk: ..."."""
    return "; ".join(
        f"{stage}: " + ", ".join(f"{p}={n}" for p, n in counts.items()) for stage, counts in placement.items()
    )


def diagnostics_msg(s: StatusSnapshot, node_name: str) -> DiagnosticArray:
    """One DiagnosticStatus: OK while commanding, WARN while holding, on CPU fallback or when on-target
    verification fell back to another variant (the message names why), ERROR on inference errors or
    when no model is loaded (with the configure failure, if any). Values include the verification
    summary and the provider placement ({provider: nodes} per graph, from the profiled warm-up run)."""
    meta = s.metadata
    if meta is None or s.inference_errors:
        level, message = DiagnosticStatus.ERROR, s.last_error or s.hold_reason or "no model loaded"
    elif not s.commanding:
        level, message = DiagnosticStatus.WARN, f"holding: {s.hold_reason or 'waiting for a chunk'}"
    elif meta.cpu_fallback:
        level, message = DiagnosticStatus.WARN, "commanding on CPU fallback"
    else:
        level, message = DiagnosticStatus.OK, "commanding"
    verification = dict(meta.verification) if meta else {}
    if meta is not None and verification.get("status") == "fallback":
        # The selected variant missed its gate on this machine: say so whatever else is going on.
        note = f"variant fallback to {verification.get('variant')}: {'; '.join(verification.get('fallbacks', []))}"
        if level == DiagnosticStatus.OK:
            level, message = DiagnosticStatus.WARN, f"commanding on {note}"
        else:
            message = f"{message}; {note}"
    values = {
        "lifecycle_state": s.lifecycle_label,
        "model_id": meta.model_id if meta else "",
        "backend": meta.backend if meta else "",
        "execution_providers": ",".join(meta.execution_providers) if meta else "",
        "cpu_fallback": str(bool(meta and meta.cpu_fallback)).lower(),
        "verification": verification.get("summary", "off") if meta else "",
        "verification_status": verification.get("status", "off") if meta else "",
        "verified_variant": verification.get("variant", "") if meta else "",
        "provider_placement": placement_text(meta.provider_placement) if meta else "",
        "instruction": s.instruction,
        "latency_p50_ms": f"{s.latency.p50_s * 1e3:.1f}",
        "latency_p95_ms": f"{s.latency.p95_s * 1e3:.1f}",
        "chunks_published": str(s.chunks_published),
        "dropped_inputs": str(s.dropped_inputs),
        "stale_inputs": str(s.stale_inputs),
        "rejected_inputs": str(s.rejected_inputs),
        "rejected_commands": str(s.rejected_commands),
        "inference_errors": str(s.inference_errors),
        "last_error": s.last_error,
        "hold_reason": s.hold_reason,
    }
    values.update({f"holds[{cause}]": str(n) for cause, n in s.holds_by_reason.items()})
    values.update({f"rejected_inputs[{cause}]": str(n) for cause, n in s.rejected_inputs_by_reason.items()})
    status = DiagnosticStatus(
        level=level,
        name=f"{node_name}: policy",
        message=message,
        hardware_id=meta.model_id if meta else "",
        values=[KeyValue(key=k, value=v) for k, v in values.items()],
    )
    return DiagnosticArray(header=make_header(s.stamp), status=[status])
