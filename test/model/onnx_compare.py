"""PyTorch vs ONNX Runtime on the same inputs, for the model tests:

    report = compare_with_onnxruntime(module, ort_session(path), [(x_small,), (x_large,)])
    assert report.max_abs_error <= 1e-4 and not report.integer_mismatches
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor, nn


@dataclass
class ComparisonReport:
    """PyTorch vs ONNX Runtime over several input sets.

    max_abs_error: largest |torch - ort| over all float outputs and input sets.
    per_output_error: output name -> largest abs error over the input sets.
    integer_mismatches: "output[input set]" for integer outputs that differ anywhere.
    shape_mismatches: "output[input set]: torch shape vs ort shape".
    """

    max_abs_error: float = 0.0
    per_output_error: dict[str, float] = field(default_factory=dict)
    integer_mismatches: list[str] = field(default_factory=list)
    shape_mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.integer_mismatches and not self.shape_mismatches


def _flatten_outputs(result: Any) -> list[Tensor]:
    if isinstance(result, Tensor):
        return [result]
    return [t for t in result]


def compare_with_onnxruntime(
    module: nn.Module,
    session: ort.InferenceSession,
    input_sets: Sequence[tuple[Tensor, ...]],
) -> ComparisonReport:
    """Run ``module`` (eval, no_grad) and ``session`` on each input set and compare outputs in order."""
    input_names = [i.name for i in session.get_inputs()]
    output_names = [o.name for o in session.get_outputs()]
    report = ComparisonReport(per_output_error=dict.fromkeys(output_names, 0.0))
    was_training = module.training
    module.eval()
    try:
        for set_index, inputs in enumerate(input_sets):
            with torch.no_grad():
                expected = _flatten_outputs(module(*inputs))
            feeds = {name: t.detach().cpu().numpy() for name, t in zip(input_names, inputs)}
            actual = session.run(output_names, feeds)
            for name, want, got in zip(output_names, expected, actual):
                want_np = want.detach().cpu().numpy()
                tag = f"{name}[{set_index}]"
                if want_np.shape != got.shape:
                    report.shape_mismatches.append(f"{tag}: torch {want_np.shape} vs ort {got.shape}")
                    continue
                if np.issubdtype(want_np.dtype, np.floating):
                    err = float(np.max(np.abs(want_np - got), initial=0.0))
                    report.per_output_error[name] = max(report.per_output_error[name], err)
                    report.max_abs_error = max(report.max_abs_error, err)
                elif not np.array_equal(want_np, got):
                    report.integer_mismatches.append(tag)
    finally:
        module.train(was_training)
    return report
