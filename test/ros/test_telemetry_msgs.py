"""Telemetry messages carry what the runtime produced, and diagnostics levels follow the state."""

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus

from moe_vla_ros.control.latency import LatencySummary
from moe_vla_ros.ros.telemetry_msgs import (
    StatusSnapshot,
    diagnostics_msg,
    expert_usage_msg,
    policy_status_msg,
    reasoning_trace_msg,
)
from moe_vla_ros.runtime.types import LayerUsage, PolicyMetadata, Reasoning

USAGE = (LayerUsage("trunk.layers.1.ffn", np.array([0.5, 0.25, 0.25, 0.0]), 1.2, 80, 3),)
META = PolicyMetadata("tiny-abc123", "onnxruntime", ("CPUExecutionProvider",), True, "sparse")


def snapshot(**kw):
    base = dict(stamp=12.5, lifecycle_id=3, lifecycle_label="active", metadata=META,
                latency=LatencySummary(10, 0.02, 0.019, 0.03, 0.04, 0.05), chunks_published=7, dropped_inputs=2,
                stale_inputs=1, rejected_commands=0, rejected_inputs=1, inference_errors=0, commanding=True,
                hold_reason="", last_error="", instruction="reach the red cube")
    base.update(kw)
    return StatusSnapshot(**base)


def test_reasoning_trace_links_chunk_and_usage():
    r = Reasoning("red cube left of gripper", np.zeros(4, np.int64), np.ones(4, np.int64), 4, True, 0.0125, 3.25)
    msg = reasoning_trace_msg(r, 42, "reach the red cube", USAGE)
    assert msg.text == "red cube left of gripper" and msg.chunk_id == 42
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (3, 250_000_000)
    assert msg.generation_latency.nanosec == 12_500_000 and msg.stopped_at_eos and msg.num_tokens == 4
    layer = msg.expert_usage[0]
    assert layer.layer_name == "trunk.layers.1.ffn" and list(layer.expert_load) == [0.5, 0.25, 0.25, 0.0]
    assert layer.num_tokens == 80 and layer.dropped_tokens == 3
    assert expert_usage_msg(3.25, 42, USAGE).layers[0].router_entropy == np.float32(1.2)


def test_policy_status_reports_providers_and_latency():
    msg = policy_status_msg(snapshot())
    assert msg.lifecycle_state.label == "active" and msg.lifecycle_state.id == 3
    assert msg.execution_providers == ["CPUExecutionProvider"] and msg.cpu_fallback
    assert msg.model_id == "tiny-abc123" and msg.inference_latency.count == 10
    assert abs(msg.inference_latency.p95_ms - 30.0) < 1e-3 and msg.chunks_published == 7


def test_diagnostics_levels():
    assert diagnostics_msg(snapshot(), "policy_node").status[0].level == DiagnosticStatus.WARN  # cpu fallback
    ok_meta = PolicyMetadata("m", "onnxruntime", ("CUDAExecutionProvider",), False)
    assert diagnostics_msg(snapshot(metadata=ok_meta), "n").status[0].level == DiagnosticStatus.OK
    hold = diagnostics_msg(snapshot(metadata=ok_meta, commanding=False, hold_reason="stale joint_states"), "n")
    assert hold.status[0].level == DiagnosticStatus.WARN and "stale joint_states" in hold.status[0].message
    err = diagnostics_msg(snapshot(inference_errors=1, last_error="inference: boom"), "n").status[0]
    assert err.level == DiagnosticStatus.ERROR and err.message == "inference: boom"
    assert diagnostics_msg(snapshot(metadata=None), "n").status[0].level == DiagnosticStatus.ERROR


def test_diagnostics_report_verification_and_placement():
    placement = {"vision": {"TensorrtExecutionProvider": 1, "CPUExecutionProvider": 2}, "trunk": {"CPUExecutionProvider": 9}}
    passed = PolicyMetadata("m", "onnxruntime", ("CPUExecutionProvider",), False, "sparse", placement,
                            {"status": "passed", "variant": "sparse/int8", "summary": "passed: sparse/int8 ..."})
    d = diagnostics_msg(snapshot(metadata=passed), "n").status[0]
    values = {kv.key: kv.value for kv in d.values}
    assert d.level == DiagnosticStatus.OK
    assert values["verification"] == "passed: sparse/int8 ..." and values["verified_variant"] == "sparse/int8"
    assert values["provider_placement"] == ("vision: TensorrtExecutionProvider=1, CPUExecutionProvider=2; "
                                            "trunk: CPUExecutionProvider=9")
    fallback = PolicyMetadata("m", "onnxruntime", ("CPUExecutionProvider",), False, "sparse", placement, {
        "status": "fallback", "variant": "sparse/fp32", "summary": "FALLBACK ...",
        "fallbacks": ["sparse/int8 on CPUExecutionProvider missed its gate: max action error 0.2 rad > 0.05"]})
    d = diagnostics_msg(snapshot(metadata=fallback), "n").status[0]
    assert d.level == DiagnosticStatus.WARN
    assert "variant fallback to sparse/fp32" in d.message and "max action error 0.2 rad" in d.message
    held = diagnostics_msg(snapshot(metadata=fallback, commanding=False, hold_reason="e-stop"), "n").status[0]
    assert held.level == DiagnosticStatus.WARN and "e-stop" in held.message and "sparse/int8" in held.message
    unverified = diagnostics_msg(snapshot(metadata=PolicyMetadata("m", "onnxruntime", ("CPUExecutionProvider",), False)), "n")
    assert {kv.key: kv.value for kv in unverified.status[0].values}["verification"] == "off"
