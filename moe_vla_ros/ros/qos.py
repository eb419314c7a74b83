"""Topic names fixed by ROS and the QoS profiles chosen outside the nodes and passed in (one place
to change them)."""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}
CLOCK_TOPIC = "/clock"  # absolute: the simulated time of every namespace (use_sim_time)


def sensor_qos(reliability: str = "best_effort", depth: int = 5) -> QoSProfile:
    """Camera / joint-state subscriptions: keep-last, volatile; best effort matches every publisher."""
    if reliability not in RELIABILITY:
        raise ValueError(f"sensor reliability must be one of {sorted(RELIABILITY)}, got {reliability!r}")
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=RELIABILITY[reliability],
        durability=DurabilityPolicy.VOLATILE,
    )


def command_qos(depth: int = 1) -> QoSProfile:
    """Trajectory commands: reliable (a controller must not miss a hold), only the newest matters."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth,
        reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
    )


def enable_subscription_qos() -> tuple[QoSProfile, QoSProfile]:
    """The e-stop/enable subscriptions: one reliable (no loss from reliable publishers) and one best
    effort (the only kind a best-effort publisher matches). Subscribe with both: a Bool(false)
    must stop the robot whatever QoS the operator's tool publishes with."""
    reliable = command_qos(depth=10)
    best_effort = QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=10,
        reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE,
    )
    return reliable, best_effort


def latched_qos() -> QoSProfile:
    """Instruction PUBLISHERS: reliable + transient local, so a node that starts later still gets the
    last instruction (when its subscription is transient local too)."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=1,
        reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )


def instruction_subscription_qos(durability: str = "volatile") -> QoSProfile:
    """Instruction subscription. "volatile" matches every publisher (e.g. `ros2 topic pub`);
    "transient_local" also receives the last instruction of a latched publisher, but does not
    match volatile publishers."""
    policies = {"volatile": DurabilityPolicy.VOLATILE, "transient_local": DurabilityPolicy.TRANSIENT_LOCAL}
    if durability not in policies:
        raise ValueError(f"instruction durability must be one of {sorted(policies)}, got {durability!r}")
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=1,
        reliability=ReliabilityPolicy.RELIABLE, durability=policies[durability],
    )


def clock_qos() -> QoSProfile:
    """/clock publisher: reliable (matches rclpy/rclcpp's best-effort time sources and recorders), newest only."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)


def telemetry_qos(depth: int = 10) -> QoSProfile:
    """Reasoning traces, expert usage, status: reliable, a short history."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth,
        reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
    )


__all__ = [
    "CLOCK_TOPIC",
    "clock_qos",
    "command_qos",
    "enable_subscription_qos",
    "instruction_subscription_qos",
    "latched_qos",
    "qos_profile_sensor_data",
    "sensor_qos",
    "telemetry_qos",
]
