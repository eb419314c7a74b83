"""moe_vla_ros: a Mixture-of-Experts Vision-Language-Action policy for ROS 2."""

__version__ = "0.1.0"
