"""The policy node: cameras + joint_states + instruction -> JointTrajectory + ReasoningTrace.

A lifecycle node (rclpy.lifecycle):
  configure   load the model, check its contract against the parameters, warm it up,
              create publishers and subscriptions (a model that fails to load leaves the node
              unconfigured); inputs are ignored until activation
  activate    use inputs, start the inference loop (its own thread, control/inference_loop.py)
  deactivate  stop the loop (waits for a running inference), publish a hold (empty trajectory:
              the controller stops)
  cleanup     free the model (publishers/subscriptions stay; inputs are ignored)
`autostart: true` configures and activates on start-up.

Everything between decoded messages and commands lives in moe_vla_ros.control.policy_runner;
this file only converts messages, wires callbacks and publishes.
"""

from __future__ import annotations

import argparse
import sys
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Bool, String
from trajectory_msgs.msg import JointTrajectory

from moe_vla_msgs.msg import ExpertUsage, PolicyStatus, ReasoningTrace
from moe_vla_ros.contract import ContractError
from moe_vla_ros.control.chunk_config import ChunkExecutorConfig
from moe_vla_ros.control.images import ImageConversionError
from moe_vla_ros.control.inference_loop import InferenceLoop
from moe_vla_ros.control.joint_state import JointStateError, JointStateMapper
from moe_vla_ros.control.policy_runner import JOINT_STATES, PolicyRunner, RunnerConfig, camera_input
from moe_vla_ros.control.safety import SafetyLimits
from moe_vla_ros.ros import qos
from moe_vla_ros.ros.conversions import (
    compressed_msg_to_rgb,
    image_msg_to_rgb,
    joint_state_msg_to_vector,
    make_header,
    planned_trajectory_to_msg,
    stamp_to_seconds,
)
from moe_vla_ros.ros.params import declare_config
from moe_vla_ros.ros.policy_model import check_robot_against_contract, load_configured_policy, warm_up
from moe_vla_ros.ros.policy_node_config import PolicyNodeConfig
from moe_vla_ros.ros.spin import spin_until_shutdown
from moe_vla_ros.ros.telemetry_msgs import (
    StatusSnapshot,
    diagnostics_msg,
    expert_usage_msg,
    policy_status_msg,
    reasoning_trace_msg,
)

INFERENCE_POLL_S = 0.005  # how often the inference loop asks the runner for work (wall clock)


class PolicyNode(LifecycleNode):
    def __init__(self, node_name: str = "policy_node", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        # Declared at construction, so `ros2 param` lists them before configure.
        self.config: PolicyNodeConfig = declare_config(self, PolicyNodeConfig)
        self.policy = None
        self.runner: PolicyRunner | None = None
        self.joint_names: tuple[str, ...] = ()
        self._mapper: JointStateMapper | None = None
        self._pubs: dict = {}
        self._subs: list = []
        # Inference runs on its own thread (control/inference_loop.py), started while active; ROS
        # callbacks run in a single-threaded executor. Its decisions use ROS time (`_now`).
        self._inference = InferenceLoop(self._on_inference_tick, INFERENCE_POLL_S, self._on_inference_error)
        self._active = False  # inputs are only used while active
        self._status_timer = None
        self._state = ("unconfigured", 1)
        self._last_log: dict[str, float] = {}
        # Status and start-up timers run on the steady clock: they must tick before /clock arrives.
        self._wall_clock = Clock(clock_type=ClockType.STEADY_TIME)
        if self.config.autostart:
            self._autostart_timer = self.create_timer(0.0, self._autostart, clock=self._wall_clock)

    # -- lifecycle ------------------------------------------------------------------------------
    def _autostart(self) -> None:
        self._autostart_timer.cancel()  # one shot
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        cfg = self.config
        try:
            self.policy = load_configured_policy(cfg.model, self.get_logger(), cfg.execution.reasoning_rate_hz > 0)
            check_robot_against_contract(cfg.robot, self.policy.contract)
            sensors = self.policy.contract.sensors
            if len(cfg.topics.camera_topics) != len(sensors.camera_names):
                raise ContractError(
                    f"topics.camera_topics has {len(cfg.topics.camera_topics)} topics for the model's cameras "
                    f"{list(sensors.camera_names)}"
                )
            self.joint_names = sensors.joint_names
            self._mapper = JointStateMapper(self.joint_names)
            limits = None
            if cfg.robot.position_lower:
                limits = SafetyLimits.from_config(self.joint_names, {
                    "lower": cfg.robot.position_lower, "upper": cfg.robot.position_upper,
                    "max_velocity": cfg.robot.max_velocity, "max_acceleration": cfg.robot.max_acceleration,
                })
            warm_up(self.policy, cfg.model.warmup_runs, limits)
            ex = cfg.execution
            executor_cfg = ChunkExecutorConfig.from_contract(
                self.policy.contract,
                refill_threshold_s=min(ex.refill_threshold_s, 0.999 * self.policy.contract.chunk_duration_s),
                blend=ex.blend, blend_steps=ex.blend_steps, exponential_rate=ex.exponential_rate,
                max_observation_age_s=ex.max_observation_age_s, execution_lead_s=ex.execution_lead_s,
            )
            self.runner = PolicyRunner(self.policy, RunnerConfig(
                executor=executor_cfg, sync_slop_s=ex.sync_slop_s,
                input_timeout_s=cfg.safety.input_timeout_s, startup_grace_s=cfg.safety.startup_grace_s,
                start_enabled=not cfg.safety.require_enable,
                reasoning_period_s=1.0 / ex.reasoning_rate_hz if ex.reasoning_rate_hz > 0 else None,
                default_instruction=ex.default_instruction,
            ), limits)
        except Exception as e:  # noqa: BLE001 - any load/contract problem fails the transition loudly
            self.get_logger().error(f"configure failed: {type(e).__name__}: {e}")
            self._free_model()
            return TransitionCallbackReturn.FAILURE
        if not self._pubs:  # first configure: see _create_io
            self._create_io()
        self._status_timer.reset()
        meta = self.policy.metadata
        self._state = ("inactive", 2)
        self.get_logger().info(
            f"configured: model {meta.model_id} on {meta.backend} {list(meta.execution_providers)}, "
            f"joints {list(self.joint_names)}"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.runner.activate(self._now())
        self._active = True
        self._inference.start()
        self._state = ("active", 3)
        self.get_logger().info("activated: commanding once inputs are fresh and an instruction is set")
        return super().on_activate(state)

    def _create_io(self) -> None:
        """Publishers, subscriptions and the status timer, created at the first configure and kept
        for the node's life (topics are fixed parameters): callbacks ignore inputs while the node
        is not active, and lifecycle publishers only publish while active. Destroying entities
        from a transition callback while an executor waits on them is unsafe in rclpy, so
        cleanup frees the model only."""
        cfg, t = self.config, self.config.topics
        self._pubs = {
            "trajectory": self.create_lifecycle_publisher(JointTrajectory, t.trajectory, qos.command_qos()),
            "trace": self.create_lifecycle_publisher(ReasoningTrace, t.reasoning_trace, qos.telemetry_qos()),
            "usage": self.create_lifecycle_publisher(ExpertUsage, t.expert_usage, qos.telemetry_qos()),
            # Status and diagnostics are plain publishers: they report in every state.
            "status": self.create_publisher(PolicyStatus, t.status, qos.telemetry_qos()),
            "diagnostics": self.create_publisher(DiagnosticArray, "/diagnostics", qos.telemetry_qos()),
        }
        self._status_timer = self.create_timer(
            1.0 / cfg.execution.status_rate_hz, self._publish_status, clock=self._wall_clock
        )
        sensor_qos = qos.sensor_qos(cfg.qos.sensor_reliability, cfg.qos.sensor_depth)
        for camera, topic in zip(self.policy.contract.sensors.camera_names, cfg.topics.camera_topics):
            if cfg.topics.camera_transport == "compressed":
                cb = lambda msg, c=camera: self._on_image(c, msg, compressed_msg_to_rgb)  # noqa: E731
                self._subs.append(self.create_subscription(
                    CompressedImage, f"{topic}/compressed", cb, sensor_qos))
            else:
                cb = lambda msg, c=camera: self._on_image(c, msg, image_msg_to_rgb)  # noqa: E731
                self._subs.append(self.create_subscription(
                    Image, topic, cb, sensor_qos))
        self._subs += [
            self.create_subscription(JointState, cfg.topics.joint_states, self._on_joint_state, sensor_qos),
            self.create_subscription(String, cfg.topics.instruction, self._on_instruction,
                                     qos.instruction_subscription_qos(cfg.qos.instruction_durability)),
            self.create_subscription(Bool, cfg.topics.enable, self._on_enable, qos.command_qos()),
        ]

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        self._publish_hold("deactivated")
        self.runner.deactivate()
        self._state = ("inactive", 2)
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        self._free_model()
        self._state = ("unconfigured", 1)
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._state[0] == "active":
            self._publish_hold("shutting down")
        self._stop_io()
        self._free_model()
        self._state = ("finalized", 4)
        return TransitionCallbackReturn.SUCCESS

    def _stop_io(self) -> None:
        """Inputs are ignored from now on; waits for a running inference (nothing is published after)."""
        self._active = False
        self._inference.stop()

    def destroy_node(self) -> None:
        self._inference.stop()
        super().destroy_node()

    def _free_model(self) -> None:
        if self.policy is not None:
            self.policy.close()
        self.policy, self.runner = None, None

    # -- inputs ---------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_image(self, camera: str, msg, convert) -> None:
        if not self._active:
            return
        sensors = self.policy.contract.sensors
        try:
            rgb = convert(msg, size=(sensors.image_height, sensors.image_width))
        except ImageConversionError as e:
            self.runner.reject_input(camera_input(camera), str(e))
            self._log_throttled(f"image/{camera}", f"camera {camera!r}: rejected image: {e}")
            return
        self.runner.add_image(camera, stamp_to_seconds(msg.header.stamp), rgb, self._now())

    def _on_joint_state(self, msg: JointState) -> None:
        if not self._active:
            return
        try:
            joints = joint_state_msg_to_vector(msg, self._mapper)
        except JointStateError as e:
            self.runner.reject_input(JOINT_STATES, str(e))
            self._log_throttled("joint_states", f"rejected joint state: {e}")
            return
        self.runner.add_joint_state(stamp_to_seconds(msg.header.stamp), joints, self._now())

    def _on_instruction(self, msg: String) -> None:
        if self.runner is None:
            return  # instructions are kept while inactive, so activation resumes the task
        if msg.data.strip() != self.runner.instruction:
            self.get_logger().info(f"new instruction: {msg.data.strip()!r} (chunk queue reset)")
        self.runner.set_instruction(msg.data)

    def _on_enable(self, msg: Bool) -> None:
        if self.runner is None:
            return
        self.get_logger().warning("enabled by operator" if msg.data else "E-STOP: disabled by operator, holding")
        self.runner.set_enabled(msg.data)

    def _log_throttled(self, key: str, text: str, period_s: float = 2.0) -> None:
        now = time.monotonic()
        if now - self._last_log.get(key, -1e9) >= period_s:
            self._last_log[key] = now
            self.get_logger().error(text)

    # -- inference loop -------------------------------------------------------------------------
    def _on_inference_tick(self) -> None:
        runner = self.runner
        if runner is None:
            return
        command = runner.step(self._now)
        if command is None:
            return
        if command.trajectory is None:
            self._publish_hold(command.hold_reason)
            return
        out, chunk_id = command.output, command.accept.chunk_id
        self._pubs["trajectory"].publish(planned_trajectory_to_msg(self.joint_names, command.trajectory))
        self._pubs["usage"].publish(expert_usage_msg(out.stamp, chunk_id, out.expert_usage))
        if out.reasoning is not None and out.reasoning_is_new:
            self._pubs["trace"].publish(reasoning_trace_msg(out.reasoning, chunk_id, runner.instruction, out.expert_usage))

    def _on_inference_error(self, error: BaseException) -> None:
        """An unexpected error in the loop (the runner itself catches model errors): hold, report."""
        self._log_throttled("inference", f"inference loop error: {type(error).__name__}: {error}")
        runner = self.runner
        if runner is not None:
            runner.record_error(f"inference loop: {type(error).__name__}: {error}")
        try:
            self._publish_hold(f"inference loop error: {error}")
        except Exception:  # noqa: BLE001 - e.g. the context is shutting down: nothing left to command
            pass

    def _publish_hold(self, reason: str) -> None:
        """An empty JointTrajectory: joint_trajectory_controller stops at its current position."""
        pub = self._pubs.get("trajectory")
        if pub is None:
            return
        pub.publish(JointTrajectory(header=make_header(0.0), joint_names=list(self.joint_names)))
        self.get_logger().warning(f"holding: {reason}")

    # -- status -----------------------------------------------------------------------------------
    def status_snapshot(self) -> StatusSnapshot:
        runner, now = self.runner, self._now()
        label, state_id = self._state
        if runner is None:
            from moe_vla_ros.control.latency import LatencySummary

            return StatusSnapshot(now, state_id, label, None, LatencySummary(0, 0, 0, 0, 0, 0),
                                  0, 0, 0, 0, 0, 0, False, "not configured", "", "")
        c = runner.counters
        hold = runner.hold_reason(now) if label == "active" else f"node {label}"
        return StatusSnapshot(
            stamp=now, lifecycle_id=state_id, lifecycle_label=label, metadata=self.policy.metadata,
            latency=runner.latency_summary(), chunks_published=c.chunks_published,
            dropped_inputs=runner.input_drop_count() + c.rejected_inputs, stale_inputs=runner.stale_event_count(),
            rejected_commands=c.rejected_chunks, rejected_inputs=c.rejected_inputs,
            inference_errors=c.inference_errors, commanding=runner.commanding and label == "active",
            hold_reason="" if runner.commanding else hold, last_error=c.last_error, instruction=runner.instruction,
        )

    def _publish_status(self) -> None:
        snapshot = self.status_snapshot()
        if "status" in self._pubs:
            self._pubs["status"].publish(policy_status_msg(snapshot))
            self._pubs["diagnostics"].publish(diagnostics_msg(snapshot, self.get_name()))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    non_ros = rclpy.utilities.remove_ros_args(["policy_node", *argv])[1:]
    parser = argparse.ArgumentParser(
        prog="policy_node",
        description="MoE-VLA policy lifecycle node. Parameters: config/policy.yaml + config/robots/*.yaml "
                    "(pass with --ros-args --params-file FILE); set autostart:=true to run without a "
                    "lifecycle manager.",
    )
    parser.parse_args(non_ros)
    rclpy.init(args=["policy_node", *argv])
    spin_until_shutdown(PolicyNode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
