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

`model.backend: triton` runs the stage graphs on a Triton Inference Server (model.triton.*): the
contract is checked against the server's model metadata at configure (a mismatch or an
unreachable server fails configure naming the url), an inference that misses its deadline or
loses the server is a hold, and with `model.triton.fallback_onboard` the following steps run on
the onboard ONNX Runtime policy, reported in PolicyStatus, /diagnostics and the log
(ros/policy_model.py RemoteWatch).

Everything between decoded messages and commands lives in moe_vla_ros.control.policy_runner;
what the parameters mean (runtime config, contract check, limits, runner config) is the spec's,
moe_vla_ros/spec/policy_node.py; this file only converts messages, wires callbacks and publishes.

`policy_node [--ros-args ...]`: exit status 0 when stopped (SIGINT/SIGTERM, as launch stops it),
1 when autostart could not configure or activate, 2 for bad arguments or parameters (one line
on stderr, `policy_node: error: ...`), 130 when interrupted before it runs.
"""

from __future__ import annotations

import enum
import sys
import threading
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import ParameterException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Bool, String
from trajectory_msgs.msg import JointTrajectory

from moe_vla_msgs.msg import ExpertUsage, PolicyStatus, ReasoningTrace
from moe_vla_ros.cli import one_line, run_tool, tool_parser
from moe_vla_ros.control.images import ImageConversionError
from moe_vla_ros.control.inference_loop import InferenceLoop
from moe_vla_ros.control.input_checks import MALFORMED, NON_FINITE
from moe_vla_ros.control.joint_state import JointStateError, JointStateMapper
from moe_vla_ros.control.policy_runner import JOINT_STATES, PolicyRunner, camera_input
from moe_vla_ros.control.safety import SafetyLimits
from moe_vla_ros.errors import BadInputError
from moe_vla_ros.ros import qos
from moe_vla_ros.ros.conversions import (
    compressed_msg_to_rgb,
    image_msg_to_rgb,
    joint_state_msg_to_vector,
    planned_trajectory_to_msg,
    stamp_to_seconds,
)
from moe_vla_ros.ros.params import declare_config, read_config
from moe_vla_ros.ros.policy_model import RemoteWatch, load_configured_policy, warm_up_policy
from moe_vla_ros.ros.spin import init_process, spin_until_shutdown
from moe_vla_ros.ros.telemetry_msgs import (
    StatusSnapshot,
    diagnostics_msg,
    expert_usage_msg,
    policy_status_msg,
    reasoning_trace_msg,
)
from moe_vla_ros.spec.described import unknown_parameters
from moe_vla_ros.spec.policy_node import INFERENCE_POLL_S, NodeConfigError, PolicyNodeConfig

PROG = "policy_node"
STARTUP_PARAMETERS = ("topics.", "qos.", "execution.status_rate_hz", "autostart")  # read once, read-only


class Lifecycle(enum.IntEnum):
    """The primary lifecycle states the node reports (lifecycle_msgs/State ids)."""

    UNCONFIGURED = 1
    INACTIVE = 2
    ACTIVE = 3
    FINALIZED = 4

    @property
    def label(self) -> str:
        return self.name.lower()


class PolicyNode(LifecycleNode):
    def __init__(self, node_name: str = "policy_node", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        # Inference runs on its own thread (control/inference_loop.py), started while active; ROS
        # callbacks run in a single-threaded executor. Its decisions use ROS time (`_now`).
        # Created first: destroy_node must work whatever fails below.
        self._inference = InferenceLoop(self._on_inference_tick, INFERENCE_POLL_S, self._on_inference_error)
        self._publish_lock = threading.Lock()  # one trajectory publisher at a time; guards _stopping
        self._stopping = False  # set by stop_commanding: nothing but the final hold is published
        self.policy = None
        self.runner: PolicyRunner | None = None
        self.remote: RemoteWatch | None = None  # model.triton.fallback_onboard: the switch, for status
        self.limits: SafetyLimits | None = None
        self.joint_names: tuple[str, ...] = ()
        self._mapper: JointStateMapper | None = None
        self._pubs: dict = {}
        self._subs: list = []
        self._active = False  # inputs are only used while active
        self._state = Lifecycle.UNCONFIGURED
        self._configure_error = ""  # why the last configure/activate failed ("" when it did not)
        # The inference loop's last hold while no input check holds (e.g. a failed inference):
        # PolicyStatus.hold_reason until the next command; "" once commanding again.
        self._step_hold = ""
        self._instruction = ""  # kept across cleanup/configure: activation resumes the task
        self._enabled: bool | None = None  # last operator enable/disable, for logging changes
        self._enable_stamp = -1  # source timestamp (ns) of the enable message applied last
        self._last_log: dict[str, float] = {}
        self.exit_code = 0  # the process's exit status (1 after a failed autostart)
        self.exit_requested = False  # spin_until_shutdown stops spinning when set
        # Declared at construction, so `ros2 param` lists them before configure; topics and QoS
        # are read here only (read-only), everything else again at configure.
        self.config: PolicyNodeConfig = declare_config(self, PolicyNodeConfig, STARTUP_PARAMETERS)
        unknown = unknown_parameters(self._parameter_overrides, PolicyNodeConfig)
        if unknown:
            self.get_logger().warning(
                f"ignoring unknown parameters (not declared by policy_node): {', '.join(unknown)}")
        self.add_on_set_parameters_callback(self._validate_parameter_change)
        # Status and start-up timers run on the steady clock: they must tick before /clock arrives.
        self._wall_clock = Clock(clock_type=ClockType.STEADY_TIME)
        t = self.config.topics
        # Status and diagnostics are plain publishers: they report in every state, from now on.
        self._pubs["status"] = self.create_publisher(PolicyStatus, t.status, qos.telemetry_qos())
        self._pubs["diagnostics"] = self.create_publisher(DiagnosticArray, "/diagnostics", qos.telemetry_qos())
        self._status_timer = self.create_timer(
            1.0 / self.config.execution.status_rate_hz, self._publish_status, clock=self._wall_clock
        )
        if self.config.autostart:
            self._autostart_timer = self.create_timer(0.0, self._autostart, clock=self._wall_clock)

    @property
    def configure_error(self) -> str:
        """Why the last configure/activate failed ("" when it did not)."""
        return self._configure_error

    # -- parameters -----------------------------------------------------------------------------
    def _validate_parameter_change(self, params) -> SetParametersResult:
        """`ros2 param set`: refuse values the config dataclasses reject, naming the reason. Changes
        take effect at the next configure."""
        changes = {p.name: p.value for p in params if p.name not in ("use_sim_time",)}
        try:
            read_config(self, PolicyNodeConfig, changes)
        except (NodeConfigError, ValueError, TypeError) as e:
            return SetParametersResult(successful=False, reason=str(e))
        return SetParametersResult(successful=True)

    # -- lifecycle ------------------------------------------------------------------------------
    def _autostart(self) -> None:
        self._autostart_timer.cancel()  # one shot
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            if self.trigger_activate() == TransitionCallbackReturn.SUCCESS:
                return
        self.get_logger().error(f"autostart failed: {self._configure_error}; exiting")
        self.exit_code, self.exit_requested = 1, True

    def _fail(self, what: str, error: BaseException | str) -> TransitionCallbackReturn:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self._configure_error = f"{what} failed: {text}"
        self.get_logger().error(self._configure_error)
        self._publish_status()  # at once: the failure must be visible even if the process exits now
        return TransitionCallbackReturn.FAILURE

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.config = cfg = read_config(self, PolicyNodeConfig)
            self.policy = load_configured_policy(cfg, self.get_logger())
            contract = self.policy.contract
            cfg.check_contract(contract)
            self.joint_names = contract.sensors.joint_names
            self._mapper = JointStateMapper(self.joint_names)
            self.limits = limits = cfg.safety_limits(contract)
            warm_up_policy(self.policy, cfg.model.warmup_runs, limits)
            self.runner = PolicyRunner(self.policy, cfg.runner_config(contract), limits)
            self.remote = RemoteWatch.of(self.policy, self.get_logger())
            if self._instruction:
                self.runner.set_instruction(self._instruction)
            if self._enabled is not None:  # an e-stop stays engaged across reconfiguration
                self.runner.set_enabled(self._enabled)
        except Exception as e:
            self._free_model()
            return self._fail("configure", e)
        if not self._subs:  # first configure: see _create_io
            self._create_io()
        self._configure_error = ""
        meta = self.policy.metadata
        self._state = Lifecycle.INACTIVE
        self.get_logger().info(
            f"configured: model {meta.model_id} on {meta.backend} {list(meta.execution_providers)}, "
            f"joints {list(self.joint_names)}, on-target verification {meta.verification.get('status', 'off')}"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        limits = self.limits
        if limits is None or not limits.has_position_limits:
            if not self.config.safety.allow_missing_position_limits:
                return self._fail("activate", (
                    "no joint position limits configured (robot.position_lower/upper): refusing to command "
                    "the robot; set them, or set safety.allow_missing_position_limits:=true to run without"))
            missing = "any limits" if limits is None else "position limits (velocity/acceleration limits apply)"
            self.get_logger().warning(f"activating WITHOUT {missing}: safety.allow_missing_position_limits is true")
        self._configure_error = ""
        self.runner.activate(self._now())
        self._active = True
        self._stopping = False
        self._step_hold = ""
        self._inference.start()
        self._state = Lifecycle.ACTIVE
        self.get_logger().info("activated: commanding once inputs are fresh and an instruction is set")
        return super().on_activate(state)

    def _create_io(self) -> None:
        """Publishers and subscriptions, created at the first configure and kept for the node's
        life (topics are read-only parameters): callbacks ignore inputs while the node is not
        active, and lifecycle publishers only publish while active. Destroying entities from a
        transition callback while an executor waits on them is unsafe in rclpy, so cleanup frees
        the model only."""
        cfg, t = self.config, self.config.topics
        self._pubs.update({
            "trajectory": self.create_lifecycle_publisher(JointTrajectory, t.trajectory, qos.command_qos()),
            "trace": self.create_lifecycle_publisher(ReasoningTrace, t.reasoning_trace, qos.telemetry_qos()),
            "usage": self.create_lifecycle_publisher(ExpertUsage, t.expert_usage, qos.telemetry_qos()),
        })
        sensor_qos = qos.sensor_qos(cfg.qos.sensor_reliability, cfg.qos.sensor_depth)
        for camera, topic in zip(self.policy.contract.sensors.camera_names, cfg.topics.camera_topics):
            if cfg.topics.camera_transport == "compressed":
                cb = lambda msg, c=camera: self._on_image(c, msg, compressed_msg_to_rgb)
                self._subs.append(self.create_subscription(
                    CompressedImage, f"{topic}/compressed", cb, sensor_qos))
            else:
                cb = lambda msg, c=camera: self._on_image(c, msg, image_msg_to_rgb)
                self._subs.append(self.create_subscription(
                    Image, topic, cb, sensor_qos))
        self._subs += [
            self.create_subscription(JointState, cfg.topics.joint_states, self._on_joint_state, sensor_qos),
            self.create_subscription(String, cfg.topics.instruction, self._on_instruction,
                                     qos.instruction_subscription_qos(cfg.qos.instruction_durability)),
        ]
        # The e-stop matches every publisher: a reliable subscription gets reliable publishers'
        # messages without loss, a best-effort one gets best-effort publishers' (a reliable
        # publisher's message arrives on both; setting the same state twice is harmless).
        # The reliable one would warn about every best-effort publisher ("incompatible QoS"): by design.
        quiet = SubscriptionEventCallbacks(incompatible_qos=lambda _event: None)
        for profile in qos.enable_subscription_qos():
            self._subs.append(self.create_subscription(Bool, cfg.topics.enable, self._on_enable, profile,
                                                       event_callbacks=quiet))

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        self._publish_hold("deactivated", self.runner.hold(self._now(), "deactivated"))
        self.runner.deactivate()
        self._state = Lifecycle.INACTIVE
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        self._free_model()
        self._state = Lifecycle.UNCONFIGURED
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_commanding("shutting down")
        self._free_model()
        self._state = Lifecycle.FINALIZED
        return TransitionCallbackReturn.SUCCESS

    def stop_commanding(self, reason: str) -> None:
        """Stop for good (a signal, shutdown, destruction): gate the trajectory publisher so a
        running inference publishes nothing, stop the loop, then send the final hold when the node
        was active. Safe to call from any thread, more than once."""
        with self._publish_lock:
            if self._stopping:
                return
            self._stopping = True
            was_active, self._active = self._active, False
            if was_active and self.runner is not None:
                self._send_hold(f"final hold: {reason}", self.runner.hold(self._now(), reason))
        self._inference.stop()

    def _stop_io(self) -> None:
        """Inputs are ignored from now on; waits for a running inference (nothing is published after)."""
        self._active = False
        self._inference.stop()

    def destroy_node(self) -> None:
        try:
            self.stop_commanding("node destroyed")
        except Exception as e:
            self.get_logger().debug(f"no final hold at destruction: {e}")
        self._free_model()
        super().destroy_node()

    def _free_model(self) -> None:
        if self.policy is not None:
            self.policy.close()
        self.policy, self.runner, self.remote = None, None, None

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
            self.runner.reject_input(camera_input(camera), str(e), self._now())
            self._log_throttled(f"image/{camera}", f"camera {camera!r}: rejected image: {e}")
            return
        self.runner.add_image(camera, stamp_to_seconds(msg.header.stamp), rgb, self._now())

    def _on_joint_state(self, msg: JointState) -> None:
        if not self._active:
            return
        try:
            joints = joint_state_msg_to_vector(msg, self._mapper)
        except JointStateError as e:
            self.runner.reject_input(JOINT_STATES, str(e), self._now(), NON_FINITE if e.non_finite else MALFORMED)
            self._log_throttled("joint_states", f"rejected joint state: {e}")
            return
        self.runner.add_joint_state(stamp_to_seconds(msg.header.stamp), joints, self._now())

    def _on_instruction(self, msg: String) -> None:
        text = msg.data.strip()
        if text != self._instruction:
            self.get_logger().info(f"new instruction: {text!r} (chunk queue reset)")
        self._instruction = text  # kept while unconfigured/inactive, so activation resumes the task
        if self.runner is not None:
            self.runner.set_instruction(text)

    def _on_enable(self, msg: Bool, info) -> None:
        # Reliable publishers reach both enable subscriptions: apply messages in publication order
        # (a message delivered late on the other subscription must not undo a newer one).
        stamp = int(info["source_timestamp"])
        if stamp < self._enable_stamp:
            return
        self._enable_stamp = stamp
        enabled = bool(msg.data)
        if enabled != self._enabled:
            self.get_logger().warning("enabled by operator" if enabled else "E-STOP: disabled by operator, holding")
        self._enabled = enabled
        if self.runner is not None:
            hold = self.runner.set_enabled(enabled, self._now() if self._active else None)
            if hold is not None:
                self._publish_hold("e-stop", hold)  # at once, not at the next inference tick

    def _log_throttled(self, key: str, text: str, period_s: float = 2.0) -> None:
        now = time.monotonic()
        if now - self._last_log.get(key, -1e9) >= period_s:
            self._last_log[key] = now
            self.get_logger().error(text)

    # -- inference loop -------------------------------------------------------------------------
    def _on_inference_tick(self) -> None:
        runner = self.runner
        if runner is None or self._stopping:
            return
        command = runner.step(self._now)
        if self.remote is not None:
            self.remote.poll(runner.counters.last_error)
        if command is None:
            return
        if command.is_hold:
            self._step_hold = command.hold_reason
            self._publish_hold(command.hold_reason, command)
            return
        out, chunk_id = command.output, command.accept.chunk_id
        with self._publish_lock:
            if self._stopping or not runner.commanding:
                return  # stopped or held (e-stop, deactivate) meanwhile: the hold went out, nothing after it
            command = runner.at_send(command, self._now())  # a late start from rest keeps its lead
            self._pubs["trajectory"].publish(planned_trajectory_to_msg(self.joint_names, command.trajectory))
            self._step_hold = ""
        self._pubs["usage"].publish(expert_usage_msg(out.stamp, chunk_id, out.expert_usage))
        if out.reasoning is not None and out.reasoning_is_new:
            trace = reasoning_trace_msg(out.reasoning, chunk_id, runner.instruction, out.expert_usage)
            self._pubs["trace"].publish(trace)

    def _on_inference_error(self, error: BaseException) -> None:
        """An unexpected error in the loop (the runner itself catches model errors): hold, report."""
        self._log_throttled("inference", f"inference loop error: {type(error).__name__}: {error}")
        runner = self.runner
        if runner is None:
            return
        try:
            hold = runner.record_error(f"inference loop: {type(error).__name__}: {error}", self._now())
            self._publish_hold(f"inference loop error: {error}", hold)
        except Exception:
            pass

    def _publish_hold(self, reason: str, command) -> None:
        with self._publish_lock:
            if not self._stopping:
                self._send_hold(reason, command)

    def _send_hold(self, reason: str, command) -> None:
        """Publish the hold of `command` (a trajectory to rest that joint_trajectory_controller
        accepts); None: nothing to hold from (no plan and no valid joint state: the controller
        keeps its last setpoint). Called with the publish lock held."""
        pub = self._pubs.get("trajectory")
        if pub is None:
            return
        if command is not None and command.trajectory is not None:
            pub.publish(planned_trajectory_to_msg(self.joint_names, command.trajectory))
        self.get_logger().warning(f"holding: {reason}")

    # -- status -----------------------------------------------------------------------------------
    def status_snapshot(self) -> StatusSnapshot:
        runner, now, state = self.runner, self._now(), self._state
        if runner is None:
            reason = self._configure_error or f"node {state.label}"
            return StatusSnapshot.empty(stamp=now, lifecycle_id=int(state), lifecycle_label=state.label,
                                        hold_reason=reason, last_error=self._configure_error,
                                        instruction=self._instruction)
        c = runner.counters
        active = state is Lifecycle.ACTIVE
        hold = (runner.hold_reason(now) or self._step_hold) if active else f"node {state.label}"
        if self._configure_error:
            hold = self._configure_error
        snapshot = StatusSnapshot(
            stamp=now, lifecycle_id=int(state), lifecycle_label=state.label, metadata=self.policy.metadata,
            latency=runner.latency_summary(), chunks_published=c.chunks_published,
            dropped_inputs=runner.input_drop_count() + c.rejected_inputs, stale_inputs=runner.stale_event_count(),
            rejected_commands=c.rejected_chunks, rejected_inputs=c.rejected_inputs,
            inference_errors=c.inference_errors, commanding=runner.commanding and active,
            hold_reason="" if runner.commanding and active else hold,
            last_error=self._configure_error or c.last_error, instruction=runner.instruction,
            holds_by_reason=dict(c.holds_by_reason), rejected_inputs_by_reason=dict(c.rejected_by_reason),
        )
        remote = self.remote
        return snapshot if remote is None else remote.status_snapshot(snapshot)

    def _publish_status(self) -> None:
        snapshot = self.status_snapshot()
        self._pubs["status"].publish(policy_status_msg(snapshot))
        diagnostics = diagnostics_msg(snapshot, self.get_name())
        remote = self.remote
        if remote is not None and snapshot.metadata is not None:
            diagnostics = remote.diagnostics(diagnostics, snapshot.commanding)
        self._pubs["diagnostics"].publish(diagnostics)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    return run_tool(PROG, lambda: _run(argv))


def _run(argv: list[str]) -> int:
    try:
        non_ros = rclpy.utilities.remove_ros_args([PROG, *argv])[1:]
    except Exception as e:
        raise BadInputError(f"invalid ROS arguments: {one_line(e)}") from None
    parser = tool_parser(PROG, __doc__, epilog=(
        "Parameters: config/policy.yaml + config/robots/*.yaml (pass with --ros-args --params-file FILE); "
        "set autostart:=true to run without a lifecycle manager."))
    parser.parse_args(non_ros)
    try:
        init_process([PROG, *argv])
    except Exception as e:
        raise BadInputError(f"cannot start ROS: {one_line(e)}") from None
    try:
        node = PolicyNode()
    except (NodeConfigError, ParameterException, ValueError, TypeError) as e:
        rclpy.try_shutdown()
        raise BadInputError(f"invalid parameters: {one_line(e)}") from None
    spin_until_shutdown(node)  # SIGINT/SIGTERM: the final hold, then a normal stop (exit 0)
    return node.exit_code


if __name__ == "__main__":
    sys.exit(main())
