"""ExportConfig / QuantizationGate validation names the bad value."""

import pytest

from moe_vla_ros.export.config import ExportConfig, ExportConfigError, QuantizationGate


def test_defaults():
    cfg = ExportConfig()
    assert cfg.formulations == ("sparse", "dense") and cfg.opset == 18 and not (cfg.int8 or cfg.fp16)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"formulations": ("sparse", "moe")}, "'moe'"),
        ({"formulations": ()}, r"got \[\]"),
        ({"formulations": "sparse"}, "got the string"),
        ({"opset": 13}, "got 13"),
        ({"fp16": True, "formulations": ("sparse",)}, "fp16 variants are made from dense graphs"),
        ({"tolerance": -1.0}, "tolerance .* got -1.0"),
        ({"action_tolerance": float("nan")}, "action_tolerance"),
        ({"policy_observations": 0}, "policy_observations .* got 0"),
        ({"name": "a/b"}, "'a/b'"),
    ],
)
def test_invalid_values_are_named(kwargs, message):
    with pytest.raises(ExportConfigError, match=message):
        ExportConfig(**kwargs)


@pytest.mark.parametrize(
    "args, message",
    [((-0.1, 0.9), "max_action_error"), ((0.1, 1.5), "min_router_agreement .* got 1.5"), ((0.1, 0.9, -1), "reasoning")],
)
def test_gate_thresholds(args, message):
    with pytest.raises(ExportConfigError, match=message):
        QuantizationGate(*args)
