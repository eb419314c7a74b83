"""Dense baselines of a MoE configuration: do the experts earn their place?

A baseline keeps everything of the MoE model (widths, depths, vision, probe, reasoning decoder,
the other blocks' FFNs) and replaces each MoE layer of the trunk and action head by one dense FFN
of the same activation whose hidden width is

* "active": the experts a token runs through, top_k * d_hidden + num_shared_experts * d_hidden
  (equal compute and equal ACTIVE parameters per token);
* "total":  every expert, num_experts * d_hidden + num_shared_experts * d_hidden (equal TOTAL
  parameters).

The FFN weights then match the experts' weights exactly; what differs is the MoE's router (and
AdaMoE scale adapter) and its per-expert output biases (`parameter_difference`). The baseline is
a plain dense model (`moe_layers` empty, `moe` None, the widths in `ffn_hidden_at`): it trains in
one dense stage, exports and runs like any dense model.
"""

from __future__ import annotations

from dataclasses import replace

from moe_vla_ros.errors import BadInputError
from moe_vla_ros.model.component_configs import ActionHeadConfig, TrunkConfig
from moe_vla_ros.model.config import ModelConfig
from moe_vla_ros.model.moe import MoEConfig
from moe_vla_ros.model.moe_routing import GATED_ACTIVATIONS
from moe_vla_ros.validation import require_choice

DENSE_WIDTHS = ("active", "total")


def dense_width(moe: MoEConfig, width: str) -> int:
    """Hidden width of the dense FFN standing for a MoE layer: its active or all experts' width."""
    require_choice("dense baseline width", width, DENSE_WIDTHS)
    routed = moe.top_k if width == "active" else moe.num_experts
    if width == "active" and moe.router != "token_choice":
        raise BadInputError(f"an 'active' dense baseline needs a token-choice router (fixed top_k per token), "
                            f"got router={moe.router!r}")
    return (routed + moe.num_shared_experts) * moe.d_hidden


def _dense_stack(part: TrunkConfig | ActionHeadConfig, width: str) -> TrunkConfig | ActionHeadConfig:
    if not part.moe_layers:
        return part
    wide = dict(part.ffn_hidden_at)
    wide.update({i: dense_width(part.moe, width) for i in part.moe_layers})
    return replace(part, moe_layers=(), moe=None, ffn_hidden_at=tuple(sorted(wide.items())))


def dense_baseline(cfg: ModelConfig, width: str) -> ModelConfig:
    """`cfg` with every MoE layer (trunk and action head) replaced by a dense FFN of the MoE's
    "active" or "total" expert width (see the module docstring); a model without MoE layers is
    returned unchanged."""
    require_choice("dense baseline width", width, DENSE_WIDTHS)
    return replace(cfg, trunk=_dense_stack(cfg.trunk, width), action_head=_dense_stack(cfg.action_head, width))


def parameter_difference(cfg: ModelConfig, width: str) -> int:
    """Parameters (active for "active", total for "total") the MoE model `cfg` has beyond its dense
    baseline: per MoE layer the router (D * E), the scale adapter (D * E + E) and the output
    biases of all but one of the experts counted ((experts - 1) * D with expert biases)."""
    require_choice("dense baseline width", width, DENSE_WIDTHS)
    extra = 0
    for part in (cfg.trunk, cfg.action_head):
        moe = part.moe
        for _ in part.moe_layers:
            experts = (moe.top_k if width == "active" else moe.num_experts) + moe.num_shared_experts
            extra += moe.d_model * moe.num_experts  # router
            if moe.scale_adapter:
                extra += moe.d_model * moe.num_experts + moe.num_experts
            if moe.expert_bias:
                extra += (experts - 1) * moe.d_model  # b_out per expert vs one fc_out bias
            else:
                gated = 2 if moe.activation in GATED_ACTIVATIONS else 1
                extra -= gated * experts * moe.d_hidden + moe.d_model  # the dense FFN keeps its biases
    return extra
