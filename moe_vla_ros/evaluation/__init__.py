"""Closed-loop evaluation of a policy in the simulator: episode plans and records, metrics,
the report and its figures. Pure (no rclpy): the ROS side that runs the episodes is
moe_vla_ros/ros/closed_loop_eval.py.

  records.py          EpisodePlan / plan_episodes, EpisodeRecord (what one episode measured), ExpertResult
  metrics.py          success, time, latency, expert-usage divergence, chunk-seam smoothness
  expert_baseline.py  the scripted expert on the same seeds and tasks
  report.py           report.json, per-episode JSON, the printed table
  plots.py            success / expert-usage / joint-trajectory PNGs and the camera GIF
"""

from moe_vla_ros.evaluation.records import (
    DEFAULT_SEED_START,
    EpisodePlan,
    EpisodeRecord,
    EvaluationError,
    ExpertResult,
    plan_episodes,
)

__all__ = ["DEFAULT_SEED_START", "EpisodePlan", "EpisodeRecord", "EvaluationError", "ExpertResult", "plan_episodes"]
