"""Serving a fleet from NVIDIA Triton Inference Server: the model repository generator.

`triton_repository.build_repository(model_dir, out_dir, cfg)` writes a Triton model repository
from an exported model folder (`moe_vla_triton_repository MODEL -o OUT`); the robot-side client
is `moe_vla_ros.runtime.triton_policy`. No torch, no rclpy.
"""
