"""Evaluation of a policy, in one home. Pure (no rclpy): the ROS halves that run the real node
are moe_vla_ros/ros/closed_loop_eval.py and moe_vla_ros/ros/bag_replay_eval.py.

  records.py   what both evaluators record: CommandRecord (a published trajectory), TraceRecord,
               UsageRecord; EvaluationError, write_json
  seams.py     the one chunk-seam metric (executed path, jumps, baseline, limits) both score
  stats.py     summary statistics
  process.py   NodeProcess: the policy node as a child process of an evaluator
  sim/         closed loop in the simulator (`moe_vla_eval_sim`): episode plans and records,
               metrics, the scripted-expert baseline, report.json and figures
  bag/         a policy on a recorded bag: offline through the node's PolicyRunner
               (`moe_vla_eval_bag`, offline.py) or replayed through the node
               (`moe_vla_bag_replay_eval`, replay.py); settings, records, metrics, the oracle
               baseline, report.json and plots

Bag I/O, validation and conversion stay in moe_vla_ros/bags/ (below this package).
"""
