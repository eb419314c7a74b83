"""sim_node: the MuJoCo arm (moe_vla_ros.sim) on the ROS graph, with the topics and message types
of a Gazebo/Isaac + ros2_control setup.

Publishes (stamps are simulated time):
  topics.camera_topics    sensor_msgs/Image per camera at camera_rate_hz
  topics.joint_states     sensor_msgs/JointState (joint_1..joint_6, gripper) at joint_state_rate_hz
  /clock                  rosgraph_msgs/Clock at clock_rate_hz when publish_clock is true
  topics.instruction      std_msgs/String, latched (transient local) and again whenever a subscriber
                          joins (so volatile subscriptions get it too), when there is an instruction
Subscribes:
  topics.trajectory       trajectory_msgs/JointTrajectory, refused or followed exactly as a
                          joint_trajectory_controller with the `controller.*` parameters would
                          (control/jtc_rules.py, sim/trajectory_follower.py): a refused message
                          (an empty one included: it is not a hold) is logged and counted in
                          `commands_rejected` and changes nothing; an accepted one replaces the
                          running trajectory at once, from the state at receipt; path/goal
                          tolerance violations make the arm hold where it is (`controller_holds`).

Time: a wall-clock timer advances the physics in whole steps so that the simulated time follows
wall time * real_time_factor; messages fall due on the physics grid. A simulation that cannot
keep up runs slower rather than catching up in a burst. The simulated time keeps increasing
across `reset_episode()` (the arm's own `ArmSim.time` restarts at 0), so /clock never jumps back.

    ros2 run moe_vla_ros sim_node --ros-args --params-file config/sim.yaml -p seed:=3
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time

import rclpy
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidParameterValueException
from rclpy.node import Node
from rclpy.utilities import remove_ros_args
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory as JointTrajectoryMsg

from moe_vla_ros.ros.conversions import make_header, rgb_to_image_msg, seconds_to_stamp
from moe_vla_ros.ros.mock_controller import receive_trajectory
from moe_vla_ros.ros.params import declare_config
from moe_vla_ros.ros.qos import CLOCK_TOPIC, clock_qos, command_qos, latched_qos, sensor_qos
from moe_vla_ros.ros.sim_node_config import SimNodeConfig, SimNodeConfigError
from moe_vla_ros.ros.spin import init_process, spin_until_shutdown
from moe_vla_ros.sim.arm_sim import ArmSim
from moe_vla_ros.sim.config import JOINT_NAMES
from moe_vla_ros.sim.tasks import Task, TaskMonitor
from moe_vla_ros.sim.trajectory_follower import TrajectoryError, TrajectoryFollower

MAX_LAG_S = 0.2  # wall seconds the simulation may fall behind before it gives the time up
MAX_TICK_SIM_S = 0.1  # simulated seconds one timer callback advances at most
FAR_FUTURE_S = 10.0  # trajectories starting later than this are suspicious (wall-clock stamps?)


class RealTimePacer:
    """The simulated time to have reached at a wall-clock time, for a real-time factor.

    More than `max_lag_s` of wall time behind, the lost time is given up: the simulation then
    runs slower than asked (as Gazebo does when overloaded) instead of catching up in a burst.
    """

    def __init__(self, real_time_factor: float, max_lag_s: float = MAX_LAG_S) -> None:
        self.real_time_factor = real_time_factor
        self.max_lag_s = max_lag_s
        self._anchor: tuple[float, float] | None = None  # (wall, sim) the pace is counted from
        self._start: tuple[float, float] | None = None
        self.lagged_s = 0.0  # wall time given up so far

    def target(self, wall_now: float, sim_now: float) -> float:
        if self._anchor is None:
            self._anchor = self._start = (wall_now, sim_now)
        wall0, sim0 = self._anchor
        behind_s = (sim0 + (wall_now - wall0) * self.real_time_factor - sim_now) / self.real_time_factor
        if behind_s > self.max_lag_s:
            self.lagged_s += behind_s - self.max_lag_s
            self._anchor = wall0, sim0 = wall_now - self.max_lag_s, sim_now
        return sim0 + (wall_now - wall0) * self.real_time_factor

    def achieved(self, wall_now: float, sim_now: float) -> float:
        """Simulated seconds per wall second since the first `target()` call (0 before)."""
        if self._start is None or wall_now <= self._start[0]:
            return 0.0
        return (sim_now - self._start[1]) / (wall_now - self._start[0])


class _Schedule:
    """A periodic publication, due at the first physics step at or after k / rate_hz."""

    def __init__(self, rate_hz: float, dt: float, publish) -> None:
        self._steps_per_period = 1.0 / (rate_hz * dt)
        self._k = 0
        self.publish = publish

    def due_step(self, after: int) -> int:
        """Step of the next publication, skipping periods before step `after`."""
        while math.ceil(self._k * self._steps_per_period - 1e-9) < after:
            self._k += 1
        return math.ceil(self._k * self._steps_per_period - 1e-9)

    def done(self) -> None:
        self._k += 1


def _describe(task: Task | None) -> str:
    return f"{task.family} {task.instruction!r}" if task else "none (task_success() unavailable)"


class SimNode(Node):
    """The simulator node. Parameters: SimNodeConfig. Thread-safe (one lock around the sim).

    For closed-loop evaluation in-process: `reset_episode()`, `task_success()`,
    `task_shortfall_m()`, `sim_time`, `arm` (read-only use), `episode`, `commands_received` /
    `commands_rejected` / `controller_holds`, `jtc_params`.
    """

    def __init__(self, node_name: str = "sim_node", **node_kwargs) -> None:
        # before anything can fail: a node refused half-way (bad parameter) is still destroyed by rclpy
        self._lock = threading.RLock()
        self._closed = False
        super().__init__(node_name, **node_kwargs)
        self.config = c = declare_config(self, SimNodeConfig)
        self._arm = ArmSim(c.sim_config())
        self._arm.render(c.cameras.names[0])  # create the GL context now: fail early, no first-frame lag
        self._dt = float(self._arm.model.opt.timestep)
        self._steps = 0  # physics steps since start-up: sim_time = steps * dt, across episodes
        self._episode_start_s = 0.0
        self._episode = 0
        self._received = self._rejected = self._controller_holds = 0
        self._jtc_params = c.controller.jtc_params()
        self._task = c.resolve_task()
        self._instruction = c.instruction or (self._task.instruction if self._task else "")
        self._start_episode()

        self._image_publishers = [
            self.create_publisher(Image, topic, sensor_qos(c.qos.camera_reliability, c.qos.camera_depth))
            for topic in c.topics.camera_topics
        ]
        self._joint_state_publisher = self.create_publisher(
            JointState, c.topics.joint_states, sensor_qos("reliable", 10))
        self._instruction_publisher = self.create_publisher(String, c.topics.instruction, latched_qos())
        # Latched for transient-local subscribers, and published again whenever a subscriber joins
        # (checked every 0.2 s, steady clock), so volatile ones (the policy node's default) get it too.
        # Only then: an instruction someone else publishes (`ros2 topic pub`) is not overwritten.
        self._instruction_subscribers = 0
        self._instruction_timer = self.create_timer(
            0.2, lambda: self._publish_instruction(on_new_subscriber=True),
            clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._clock_publisher = self.create_publisher(ClockMsg, CLOCK_TOPIC, clock_qos()) if c.publish_clock else None
        self.create_subscription(JointTrajectoryMsg, c.topics.trajectory, self._on_trajectory, command_qos())

        self._schedules = [_Schedule(c.joint_state_rate_hz, self._dt, self._publish_joint_state),
                           _Schedule(c.camera_rate_hz, self._dt, self._publish_images)]
        if c.publish_clock:  # first, so that /clock is never behind a stamp
            self._schedules.insert(0, _Schedule(c.clock_rate_hz, self._dt, self._publish_clock))
        self._pacer = RealTimePacer(c.real_time_factor)
        fastest_hz = max(c.joint_state_rate_hz, c.camera_rate_hz, c.clock_rate_hz if c.publish_clock else 0.0)
        period = min(max(1.0 / (fastest_hz * c.real_time_factor), 0.005), 0.05)
        self._timer = self.create_timer(period, self._tick, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._publish_instruction()
        self.get_logger().info(
            f"cameras {list(c.cameras.names)} {c.cameras.image_width}x{c.cameras.image_height} {c.cameras.encoding} "
            f"at {c.camera_rate_hz:g} Hz, joint_states at {c.joint_state_rate_hz:g} Hz, real_time_factor "
            f"{c.real_time_factor:g}, /clock {'on' if c.publish_clock else 'off'}, seed {c.seed}, "
            f"task {_describe(self._task)}"
        )

    # ------------------------------------------------------------------ evaluator API
    @property
    def arm(self) -> ArmSim:
        """The simulation (read-only use; hold no reference across `close()`)."""
        return self._arm

    @property
    def sim_time(self) -> float:
        """Simulated seconds since start-up: the time on /clock and in every stamp."""
        return self._steps * self._dt

    @property
    def episode_time(self) -> float:
        """Simulated seconds since the current episode started."""
        return self._arm.time

    @property
    def episode(self) -> int:
        """Number of `reset_episode()` calls so far (0 for the episode set up at start-up)."""
        return self._episode

    @property
    def commands_received(self) -> int:
        return self._received

    @property
    def commands_rejected(self) -> int:
        """Trajectories refused (joint_trajectory_controller rules, logged with the reason)."""
        return self._rejected

    @property
    def controller_holds(self) -> int:
        """Holds the controller decided itself: tolerance violations, cmd_timeout (logged)."""
        return self._controller_holds

    @property
    def jtc_params(self):
        """The joint_trajectory_controller parameters the node follows (from `controller.*`)."""
        return self._jtc_params

    @property
    def task(self) -> Task | None:
        return self._task

    @property
    def instruction(self) -> str:
        return self._instruction

    @property
    def achieved_real_time_factor(self) -> float:
        return self._pacer.achieved(time.monotonic(), self.sim_time)

    def reset_episode(self, seed: int | None = None, task: Task | None = None) -> None:
        """New scene from `seed` (None: the `seed` parameter), arm at home holding still; `task`
        (None: keep the current one) sets the instruction, which is published again."""
        with self._lock:
            self._arm.reset(seed)
            self._episode_start_s = self.sim_time
            if task is not None:
                self._task, self._instruction = task, task.instruction
            self._start_episode()
            self._episode += 1
            self._publish_instruction()
        self.get_logger().info(f"episode {self._episode}: seed {self._arm.seed}, task {_describe(self._task)}")

    def task_success(self) -> bool:
        """Whether the current task is achieved now. Raises RuntimeError when there is no task."""
        with self._lock:
            return self._task_monitor().is_success(self._arm)

    def task_shortfall_m(self) -> float:
        """How far from success the current task is now, in metres (0.0 = success; see
        TaskMonitor.shortfall_m). Raises RuntimeError when there is no task."""
        with self._lock:
            return self._task_monitor().shortfall_m(self._arm)

    def _task_monitor(self) -> TaskMonitor:
        if self._monitor is None:
            raise RuntimeError("no task: set task.family, or an instruction matching a task template")
        return self._monitor

    def close(self) -> None:
        """Stop the simulation and free the renderer (also done by destroy_node())."""
        with self._lock:
            if not self._closed:
                self._closed = True
                # what a refused start did not get to create is not there to free
                if getattr(self, "_timer", None) is not None:
                    self._timer.cancel()
                if getattr(self, "_arm", None) is not None:
                    self._arm.close()

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()

    # ------------------------------------------------------------------ simulation
    def _start_episode(self) -> None:
        self._follower = TrajectoryFollower(JOINT_NAMES, self._arm.joint_targets(), self._jtc_params)
        self._monitor = self._task.start(self._arm) if self._task else None

    def _setpoint(self, episode_time: float):
        """The controller cycle at every physics step: command from the measured joint positions."""
        return self._follower.update(self._episode_start_s + episode_time, self._arm.joint_positions())

    def _advance_to(self, step: int) -> None:
        if step > self._steps:
            self._arm.step(step - self._steps, setpoint=self._setpoint)
            self._steps = step
            for when, text in self._follower.pop_events():
                self._controller_holds += 1
                self.get_logger().error(f"joint_trajectory_controller at {when:.3f} s: {text}")

    def _tick(self) -> None:
        with self._lock:
            lagged_before = self._pacer.lagged_s
            target = self._pacer.target(time.monotonic(), self.sim_time)
            target_step = min(int(target / self._dt + 1e-9), self._steps + int(MAX_TICK_SIM_S / self._dt))
            while True:
                due = min(s.due_step(self._steps) for s in self._schedules)
                if due > target_step:
                    self._advance_to(target_step)
                    break
                self._advance_to(due)
                for schedule in self._schedules:
                    if schedule.due_step(self._steps) == self._steps:
                        schedule.publish()
                        schedule.done()
            if self._pacer.lagged_s > lagged_before:
                self.get_logger().warning(
                    f"simulation slower than real_time_factor {self.config.real_time_factor:g}: achieved "
                    f"{self.achieved_real_time_factor:.2f}", throttle_duration_sec=10.0)

    # ------------------------------------------------------------------ publishing
    def _publish_clock(self) -> None:
        self._clock_publisher.publish(ClockMsg(clock=seconds_to_stamp(self.sim_time)))

    def _publish_joint_state(self) -> None:
        msg = JointState(header=make_header(self.sim_time), name=list(JOINT_NAMES))
        msg.position = self._arm.joint_positions().tolist()
        msg.velocity = self._arm.joint_velocities().tolist()
        self._joint_state_publisher.publish(msg)

    def _publish_images(self) -> None:
        stamp, cameras = seconds_to_stamp(self.sim_time), self.config.cameras
        for name, frame_id, publisher in zip(cameras.names, cameras.frame_ids, self._image_publishers):
            publisher.publish(rgb_to_image_msg(self._arm.render(name), stamp, frame_id, cameras.encoding))

    def _publish_instruction(self, on_new_subscriber: bool = False) -> None:
        """Publish the current instruction (if any); with `on_new_subscriber` only when more
        subscribers matched than at the last call (a repeat changes nothing in the policy node)."""
        count = self._instruction_publisher.get_subscription_count()
        joined, self._instruction_subscribers = count > self._instruction_subscribers, count
        if self._instruction and (joined or not on_new_subscriber):
            self._instruction_publisher.publish(String(data=self._instruction))

    # ------------------------------------------------------------------ commands
    def _on_trajectory(self, msg: JointTrajectoryMsg) -> None:
        with self._lock:
            self._received += 1
            try:
                self._follow(msg, self.sim_time)
            except TrajectoryError as e:
                self._rejected += 1
                self.get_logger().error(f"rejected trajectory ({self._rejected} so far): {e}")

    def _follow(self, msg: JointTrajectoryMsg, now: float) -> None:
        """joint_trajectory_controller's topic_callback + the next update(), at sim time `now`."""
        # Measured state at receipt; with controller.open_loop_control the follower starts from
        # its last command instead (interpolate_from_desired_state).
        trajectory = receive_trajectory(self._follower, msg, self._jtc_params, now,
                                        self._arm.joint_positions(), self._arm.joint_velocities())
        if trajectory.start_time - now > FAR_FUTURE_S:
            self.get_logger().warning(
                f"trajectory starts {trajectory.start_time - now:.1f} s after the simulated time {now:.3f} s: "
                "is the sender's clock the simulated time (/clock, use_sim_time)?", throttle_duration_sec=5.0)


def main(argv: list[str] | None = None) -> int:
    """`sim_node [--ros-args ...]`: run the simulator node until SIGINT/SIGTERM."""
    args = [sys.argv[0], *argv] if argv is not None else list(sys.argv)
    parser = argparse.ArgumentParser(
        prog="sim_node", description=__doc__.split("\n\n")[0],
        epilog="Parameters: --ros-args --params-file config/sim.yaml -p seed:=3 -p instruction:='reach the red cube' "
               "(see moe_vla_ros/ros/sim_node_config.py).")
    parser.parse_args(remove_ros_args(args)[1:])
    init_process(args)
    try:
        node = SimNode()
    except (SimNodeConfigError, InvalidParameterValueException) as e:
        from moe_vla_ros.cli import one_line

        print(f"sim_node: error: invalid parameters: {one_line(e)}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    spin_until_shutdown(node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
