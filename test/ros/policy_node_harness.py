"""Runs a PolicyNode in this process on a background executor and records what it publishes.

Every JointTrajectory it publishes is checked on receipt, against the probe's clock, with
joint_trajectory_controller's acceptance rules (jtc_conformance.py): `close()` (or an explicit
`assert_no_jtc_violations()`) fails the test when the controller would not have executed one.
"""

from __future__ import annotations

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from jtc_conformance import JtcConformance, is_hold
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from moe_vla_msgs.msg import ExpertUsage, PolicyStatus, ReasoningTrace
from moe_vla_ros.ros import qos
from moe_vla_ros.ros.policy_node import PolicyNode

CAMERA_TOPICS = ["/cam/front", "/cam/wrist"]
LIMITS = {
    "robot.position_lower": [-3.0, -3.0, -1.0],
    "robot.position_upper": [3.0, 3.0, 1.0],
    "robot.max_velocity": [2.0, 2.0, 2.0],
    "robot.max_acceleration": [10.0, 10.0, 10.0],
}


def node_params(model_dir, **overrides) -> dict:
    """The harness's node parameters; an override of None removes that parameter (its default applies)."""
    params = {
        "model.path": str(model_dir),
        "model.providers": ["CPUExecutionProvider"],
        "model.warmup_runs": 1,
        "topics.camera_topics": CAMERA_TOPICS,
        "execution.refill_threshold_s": 0.2,
        "execution.reasoning_rate_hz": 2.0,
        "execution.status_rate_hz": 10.0,
        "safety.input_timeout_s": 1.5,
        "safety.startup_grace_s": 2.0,
        "autostart": True,
        **LIMITS,
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def params_file(tmp_path, model_dir, **overrides) -> str:
    """`node_params` as a ROS params file for a node process (any name, any namespace)."""
    import yaml

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": node_params(model_dir, **overrides)}}))
    return str(path)


class PolicyNodeHarness:
    def __init__(self, context, model_dir, **overrides) -> None:
        params = [Parameter(k, value=v) for k, v in node_params(model_dir, **overrides).items()]
        self.node = PolicyNode(context=context, parameter_overrides=params)
        self.probe = Node("probe", context=context)
        self.trajectories: list[JointTrajectory] = []
        self.traces: list[ReasoningTrace] = []
        self.usage: list[ExpertUsage] = []
        self.status: list[PolicyStatus] = []
        self.diagnostics: list[DiagnosticArray] = []
        p = self.probe
        # The controller runs on the node's joints, with upstream defaults (position interface).
        self.jtc = JtcConformance(clock=lambda: p.get_clock().now().nanoseconds * 1e-9,
                                  joints=lambda: self.node.joint_names)
        p.create_subscription(JointTrajectory, "/joint_trajectory_controller/joint_trajectory",
                              self._on_trajectory, qos.command_qos(depth=100))
        p.create_subscription(ReasoningTrace, "/reasoning_trace", self.traces.append, qos.telemetry_qos(100))
        p.create_subscription(ExpertUsage, "/expert_usage", self.usage.append, qos.telemetry_qos(100))
        p.create_subscription(PolicyStatus, "/policy_status", self.status.append, qos.telemetry_qos(100))
        p.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, qos.telemetry_qos(100))
        self.instruction_pub = p.create_publisher(String, "/instruction", qos.latched_qos())
        self._change_state = None
        self._removed: list = []  # nodes taken out of the executor, destroyed at close()
        self.executor = SingleThreadedExecutor(context=context)  # as the node's own main()
        self.executor.add_node(self.node)
        self.executor.add_node(self.probe)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def transition(self, transition_id: int, timeout_s: float = 30.0) -> bool:
        """Request a lifecycle transition through the node's change_state service (as a lifecycle
        manager or `ros2 lifecycle set` does); returns the service's success flag."""
        from lifecycle_msgs.srv import ChangeState

        name = f"/{self.node.get_name()}/change_state"
        for attempt in range(2):  # a client that missed the service's discovery is made anew once
            if self._change_state is None:
                self._change_state = self.probe.create_client(ChangeState, name)
            if self._change_state.wait_for_service(timeout_sec=timeout_s / 2):
                break
            self.probe.destroy_client(self._change_state)
            self._change_state = None
        else:  # what the graph shows: a server is "available" only with as many request readers as reply writers
            p = self.probe
            seen = sorted(n for n, _ in p.get_service_names_and_types() if "change_state" in n)
            readers = [(i.node_namespace, i.node_name) for i in p.get_subscriptions_info_by_topic(
                f"rq{name}Request", no_mangle=True)]
            writers = [(i.node_namespace, i.node_name) for i in p.get_publishers_info_by_topic(
                f"rr{name}Reply", no_mangle=True)]
            raise TimeoutError(
                f"{name} not available after {timeout_s} s; change_state services seen: {seen}; request readers "
                f"{readers}, reply writers {writers}; nodes {sorted(p.get_node_names_and_namespaces())}")
        request = ChangeState.Request()
        request.transition.id = transition_id
        future = self._change_state.call_async(request)
        self.wait_for(future.done, timeout_s, f"transition {transition_id}")
        return future.result().success

    def add_node(self, node) -> None:
        self.executor.add_node(node)

    def destroy_node(self, node) -> None:
        """Take a node out of the spinning executor: its callbacks stop. It is destroyed in `close()`,
        after the executor thread ended (a callback of it may still be running right now, and a
        destroyed publisher raises in it)."""
        self.executor.remove_node(node)
        self._removed.append(node)

    def wait_for(self, condition, timeout_s: float = 20.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                last = self.status[-1] if self.status else None
                raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}; last status: {last}")
            time.sleep(0.02)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        self.jtc.check(msg)
        self.trajectories.append(msg)

    def commands(self) -> list[JointTrajectory]:
        """Policy chunks (everything that is not a hold)."""
        return [t for t in self.trajectories if not is_hold(t)]

    def holds(self) -> list[JointTrajectory]:
        """Holds: stops to rest (jtc_conformance.is_hold)."""
        return [t for t in self.trajectories if is_hold(t)]

    def assert_no_jtc_violations(self) -> None:
        """Fails when joint_trajectory_controller would have refused a received trajectory."""
        self.jtc.assert_no_violations()

    def close(self, check_jtc: bool = True) -> None:
        """Stop and destroy the nodes; then (with `check_jtc`) fail on controller violations."""
        self.executor.shutdown()
        self._thread.join(timeout=10)
        for node in self._removed:
            node.destroy_node()
        self.node.destroy_node()
        self.probe.destroy_node()
        if check_jtc:
            self.assert_no_jtc_violations()
