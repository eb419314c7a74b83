"""The scripted expert on planned episodes (the baseline beside the policy)."""

from __future__ import annotations

from moe_vla_ros.evaluation.sim.expert_baseline import run_expert_baseline
from moe_vla_ros.evaluation.sim.records import plan_sim_episodes


def test_expert_runs_the_planned_episodes_in_order():
    plans = plan_sim_episodes(2, ("reach", "push"), max_duration_s=4.0)
    results = run_expert_baseline(plans, success_hold_steps=3)
    assert [(r.index, r.seed, r.family) for r in results] == [(p.index, p.seed, p.family) for p in plans]
    reach = results[0]
    assert reach.success and 0.3 <= reach.duration_s < 4.0
    assert reach.control_steps == round(reach.duration_s * 10)
    assert all(r.duration_s <= 4.0 + 1e-9 for r in results)


def test_a_time_limit_too_short_for_the_expert_fails():
    (result,) = run_expert_baseline(plan_sim_episodes(1, ("push",), max_duration_s=0.5))
    assert not result.success and result.control_steps == 5
