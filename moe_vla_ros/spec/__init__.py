"""Node specs: the settings of each node as described, validated dataclasses (pure: no rclpy, no
torch). `described.py` turns such a dataclass into parameter names and values; `policy_node.py`
is the policy node's spec, the one source its node, bringup and evaluators build from."""
