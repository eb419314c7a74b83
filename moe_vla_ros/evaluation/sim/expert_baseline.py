"""The scripted expert on the evaluation's own episodes: the reference the policy is compared to.

Same seeds, tasks and time limits as the policy episodes, run in the simulator directly (no
ROS, no rendering), with the same success confirmation (the task must hold for
`success_hold_steps` control periods).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from moe_vla_ros.evaluation.sim.records import EpisodePlan, ExpertResult
from moe_vla_ros.sim.arm_sim import ArmSim
from moe_vla_ros.sim.config import SimConfig
from moe_vla_ros.sim.expert import ScriptedExpert
from moe_vla_ros.sim.rollout import expert_controller, run_episode


def run_expert_baseline(
    plans: Sequence[EpisodePlan],
    control_rate_hz: float = 10.0,
    success_hold_steps: int = 3,
    progress: Iterable | None = None,
) -> list[ExpertResult]:
    """One ExpertResult per plan, in plan order. `progress` wraps the plans (e.g. a tqdm bar)."""
    config = SimConfig(control_rate_hz=control_rate_hz)
    results = []
    with ArmSim(config) as sim:
        expert = ScriptedExpert(sim)
        for plan in progress if progress is not None else plans:
            sim.reset(plan.seed)
            expert.reset(plan.task)
            result = run_episode(sim, plan.task, expert_controller(expert), success_hold_steps, record_images=False)
            results.append(ExpertResult(plan.index, plan.seed, plan.family, result.success,
                                        result.sim_duration_s, result.steps))
    return results
