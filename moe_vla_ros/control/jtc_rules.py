"""joint_trajectory_controller's acceptance rules, as a pure checker (no rclpy).

ros2_control's joint_trajectory_controller (JTC) silently ignores a trajectory it refuses: it
logs an error and keeps doing what it did. `check_trajectory` reproduces every refusal of the
topic interface (``~/joint_trajectory``), so that a test or the simulator stand-in
(sim/trajectory_follower.py) sees what a real robot would ignore.

Source read (ros-controls/ros2_controllers, package joint_trajectory_controller, through the code
index; the kilted branch could not be told apart there, so these are the newest 2025 revisions
of the 5.x line kilted is released from, and the names below are those of that line):

- ``src/joint_trajectory_controller.cpp``: ``validate_trajectory_msg``,
  ``validate_trajectory_point_field``, ``topic_callback``, ``add_new_trajectory_msg``,
  ``update``, ``fill_partial_goal``, ``sort_to_local_joint_order``, ``set_hold_position``,
  ``on_activate`` (the revision with ``interpolate_from_desired_state`` and the deprecated
  ``open_loop_control``; ros2_controllers#1598 removed ``open_loop_control`` before the kilted
  release, so kilted has only ``interpolate_from_desired_state``).
- ``src/trajectory.cpp``: ``Trajectory::update``, ``set_point_before_trajectory_msg``,
  ``sample``, ``interpolate_between_points`` (used by the follower, see there).
- ``src/joint_trajectory_controller_parameters.yaml`` (defaults, validation) and
  ``src/validate_jtc_parameters.cpp`` (interface combinations).

Rules of ``validate_trajectory_msg``, in its order (the first failing one is reported, with
JTC's log text as `JtcVerdict.reason`; `JtcVerdict.rule` names it):

1. ``partial_joints``: unless ``allow_partial_joints_goal``, the NUMBER of joint names must
   equal the number of controller joints ("Joints on incoming trajectory don't match the
   controller joints.").
2. ``empty_joint_names``: no joint names ("Empty joint names on incoming trajectory.").
3. ``empty_trajectory``: no points ("Empty trajectory received."). An empty trajectory is NOT a
   hold for JTC: it is ignored and the running trajectory goes on.
4. ``unknown_joint``: every name must be a controller joint ("Incoming joint %s doesn't match
   the controller's joints.").
5. ``nonzero_end_velocity``: unless ``allow_nonzero_velocity_at_trajectory_end`` (default false
   since jazzy), every velocity of the LAST point must satisfy |v| <= FLT_EPSILON
   (1.19e-7) ("Velocity of last trajectory point of joint %s is not zero: %.15f"). A last point
   without velocities passes.
6. ``ends_in_the_past``: when header.stamp is not 0, stamp + last time_from_start must not be
   before the controller's now ("Received trajectory with non-zero start time (%f) that ends
   in the past (%f)"); a stamp of 0 means "start now" and is never in the past, a stamp in the
   future is accepted.
7. Per point, in order: ``time_not_increasing``: time_from_start strictly increasing from the
   second point on ("Time between points %zu and %zu is not strictly increasing, it is %f and
   %f respectively"); the first point's time is not checked.
8. ``size_mismatch``: positions must have one value per joint name, velocities and
   accelerations none or one per name ("Mismatch between joint_names size (%zu) and %s (%zu)
   at point #%zu."). With ``allow_integration_in_goal_trajectories`` positions may be empty
   too, but not all three fields (``no_position_velocity_acceleration``: "The given trajectory
   has no position, velocity, or acceleration points.").
9. ``effort_without_effort_interface``: effort values need an ``effort`` command interface
   ("Trajectories with effort fields are only supported for controllers using the 'effort'
   command interface.").

``topic_callback`` adds an accepted message only while the controller is active (an inactive
controller drops it silently). JTC checks nothing else. `JtcVerdict.warnings` lists what it
accepts but executes badly (the simulator refuses these, it cannot execute them):
duplicate joint names (``sort_to_local_joint_order`` writes two columns into one joint and
leaves another with a stale value), non-finite values (nothing checks them; NaN reaches the
command interfaces), and with ``interpolation_method: splines`` a point with accelerations but
no velocities (``interpolate_between_points`` has no branch for it and commands 0 for every
joint).

How an accepted trajectory is executed (trajectory.cpp, modelled in sim/trajectory_follower.py):
it replaces the running one at the next control cycle, whatever its start stamp (ROS 1's
"replace from the start time on" is not implemented); the first segment goes from the state at
receipt (measured, or the last command with ``interpolate_from_desired_state``) to the first
point at stamp + time_from_start[0] (stamp 0: the receipt time); when that time is already
past at receipt, the setpoint jumps into the segment that contains now.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from moe_vla_ros.errors import BadInputError
from moe_vla_ros.param_files import flatten_parameters
from moe_vla_ros.validation import require_bool, require_choice, require_distinct, require_non_negative, require_number

FLT_EPSILON = 1.1920928955078125e-07  # std::numeric_limits<float>::epsilon(), rule 5
_NS = 1_000_000_000

COMMAND_INTERFACES = ("position", "velocity", "acceleration", "effort")
STATE_INTERFACES = ("position", "velocity", "acceleration")
INTERPOLATION_METHODS = ("splines", "none")

# Parameter names of joint_trajectory_controller_parameters.yaml (the newest 2025 revision read;
# "<joint>" stands for each name in `joints`). `open_loop_control` and `state_publish_rate` are
# not parameters any more (ros2_controllers#1598 and earlier). `speed_scaling.*` and
# `constraints.decelerate_on_cancel` / `max_deceleration_on_cancel` are the newest additions.
JTC_PARAMETER_NAMES = frozenset({
    "joints",
    "command_joints",
    "command_interfaces",
    "state_interfaces",
    "speed_scaling.initial_scaling_factor",
    "speed_scaling.state_interface",
    "speed_scaling.command_interface",
    "allow_partial_joints_goal",
    "interpolate_from_desired_state",
    "allow_integration_in_goal_trajectories",
    "set_last_command_interface_value_as_state_on_activation",
    "action_monitor_rate",
    "interpolation_method",
    "allow_nonzero_velocity_at_trajectory_end",
    "cmd_timeout",
    "gains.<joint>.p",
    "gains.<joint>.i",
    "gains.<joint>.d",
    "gains.<joint>.ff_velocity_scale",
    "gains.<joint>.u_clamp_max",
    "gains.<joint>.u_clamp_min",
    "gains.<joint>.i_clamp_max",
    "gains.<joint>.i_clamp_min",
    "gains.<joint>.antiwindup_strategy",
    "gains.<joint>.tracking_time_constant",
    "gains.<joint>.error_deadband",
    "constraints.stopped_velocity_tolerance",
    "constraints.goal_time",
    "constraints.decelerate_on_cancel",
    "constraints.<joint>.trajectory",
    "constraints.<joint>.goal",
    "constraints.<joint>.max_deceleration_on_cancel",
})


class JtcParamsError(BadInputError):
    """A joint_trajectory_controller parameter has a value the controller refuses (or we do)."""


def _to_ns(seconds: float) -> int:
    """rclcpp::Time / Duration keep integer nanoseconds: compare as they do."""
    return int(round(float(seconds) * _NS))


def _tolerances(name: str, values: Sequence[float], joints: tuple[str, ...]) -> tuple[float, ...]:
    out = tuple(float(v) for v in values) if len(values) else (0.0,) * len(joints)
    if len(out) != len(joints) or not all(math.isfinite(v) and v >= 0.0 for v in out):
        raise JtcParamsError(f"{name} must be {len(joints)} finite values >= 0 (one per joint), got {list(values)}")
    return out


@dataclass(frozen=True)
class JtcParams:
    """The joint_trajectory_controller parameters that decide acceptance and execution.

    Defaults are the upstream defaults (joint_trajectory_controller_parameters.yaml), except
    the three lists, which have no usable upstream default (an empty list is refused): they
    default to what this project's robots use.

    Attributes:
        joints: ``joints``, the controller's joints (non-empty, unique).
        command_interfaces: ``command_interfaces``: a valid combination of position, velocity,
            acceleration, effort (validate_jtc_parameters.cpp).
        state_interfaces: ``state_interfaces``: position [velocity [acceleration]].
        allow_partial_joints_goal: accept trajectories naming a subset of `joints` (rule 1); the
            missing joints keep their last command (``fill_partial_goal``).
        allow_nonzero_velocity_at_trajectory_end: accept a last point that still moves (rule 5).
        allow_integration_in_goal_trajectories: accept points without positions (rule 8).
        interpolate_from_desired_state: start each new trajectory from the last command instead
            of the measured state (successor of the removed ``open_loop_control``).
        interpolation_method: ``splines`` (linear / cubic / quintic by the fields present) or
            ``none`` (the next waypoint is commanded as is).
        cmd_timeout: s after the end of a trajectory until JTC holds position; 0 = off. Only
            used when greater than `goal_time` (``on_activate``), see `effective_cmd_timeout`.
        stopped_velocity_tolerance: ``constraints.stopped_velocity_tolerance`` (rad/s), the
            velocity part of the goal tolerance. ``compute_error_for_joint`` computes velocity
            errors only with a velocity or effort command interface, so it has no effect with
            ``command_interfaces: [position]``.
        goal_time: ``constraints.goal_time`` (s, >= 0): how long after the end the goal
            tolerance may still be violated before JTC holds position; 0 = wait forever.
        trajectory_tolerances: ``constraints.<joint>.trajectory`` per joint of `joints` (rad or
            m; 0 = not checked): the largest |desired - measured| position error while moving
            (and at the first sample); beyond it JTC holds position ("Holding position due to
            state tolerance violation"). Empty = all 0.
        goal_tolerances: ``constraints.<joint>.goal`` per joint (0 = not checked): the position
            error allowed after the end (see `goal_time`). Empty = all 0.
    """

    joints: tuple[str, ...]
    command_interfaces: tuple[str, ...] = ("position",)
    state_interfaces: tuple[str, ...] = ("position", "velocity")
    allow_partial_joints_goal: bool = False
    allow_nonzero_velocity_at_trajectory_end: bool = False
    allow_integration_in_goal_trajectories: bool = False
    interpolate_from_desired_state: bool = False
    interpolation_method: str = "splines"
    cmd_timeout: float = 0.0
    stopped_velocity_tolerance: float = 0.01
    goal_time: float = 0.0
    trajectory_tolerances: tuple[float, ...] = ()
    goal_tolerances: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        joints = tuple(str(j) for j in require_distinct("joints", self.joints, error=JtcParamsError))
        object.__setattr__(self, "joints", joints)
        cmd = require_distinct("command_interfaces", self.command_interfaces, COMMAND_INTERFACES, error=JtcParamsError)
        if "velocity" in cmd and len(cmd) > 1 and "position" not in cmd:
            raise JtcParamsError(f"command_interfaces {list(cmd)}: 'velocity' is used alone or with 'position'")
        if "acceleration" in cmd and "velocity" not in cmd and "position" not in cmd:
            raise JtcParamsError(f"command_interfaces {list(cmd)}: 'acceleration' needs 'velocity' and 'position'")
        if "effort" in cmd and not (len(cmd) == 1 or (len(cmd) == 2 and "position" in cmd)):
            raise JtcParamsError(f"command_interfaces {list(cmd)}: 'effort' is used alone or with 'position'")
        object.__setattr__(self, "command_interfaces", cmd)
        state = require_distinct("state_interfaces", self.state_interfaces, STATE_INTERFACES, error=JtcParamsError)
        if "position" not in state or ("acceleration" in state and "velocity" not in state):
            raise JtcParamsError(f"state_interfaces {list(state)}: position [velocity [acceleration]] expected")
        object.__setattr__(self, "state_interfaces", state)
        require_choice("interpolation_method", self.interpolation_method, INTERPOLATION_METHODS, error=JtcParamsError)
        for name in ("cmd_timeout", "stopped_velocity_tolerance"):
            object.__setattr__(self, name, require_number(name, getattr(self, name), error=JtcParamsError))
        object.__setattr__(self, "goal_time", require_non_negative("constraints.goal_time", self.goal_time,
                                                                   error=JtcParamsError))
        for name in ("allow_partial_joints_goal", "allow_nonzero_velocity_at_trajectory_end",
                     "allow_integration_in_goal_trajectories", "interpolate_from_desired_state"):
            require_bool(name, getattr(self, name), error=JtcParamsError)
        object.__setattr__(self, "trajectory_tolerances",
                           _tolerances("trajectory_tolerances", self.trajectory_tolerances, joints))
        object.__setattr__(self, "goal_tolerances", _tolerances("goal_tolerances", self.goal_tolerances, joints))

    @property
    def has_effort_command_interface(self) -> bool:
        return "effort" in self.command_interfaces

    @property
    def effective_cmd_timeout(self) -> float:
        """``on_activate``: a cmd_timeout not above constraints.goal_time is ignored (0)."""
        return self.cmd_timeout if self.cmd_timeout > 0.0 and self.cmd_timeout > self.goal_time else 0.0

    @classmethod
    def from_ros_parameters(cls, parameters: Mapping[str, Any]) -> JtcParams:
        """From a controller's ``ros__parameters`` block (nested as in YAML, or dotted names).

        Raises JtcParamsError naming any key that is not a joint_trajectory_controller
        parameter (`JTC_PARAMETER_NAMES`) and any value the controller would refuse.
        """
        flat = flatten_parameters(parameters)
        if "joints" not in flat:
            raise JtcParamsError("joints is required (the controller refuses an empty list)")
        joints = tuple(flat["joints"])
        unknown = unknown_parameter_names(flat, joints)
        if unknown:
            raise JtcParamsError(f"not joint_trajectory_controller parameters: {unknown}")
        kwargs: dict[str, Any] = {"joints": joints}
        for name in ("command_interfaces", "state_interfaces"):
            if name in flat:
                kwargs[name] = tuple(flat[name])
        for name in ("allow_partial_joints_goal", "allow_nonzero_velocity_at_trajectory_end",
                     "allow_integration_in_goal_trajectories", "interpolate_from_desired_state",
                     "interpolation_method", "cmd_timeout"):
            if name in flat:
                kwargs[name] = flat[name]
        for name in ("stopped_velocity_tolerance", "goal_time"):
            if f"constraints.{name}" in flat:
                kwargs[name] = flat[f"constraints.{name}"]
        kwargs["trajectory_tolerances"] = tuple(flat.get(f"constraints.{j}.trajectory", 0.0) for j in joints)
        kwargs["goal_tolerances"] = tuple(flat.get(f"constraints.{j}.goal", 0.0) for j in joints)
        return cls(**kwargs)


def unknown_parameter_names(flat: Mapping[str, Any], joints: Sequence[str]) -> list[str]:
    """Dotted names in `flat` that are not joint_trajectory_controller parameters for `joints`."""
    known = set()
    for name in JTC_PARAMETER_NAMES:
        if "<joint>" in name:
            known.update(name.replace("<joint>", str(j)) for j in joints)
        else:
            known.add(name)
    return sorted(set(flat) - known)


@dataclass(frozen=True)
class JtcVerdict:
    """What joint_trajectory_controller does with a trajectory.

    Attributes:
        accepted: whether ``validate_trajectory_msg`` passes (the trajectory replaces the
            running one); False: JTC logs `reason` and ignores the message.
        reason: JTC's error text for the first failing rule ("" when accepted).
        rule: short name of that rule (see the module docstring; "" when accepted).
        warnings: what JTC accepts but executes badly (module docstring); empty normally.
    """

    accepted: bool
    reason: str = ""
    rule: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def conforming(self) -> bool:
        """Accepted and free of warnings: a real controller executes it as intended."""
        return self.accepted and not self.warnings


def _refuse(rule: str, reason: str) -> JtcVerdict:
    return JtcVerdict(False, reason, rule)


def _rows(name: str, values: Any, n: int) -> list[list[float]]:
    """Per-point value lists (each possibly empty); None = every point empty."""
    if values is None:
        return [[] for _ in range(n)]
    rows = [[float(v) for v in row] for row in values]
    if len(rows) != n:
        raise ValueError(f"{name} has {len(rows)} rows for {n} points")
    return rows


def check_trajectory(
    joint_names: Sequence[str],
    stamp_s: float,
    times_from_start_s: Sequence[float],
    positions: Sequence[Sequence[float]] | None,
    velocities: Sequence[Sequence[float]] | None,
    accelerations: Sequence[Sequence[float]] | None,
    params: JtcParams,
    now_s: float,
    efforts: Sequence[Sequence[float]] | None = None,
) -> JtcVerdict:
    """joint_trajectory_controller's verdict on a trajectory received at `now_s`.

    Args:
        joint_names: the message's joint_names (any order, any count).
        stamp_s: header.stamp in seconds on the controller's clock; 0 = start on receipt.
        times_from_start_s: [N] time_from_start of each point, s.
        positions, velocities, accelerations, efforts: N rows, one per point, each with the
            point's values (possibly none); None = no values in any point. Ragged rows are
            allowed: a row whose length differs from len(joint_names) is what rule 8 refuses.
        params: the controller's parameters.
        now_s: the controller's clock at receipt, s.

    Returns:
        JtcVerdict; the rules are applied in ``validate_trajectory_msg``'s order.

    Raises:
        ValueError: non-finite times, or a value list with a row count other than N.
    """
    names = [str(n) for n in joint_names]
    n_points = len(times_from_start_s)
    if not all(math.isfinite(float(t)) for t in (stamp_s, now_s, *times_from_start_s)):
        raise ValueError("stamp_s, now_s and times_from_start_s must be finite (message times are integers)")
    pos = _rows("positions", positions, n_points)
    vel = _rows("velocities", velocities, n_points)
    acc = _rows("accelerations", accelerations, n_points)
    eff = _rows("efforts", efforts, n_points)
    dof = len(params.joints)

    # 1.-4.
    if not params.allow_partial_joints_goal and len(names) != dof:
        return _refuse("partial_joints", "Joints on incoming trajectory don't match the controller joints.")
    if not names:
        return _refuse("empty_joint_names", "Empty joint names on incoming trajectory.")
    if n_points == 0:
        return _refuse("empty_trajectory", "Empty trajectory received.")
    for name in names:
        if name not in params.joints:
            return _refuse("unknown_joint", f"Incoming joint {name} doesn't match the controller's joints.")
    # 5. The loop runs over the last point's velocities and names the joint by index.
    if not params.allow_nonzero_velocity_at_trajectory_end:
        for i, v in enumerate(vel[-1]):
            if abs(v) > FLT_EPSILON:
                joint = names[i] if i < len(names) else f"#{i} (joint_names.at() throws upstream)"
                return _refuse("nonzero_end_velocity",
                               f"Velocity of last trajectory point of joint {joint} is not zero: {v:.15f}")
    # 6.
    stamp_ns = _to_ns(stamp_s)
    if stamp_ns != 0:
        end_ns = stamp_ns + _to_ns(times_from_start_s[-1])
        if end_ns < _to_ns(now_s):
            return _refuse("ends_in_the_past",
                           f"Received trajectory with non-zero start time ({stamp_ns / _NS:f}) that ends in the "
                           f"past ({end_ns / _NS:f})")
    # 7.-9., point by point.
    joint_count = len(names)
    for i in range(n_points):
        if i > 0 and _to_ns(times_from_start_s[i]) <= _to_ns(times_from_start_s[i - 1]):
            return _refuse("time_not_increasing",
                           f"Time between points {i - 1} and {i} is not strictly increasing, it is "
                           f"{times_from_start_s[i - 1]:f} and {times_from_start_s[i]:f} respectively")
        fields = (("positions", pos[i]), ("velocities", vel[i]), ("accelerations", acc[i]))
        if params.allow_integration_in_goal_trajectories:
            if not (pos[i] or vel[i] or acc[i]):
                return _refuse("no_position_velocity_acceleration",
                               "The given trajectory has no position, velocity, or acceleration points.")
            required = ()
        else:
            required = ("positions",)
        for field, values in fields:
            if (values or field in required) and len(values) != joint_count:
                return _refuse("size_mismatch",
                               f"Mismatch between joint_names size ({joint_count}) and {field} ({len(values)}) at "
                               f"point #{i}.")
        if not params.has_effort_command_interface and eff[i]:
            return _refuse("effort_without_effort_interface",
                           "Trajectories with effort fields are only supported for controllers using the 'effort' "
                           "command interface.")
    return JtcVerdict(True, warnings=_warnings(names, times_from_start_s, pos, vel, acc, params))


def _warnings(names, times, pos, vel, acc, params: JtcParams) -> tuple[str, ...]:
    out = []
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        out.append(f"duplicate joint names {dupes}: sort_to_local_joint_order leaves a joint with a stale command")
    values = [v for rows in (pos, vel, acc) for row in rows for v in row]
    if not all(math.isfinite(v) for v in values):
        out.append("non-finite values: joint_trajectory_controller does not check them and commands them")
    if params.interpolation_method == "splines":
        bad = [i for i in range(len(times)) if acc[i] and not vel[i]]
        if bad:
            out.append(f"points {bad} have accelerations but no velocities: interpolate_between_points has no "
                       "spline for that and commands 0")
    return tuple(out)
