"""ExportConfig: what `export_policy` writes and the thresholds its verification enforces."""

from __future__ import annotations

from dataclasses import dataclass, field

from moe_vla_ros.errors import BadInputError
from moe_vla_ros.runtime.manifest import FORMULATIONS
from moe_vla_ros.validation import require_bool, require_choice, require_distinct, require_int, require_non_negative, require_number

EXPORT_OPSETS = range(18, 22)  # torch.onnx.export(dynamo=True) targets opset >= 18
# int8 schemes that cannot saturate on any CPU (export/quantize.py INT8_SCHEMES; 8-bit U8S8 is not offered).
INT8_SCHEME_CHOICES = ("u8s8_w7",)


class ExportConfigError(BadInputError):
    """An ExportConfig field has an invalid value."""


@dataclass(frozen=True)
class QuantizationGate:
    """Thresholds a quantised variant must meet against fp32 on held-out observations.

    Attributes:
        max_action_error: largest |quantised - fp32| action over every step and joint, in
            contract units (rad, or m for prismatic joints).
        min_router_agreement: smallest fraction (over MoE layers) of tokens routed to the
            same top-k expert set as fp32.
        min_reasoning_agreement: fraction of observations whose generated reasoning tokens
            equal fp32's (0 = report only).
    """

    max_action_error: float
    min_router_agreement: float
    min_reasoning_agreement: float = 0.0

    def __post_init__(self) -> None:
        require_non_negative("max_action_error", self.max_action_error, error=ExportConfigError)
        for name in ("min_router_agreement", "min_reasoning_agreement"):
            require_number(name, getattr(self, name), 0, 1, error=ExportConfigError)

    def to_dict(self) -> dict[str, float]:
        return {"max_action_error": self.max_action_error, "min_router_agreement": self.min_router_agreement,
                "min_reasoning_agreement": self.min_reasoning_agreement}


@dataclass(frozen=True)
class ExportConfig:
    """How to export a checkpoint.

    Output:
        name: model name in the manifest and model_id ("" = the checkpoint folder's name).
        formulations: MoE formulations to export for the trunk and action head: "sparse"
            (loop over experts; CPU) and/or "dense" (static shapes, TensorRT op set only).
        opset: ONNX default-domain opset (18..21).
        keep_checkpoint: copy the checkpoint into `<out>/checkpoint/` (the torch backend
            then loads from the same folder).
        force: replace a non-empty output folder (written to a temporary folder first and
            swapped in only after verification passed).

    Verification (the export fails when any check fails):
        tolerance: largest allowed |torch - ORT| of a graph output, plus 1e-4 relative to the
            output's largest magnitude.
        tie_margin: router decisions closer than this (logit / probability gap) may flip by
            rounding and are not counted as routing mismatches.
        action_tolerance: largest allowed |torch policy - ORT policy| action, contract units.
        policy_observations: observations of the end-to-end policy parity check.
        seed: seed of every random verification input.

    Quantised variants (kept only when they pass their gate; measured numbers always reported):
        int8: dynamic int8 MatMul variants of every graph (quant_pre_process first).
        int8_scheme: weight quantisation of the int8 variants, one of INT8_SCHEME_CHOICES:
            "u8s8_w7" (uint8 dynamic activations, 7-bit symmetric int8 weights per tensor), which
            ONNX Runtime's AVX2 kernel cannot saturate (export/quantize.py).
        fp16: float16 variants of the dense graphs (I/O kept float32).
        gate_observations: held-out observations of the gates (seeded apart from verification).
        int8_gate, fp16_gate: thresholds.
    """

    name: str = ""
    formulations: tuple[str, ...] = FORMULATIONS
    opset: int = 18
    keep_checkpoint: bool = True
    force: bool = False
    tolerance: float = 1e-4
    tie_margin: float = 1e-4
    action_tolerance: float = 1e-4
    policy_observations: int = 4
    seed: int = 0
    int8: bool = False
    int8_scheme: str = INT8_SCHEME_CHOICES[0]
    fp16: bool = False
    gate_observations: int = 8
    int8_gate: QuantizationGate = field(default_factory=lambda: QuantizationGate(0.05, 0.9))
    fp16_gate: QuantizationGate = field(default_factory=lambda: QuantizationGate(0.01, 0.97))

    def __post_init__(self) -> None:
        formulations = require_distinct("formulations", self.formulations, FORMULATIONS, error=ExportConfigError)
        object.__setattr__(self, "formulations", formulations)
        require_int("opset", self.opset, EXPORT_OPSETS.start, EXPORT_OPSETS.stop - 1, error=ExportConfigError)
        require_choice("int8_scheme", self.int8_scheme, INT8_SCHEME_CHOICES, error=ExportConfigError)
        if self.fp16 and "dense" not in formulations:
            raise ExportConfigError(f"fp16 variants are made from dense graphs: add 'dense' to formulations {list(formulations)}")
        for name in ("tolerance", "tie_margin", "action_tolerance"):
            require_non_negative(name, getattr(self, name), error=ExportConfigError)
        for name in ("policy_observations", "gate_observations"):
            require_int(name, getattr(self, name), 1, 1000, error=ExportConfigError)
        for name in ("keep_checkpoint", "force", "int8", "fp16"):
            require_bool(name, getattr(self, name), error=ExportConfigError)
        if any(c in self.name for c in "/\\") or self.name.strip() != self.name:
            raise ExportConfigError(f"name must be a plain name without slashes or surrounding spaces, got {self.name!r}")
