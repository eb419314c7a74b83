"""Closed-loop evaluation of a policy in the simulator, the pure parts (the ROS side that runs
the episodes is moe_vla_ros/ros/closed_loop_eval.py).

  records.py          EpisodePlan / plan_sim_episodes, EpisodeRecord (what one episode measured), ExpertResult
  metrics.py          success, time, latency, expert-usage divergence, chunk seams (evaluation/seams.py)
  expert_baseline.py  the scripted expert on the same seeds and tasks
  report.py           report.json, per-episode JSON, the printed table
  plots.py            success / expert-usage / joint-trajectory PNGs and the camera GIF
"""
