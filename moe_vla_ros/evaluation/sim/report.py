"""The evaluation report: one JSON-ready dict from the episode records, and its printed table.

    report = build_report(records, expert_results, limits, run_info)
    paths = write_report(report, records, out_dir)   # report.json + episodes/episode_NNN.json
    print(format_table(report))

Layout of report.json:
  run              what was evaluated (model, seeds, tasks, time limits; from the caller)
  success          {"policy"|"expert": {family|"overall": {episodes, successes, rate}}}
  episode_time_s   {"policy"|"expert": {family|"overall": mean}} (simulated seconds)
  control_steps    same, in control periods
  latency          inference (PolicyStatus, ms) and observation_to_command (ms)
  expert_usage     per_task {family: {layer: mean expert_load}}, divergence {"a vs b": {layer: {tv, js_bits}}}
  failures         by_last_phase {family: {phase: count}}: where failed episodes believed they were;
                   shortfall_m {family: {count, median_m, max_m}}: how far from success they ended
  chunk_seams      the seam metric of seams.py (with the robot's limits when known)
  episodes         one summary row per episode (the full records are in episodes/)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from moe_vla_ros.evaluation.records import write_json
from moe_vla_ros.evaluation.sim import metrics
from moe_vla_ros.evaluation.sim.records import EpisodeRecord, ExpertResult

REPORT_FILE = "report.json"
EPISODES_DIR = "episodes"


def episode_summary(record: EpisodeRecord, expert: ExpertResult | None) -> dict[str, Any]:
    """The row of one episode: outcome, time, traffic, the first and last reasoning trace."""
    return {
        "index": record.index, "seed": record.seed, "family": record.family, "instruction": record.instruction,
        "success": record.success, "duration_s": record.duration_s, "control_steps": record.control_steps,
        "wall_time_s": record.wall_time_s, "chunks": len(record.trajectories), "holds": record.holds,
        "commands_refused": record.commands_refused, "controller_holds": record.controller_holds,
        "traces": len(record.traces), "first_trace": record.traces[0].text if record.traces else "",
        "last_trace": record.traces[-1].text if record.traces else "", "last_phase": metrics.last_phase(record),
        "shortfall_m": record.shortfall_m, "expert_success": expert.success if expert else None,
    }


def episode_line(record: EpisodeRecord, total: int) -> str:
    """One progress line: which episode, the outcome, simulated and wall time, chunks."""
    r = record
    return (f"[{r.index + 1}/{total}] {r.family:<5} seed {r.seed} {r.instruction!r}: "
            f"{'SUCCESS' if r.success else 'fail'} in {r.duration_s:.2f} s ({r.control_steps} steps, "
            f"{len(r.trajectories)} chunks, {r.wall_time_s:.1f} s wall)")


def build_report(
    records: Sequence[EpisodeRecord],
    expert: Sequence[ExpertResult] = (),
    limits: metrics.SeamLimits | None = None,
    run_info: Mapping[str, Any] | None = None,
    period_s: float | None = None,
) -> dict[str, Any]:
    """The report dict (see the module docstring); `period_s`: the control period (default
    limits.dt, else the spacing of the trajectories' points)."""
    by_index = {e.index: e for e in expert}
    success = {"policy": metrics.success_summary((r.family, r.success) for r in records)}
    time_s = {"policy": metrics.mean_by_family((r.family, r.duration_s) for r in records)}
    steps = {"policy": metrics.mean_by_family((r.family, r.control_steps) for r in records)}
    if expert:
        success["expert"] = metrics.success_summary((e.family, e.success) for e in expert)
        time_s["expert"] = metrics.mean_by_family((e.family, e.duration_s) for e in expert)
        steps["expert"] = metrics.mean_by_family((e.family, e.control_steps) for e in expert)
    loads = metrics.mean_expert_load(records)
    return {
        "run": dict(run_info or {}),
        "success": success,
        "episode_time_s": time_s,
        "control_steps": steps,
        "latency": {"inference": metrics.inference_latency(records),
                    "observation_to_command": metrics.observation_to_command(records)},
        "expert_usage": {"per_task": loads, "divergence": metrics.usage_divergence(loads)},
        "failures": {"by_last_phase": metrics.failure_phases(records),
                     "shortfall_m": metrics.failure_shortfalls(records)},
        "chunk_seams": metrics.seam_summary(records, period_s or (limits.dt if limits else None), limits),
        "episodes": [episode_summary(r, by_index.get(r.index)) for r in records],
    }


def write_report(report: Mapping[str, Any], records: Sequence[EpisodeRecord], out_dir: str | Path) -> dict[str, Path]:
    """report.json and one JSON file per episode record under `out_dir`; returns their paths."""
    out_dir = Path(out_dir)
    paths = {"report": write_json(out_dir / REPORT_FILE, report)}
    for record in records:
        paths[f"episode_{record.index:03d}"] = write_json(
            out_dir / EPISODES_DIR / f"episode_{record.index:03d}.json", record.to_dict())
    return paths


def _rate(summary: Mapping[str, Any] | None) -> str:
    if not summary:
        return "-"
    return f"{summary['successes']}/{summary['episodes']} {100 * summary['rate']:.0f}%"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def format_table(report: Mapping[str, Any]) -> str:
    """Success per task family (policy vs expert), mean episode time and steps, latency, seams, usage."""
    success, time_s, steps = report["success"], report["episode_time_s"], report["control_steps"]
    expert = success.get("expert", {})
    families = [k for k in success["policy"] if k != metrics.OVERALL] + [metrics.OVERALL]
    header = f"{'task':<8} {'policy success':>15} {'expert success':>15} {'mean time [s]':>14} {'mean steps':>11}"
    lines = [header, "-" * len(header)]
    for f in families:
        lines.append(f"{f:<8} {_rate(success['policy'].get(f)):>15} {_rate(expert.get(f)):>15} "
                     f"{_num(time_s['policy'].get(f), '.2f'):>14} {_num(steps['policy'].get(f), '.1f'):>11}")
    inf, age = report["latency"]["inference"], report["latency"]["observation_to_command"]
    lines.append(f"inference latency (PolicyStatus): p50 {_num(inf['p50_ms'], '.1f')} ms, "
                 f"p95 {_num(inf['p95_ms'], '.1f')} ms over {inf['count']} inferences")
    lines.append(f"observation -> command: p50 {_num(age['p50_ms'], '.1f')} ms, p95 {_num(age['p95_ms'], '.1f')} ms")
    seams = report["chunk_seams"]
    seam_line = (f"chunk seams: {seams['count']} ({seams['starved']['count']} starved), max jump "
                 f"{_num(seams['position_jump']['max'], '.4f')} rad, {_num(seams['velocity_jump']['max'], '.3f')} rad/s")
    if seams.get("limits", {}).get("within_bounds") is not None:
        bounds = seams["limits"]
        seam_line += (f"; x bound: {_num(bounds['max_position_ratio'], '.2f')} / "
                      f"{_num(bounds['max_velocity_ratio'], '.2f')}, "
                      f"{100 * bounds['within_bounds']:.0f}% within")
    lines.append(seam_line)
    for family, phases in report.get("failures", {}).get("by_last_phase", {}).items():
        counts = ", ".join(f"{phase} {n}" for phase, n in phases.items())
        lines.append(f"failed {family} episodes by their last trace's phase: {counts}")
    for family, short in report.get("failures", {}).get("shortfall_m", {}).items():
        lines.append(f"failed {family} episodes ended {100 * short['median_m']:.1f} cm short of success "
                     f"(median of {short['count']}, max {100 * short['max_m']:.1f} cm)")
    for pair, layers in report["expert_usage"]["divergence"].items():
        values = ", ".join(f"{name} TV {d['tv']:.3f} JS {d['js_bits']:.3f}" for name, d in layers.items())
        lines.append(f"expert usage {pair}: {values or 'no shared layers'}")
    return "\n".join(lines)
