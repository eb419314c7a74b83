"""Evaluation of a policy on a recorded bag (the bag I/O is moe_vla_ros/bags/).

  config.py    EvaluationConfig: the node's spec + the bag's topics, latency simulation, scoring
  offline.py   `moe_vla_eval_bag`: the bag through the node's PolicyRunner on the bag's clock
  replay.py    the pure half of `moe_vla_bag_replay_eval` (the node's command line, its outputs;
               the rclpy half is moe_vla_ros/ros/bag_replay_eval.py)
  records.py   RunRecords (what a run produced), Reference (the recorded actions), the node's
               outputs read back from a bag
  metrics.py   action error, executed points, staleness, reasoning, expert-usage drift
  oracle.py    RecordedActionsPolicy: the recording's own actions as a policy (the error floor)
  report.py    report.json and its headline numbers; plots.py its PNGs
"""
