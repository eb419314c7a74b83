"""ROS message <-> numpy conversions: thin wrappers over the pure modules in moe_vla_ros.control.

* Images: sensor_msgs/Image and CompressedImage to the model's RGB uint8 [H, W, 3] (our
  vectorised conversion with cv_bridge's semantics, see control/images.py), and RGB arrays to
  Image/CompressedImage for publishing. Where a ROS install provides cv_bridge, pass
  ``use_cv_bridge=True`` to convert with it instead; nothing here requires it.
* Time: builtin_interfaces/Time and Duration to and from float seconds.
* Joint states: sensor_msgs/JointState to the contract's joint order, by name.
* Trajectories: position + velocity chunks to trajectory_msgs/JointTrajectory for ros2_control's
  joint_trajectory_controller. ``header.stamp`` is the trajectory's start time and point i is
  due ``start_offset + (i+1) * dt`` after it; every point carries positions AND velocities, so
  the controller interpolates with cubic splines and velocity stays continuous.
  `joint_trajectory_verdict`: that controller's verdict on a message (control/jtc_rules.py);
  decoding: `joint_trajectory_to_arrays` (numpy), `joint_trajectory_to_follower` (the simulator's
  follower, as the mock controller and sim_node execute it).

Messages are plain Python objects: nothing here needs rclpy.init or a ROS graph.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration, Time
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Header
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from moe_vla_ros.control.chunking import PlannedTrajectory, is_hold_profile
from moe_vla_ros.control.images import (
    ImageConversionError,
    compressed_to_rgb,
    raw_to_rgb,
    resize_image,
    rgb_to_compressed,
    rgb_to_raw,
)
from moe_vla_ros.control.joint_state import JointStateMapper, JointVector
from moe_vla_ros.control.jtc_rules import JtcParams, JtcVerdict, check_trajectory
from moe_vla_ros.sim.trajectory_follower import JointTrajectory as FollowerTrajectory
from moe_vla_ros.sim.trajectory_follower import TrajectoryPoint

_NS_PER_S = 1_000_000_000

# -- time ------------------------------------------------------------------------------------


def _split_seconds(seconds: float, what: str) -> tuple[int, int]:
    value = float(seconds)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {seconds!r}")
    sec = math.floor(value)
    nanosec = round((value - sec) * _NS_PER_S)
    if nanosec >= _NS_PER_S:  # rounding carried into the next second
        sec, nanosec = sec + 1, nanosec - _NS_PER_S
    return int(sec), int(nanosec)


def stamp_to_seconds(stamp: Time) -> float:
    """builtin_interfaces/Time -> seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def seconds_to_stamp(seconds: float) -> Time:
    """Seconds -> builtin_interfaces/Time (nanosec in [0, 1e9), sec rounded down)."""
    sec, nanosec = _split_seconds(seconds, "stamp")
    return Time(sec=sec, nanosec=nanosec)


def seconds_to_duration(seconds: float) -> Duration:
    """Seconds -> builtin_interfaces/Duration (nanosec in [0, 1e9), sec rounded down)."""
    sec, nanosec = _split_seconds(seconds, "duration")
    return Duration(sec=sec, nanosec=nanosec)


def duration_to_seconds(duration: Duration) -> float:
    """builtin_interfaces/Duration -> seconds."""
    return duration.sec + duration.nanosec * 1e-9


def make_header(stamp: float | Time | None = None, frame_id: str = "") -> Header:
    """std_msgs/Header from seconds (or a Time); None gives the zero stamp."""
    if stamp is None:
        stamp = Time()
    elif not isinstance(stamp, Time):
        stamp = seconds_to_stamp(stamp)
    return Header(stamp=stamp, frame_id=frame_id)


# -- images ----------------------------------------------------------------------------------

_CV_BRIDGE: Any = None


def cv_bridge_available() -> bool:
    """True when a working cv_bridge can be imported (a ROS install, not the PyPI port)."""
    return _cv_bridge() is not None


def _cv_bridge() -> Any:
    global _CV_BRIDGE
    if _CV_BRIDGE is None:
        try:
            from cv_bridge import CvBridge  # optional: only on robots with a ROS install

            _CV_BRIDGE = CvBridge()
        except Exception:  # missing, or a broken build (e.g. compiled against numpy 1)
            _CV_BRIDGE = False
    return _CV_BRIDGE or None


def _bridge_or_raise() -> Any:
    bridge = _cv_bridge()
    if bridge is None:
        raise ImageConversionError("use_cv_bridge=True but cv_bridge cannot be imported here")
    return bridge


def _rgb_via_cv_bridge(method: str, msg: Image | CompressedImage, size: tuple[int, int] | None, failure: str) -> np.ndarray:
    """`msg` -> RGB uint8 [H, W, 3] through cv_bridge's `method` (imgmsg_to_cv2 or
    compressed_imgmsg_to_cv2), resized to `size`; ImageConversionError "cv_bridge <failure>: ..."."""
    try:
        rgb = getattr(_bridge_or_raise(), method)(msg, desired_encoding="rgb8")
    except ImageConversionError:
        raise
    except Exception as exc:
        raise ImageConversionError(f"cv_bridge {failure}: {exc}") from exc
    return np.array(resize_image(rgb, size), dtype=np.uint8, copy=True)


def image_msg_to_rgb(
    msg: Image, size: tuple[int, int] | None = None, *, use_cv_bridge: bool = False
) -> np.ndarray:
    """sensor_msgs/Image -> RGB uint8 [H, W, 3], resized to `size` = (height, width) if given.

    Raises:
        ImageConversionError: unsupported encoding, inconsistent step/size/data.
    """
    if use_cv_bridge:
        return _rgb_via_cv_bridge("imgmsg_to_cv2", msg, size, f"could not convert {msg.encoding!r}")
    return raw_to_rgb(
        msg.data,
        height=msg.height,
        width=msg.width,
        encoding=msg.encoding,
        step=msg.step,
        is_bigendian=bool(msg.is_bigendian),
        size=size,
    )


def compressed_msg_to_rgb(
    msg: CompressedImage, size: tuple[int, int] | None = None, *, use_cv_bridge: bool = False
) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg/png) -> RGB uint8 [H, W, 3], resized to `size` if given.

    Raises:
        ImageConversionError: empty or undecodable data, unsupported format.
    """
    if use_cv_bridge:
        return _rgb_via_cv_bridge("compressed_imgmsg_to_cv2", msg, size, f"could not decode {msg.format!r}")
    return compressed_to_rgb(msg.data, format=msg.format, size=size)


def rgb_to_image_msg(
    rgb: np.ndarray, stamp: float | Time | None = None, frame_id: str = "", encoding: str = "rgb8"
) -> Image:
    """RGB uint8 [H, W, 3] -> sensor_msgs/Image in `encoding` (rgb8, bgr8, rgba8, bgra8, mono8)."""
    raw = rgb_to_raw(rgb, encoding)
    msg = Image(
        header=make_header(stamp, frame_id),
        height=raw.height,
        width=raw.width,
        encoding=raw.encoding,
        is_bigendian=0,
        step=raw.step,
    )
    msg.data = raw.data
    return msg


def rgb_to_compressed_msg(
    rgb: np.ndarray,
    stamp: float | Time | None = None,
    frame_id: str = "",
    format: str = "jpeg",
    jpeg_quality: int = 90,
) -> CompressedImage:
    """RGB uint8 [H, W, 3] -> sensor_msgs/CompressedImage (jpeg or png)."""
    msg = CompressedImage(header=make_header(stamp, frame_id), format=format)
    msg.data = rgb_to_compressed(rgb, format, jpeg_quality)
    return msg


# -- joint states ----------------------------------------------------------------------------

_MAPPERS: dict[tuple[str, ...], JointStateMapper] = {}


def joint_state_msg_to_vector(
    msg: JointState, contract_order: JointStateMapper | Sequence[str]
) -> JointVector:
    """sensor_msgs/JointState -> positions (and velocities, if present) in the contract's order.

    Args:
        msg: the joint state; joints in any order, extra joints ignored.
        contract_order: a JointStateMapper, or the contract's joint names (a cached mapper is used).

    Raises:
        JointStateError: missing joints (listed), NaN/inf in a contract joint (named), lengths.
    """
    mapper = contract_order
    if not isinstance(mapper, JointStateMapper):
        key = tuple(contract_order)
        mapper = _MAPPERS.get(key)
        if mapper is None:
            mapper = _MAPPERS[key] = JointStateMapper(key)
    return mapper.map(msg.name, msg.position, msg.velocity)


# -- trajectories ----------------------------------------------------------------------------


def chunk_to_joint_trajectory(
    joint_names: Sequence[str],
    positions: np.ndarray,
    velocities: np.ndarray,
    dt: float,
    stamp: float | Time,
    start_offset_s: float = 0.0,
    frame_id: str = "",
) -> JointTrajectory:
    """Build a JointTrajectory for joint_trajectory_controller.

    Args:
        joint_names: J names, in the order of the columns.
        positions: [H, J] rad.
        velocities: [H, J] rad/s, consistent with `positions`.
        dt: seconds between points (> 0).
        stamp: trajectory start time (seconds or Time); 0 means "start on receipt".
        start_offset_s: time_from_start of point i is start_offset_s + (i+1)*dt (>= 0).

    Raises:
        ValueError: shapes disagree with the names, non-finite values, bad dt or offset.
    """
    names = [str(n) for n in joint_names]
    positions = np.asarray(positions, dtype=np.float64)
    velocities = np.asarray(velocities, dtype=np.float64)
    shape = (positions.shape[0] if positions.ndim == 2 else -1, len(names))
    if positions.ndim != 2 or positions.shape != shape or velocities.shape != shape or shape[0] < 1:
        raise ValueError(
            f"positions and velocities must both have shape [H >= 1, {len(names)}], "
            f"got {positions.shape} and {velocities.shape}"
        )
    if not (np.isfinite(positions).all() and np.isfinite(velocities).all()):
        raise ValueError("positions and velocities must be finite")
    if not (math.isfinite(dt) and dt > 0.0):
        raise ValueError(f"dt must be > 0, got {dt!r}")
    if not (math.isfinite(start_offset_s) and start_offset_s >= 0.0):
        raise ValueError(f"start_offset_s must be >= 0, got {start_offset_s!r}")
    msg = JointTrajectory(header=make_header(stamp, frame_id), joint_names=names)
    points = []
    for i in range(positions.shape[0]):
        point = JointTrajectoryPoint(time_from_start=seconds_to_duration(start_offset_s + (i + 1) * dt))
        point.positions = positions[i]
        point.velocities = velocities[i]
        points.append(point)
    msg.points = points
    return msg


def planned_trajectory_to_msg(joint_names: Sequence[str], trajectory: PlannedTrajectory) -> JointTrajectory:
    """JointTrajectory for what an ActionChunkExecutor plans to execute (absolute start stamp)."""
    return chunk_to_joint_trajectory(
        joint_names, trajectory.positions, trajectory.velocities, trajectory.dt, trajectory.start_time
    )


def joint_trajectory_to_arrays(msg: JointTrajectory) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """JointTrajectory -> (joint_names, time_from_start [H] s, positions [H, J], velocities [H, J]).

    Velocities are NaN for points that carry none.
    """
    names = list(msg.joint_names)
    times = np.array([duration_to_seconds(p.time_from_start) for p in msg.points], dtype=np.float64)
    positions = np.array([list(p.positions) for p in msg.points], dtype=np.float64).reshape(-1, len(names))
    velocities = np.full_like(positions, np.nan)
    for i, point in enumerate(msg.points):
        if len(point.velocities):
            velocities[i] = point.velocities
    return names, times, positions, velocities


def joint_trajectory_to_follower(msg: JointTrajectory) -> FollowerTrajectory:
    """JointTrajectory -> the simulator's follower trajectory (sim/trajectory_follower.py), fields as
    sent: points without velocities or accelerations get None (raises TrajectoryError on what the
    follower cannot represent: no points, missing or ragged positions, ...)."""
    points = []
    for p in msg.points:
        velocities = tuple(p.velocities) if len(p.velocities) else None
        accelerations = tuple(p.accelerations) if len(p.accelerations) else None
        points.append(TrajectoryPoint(tuple(p.positions), duration_to_seconds(p.time_from_start), velocities,
                                      accelerations))
    return FollowerTrajectory(tuple(msg.joint_names), tuple(points), stamp_to_seconds(msg.header.stamp))


def joint_trajectory_verdict(msg: JointTrajectory, params: JtcParams, now_s: float) -> JtcVerdict:
    """joint_trajectory_controller's verdict on `msg` received at `now_s` (its clock, seconds).

    Passes the fields as sent (rows may be empty or ragged, which the rules judge), unlike
    `joint_trajectory_to_arrays`, which needs well-formed points.
    """
    points = msg.points
    return check_trajectory(
        list(msg.joint_names), stamp_to_seconds(msg.header.stamp),
        [duration_to_seconds(p.time_from_start) for p in points],
        [list(p.positions) for p in points], [list(p.velocities) for p in points],
        [list(p.accelerations) for p in points], params, now_s, efforts=[list(p.effort) for p in points],
    )


def is_hold_trajectory(msg: JointTrajectory) -> bool:
    """Whether `msg` is a hold of the policy node (chunking.is_hold_profile), not a policy command."""
    return is_hold_profile(msg.points, len(msg.joint_names))
