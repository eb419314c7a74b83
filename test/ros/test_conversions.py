"""Tests of moe_vla_ros/ros/conversions.py: ROS messages <-> numpy, no ROS graph needed."""

import math

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Duration, Time
from sensor_msgs.msg import CompressedImage, Image, JointState
from trajectory_msgs.msg import JointTrajectory

from moe_vla_ros.control.chunking import PlannedTrajectory
from moe_vla_ros.control.images import ImageConversionError
from moe_vla_ros.control.joint_state import JointStateError, JointStateMapper
from moe_vla_ros.ros.conversions import (
    chunk_to_joint_trajectory,
    compressed_msg_to_rgb,
    cv_bridge_available,
    duration_to_seconds,
    image_msg_to_rgb,
    joint_state_msg_to_vector,
    joint_trajectory_to_arrays,
    make_header,
    planned_trajectory_to_msg,
    rgb_to_compressed_msg,
    rgb_to_image_msg,
    seconds_to_duration,
    seconds_to_stamp,
    stamp_to_seconds,
)


@pytest.fixture
def rgb():
    return np.random.default_rng(0).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)


# -- time ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds, sec, nanosec",
    [
        (0.0, 0, 0),
        (1.5, 1, 500_000_000),
        (12.000000001, 12, 1),
        (2.9999999999, 3, 0),  # rounds up into the next second
        (-0.25, -1, 750_000_000),
    ],
)
def test_seconds_to_stamp_and_duration(seconds, sec, nanosec):
    for convert, kind in ((seconds_to_stamp, Time), (seconds_to_duration, Duration)):
        msg = convert(seconds)
        assert isinstance(msg, kind) and (msg.sec, msg.nanosec) == (sec, nanosec)
    assert stamp_to_seconds(seconds_to_stamp(seconds)) == pytest.approx(seconds, abs=1e-9)
    assert duration_to_seconds(seconds_to_duration(seconds)) == pytest.approx(seconds, abs=1e-9)


def test_epoch_stamps_keep_microsecond_precision():
    t = 1_767_225_600.123456
    assert stamp_to_seconds(seconds_to_stamp(t)) == pytest.approx(t, abs=1e-6)


def test_non_finite_time_is_refused():
    with pytest.raises(ValueError, match="stamp must be finite"):
        seconds_to_stamp(math.nan)


def test_make_header():
    header = make_header(3.25, "wrist_camera")
    assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (3, 250_000_000, "wrist_camera")
    assert make_header(Time(sec=7)).stamp.sec == 7 and make_header().stamp.sec == 0


# -- images ----------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_image_message_round_trip(rgb, encoding):
    msg = rgb_to_image_msg(rgb, stamp=1.25, frame_id="cam", encoding=encoding)
    assert (msg.height, msg.width, msg.encoding, msg.is_bigendian) == (48, 64, encoding, 0)
    assert msg.step == 64 * len(encoding.rstrip("8")) and len(msg.data) == msg.step * msg.height
    assert stamp_to_seconds(msg.header.stamp) == 1.25 and msg.header.frame_id == "cam"
    np.testing.assert_array_equal(image_msg_to_rgb(msg), rgb)


def test_image_message_with_padding_big_endian_mono16_and_resize():
    values = np.random.default_rng(3).integers(0, 65536, size=(30, 40), dtype=np.uint16)
    big_endian_rows = values.astype(">u2").view(np.uint8).reshape(30, 80)
    rows = np.concatenate([big_endian_rows, np.zeros((30, 8), np.uint8)], axis=1)  # 8 padding bytes
    msg = Image(height=30, width=40, encoding="mono16", is_bigendian=1, step=88)
    msg.data = rows.tobytes()
    expected = cv2.cvtColor(np.round(values / 257.0).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    np.testing.assert_array_equal(image_msg_to_rgb(msg), expected)
    small = image_msg_to_rgb(msg, size=(15, 20))
    np.testing.assert_array_equal(small, cv2.resize(expected, (20, 15), interpolation=cv2.INTER_AREA))


def test_bad_image_message_raises(rgb):
    msg = rgb_to_image_msg(rgb)
    msg.encoding = "bayer_rggb8"
    with pytest.raises(ImageConversionError, match="unsupported image encoding 'bayer_rggb8'"):
        image_msg_to_rgb(msg)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_message_round_trip(rgb, fmt):
    smooth = cv2.GaussianBlur(rgb, (9, 9), 4)
    msg = rgb_to_compressed_msg(smooth, stamp=2.0, frame_id="cam", format=fmt)
    assert isinstance(msg, CompressedImage) and msg.format == fmt and len(msg.data) > 0
    out = compressed_msg_to_rgb(msg, size=(24, 32))
    assert out.shape == (24, 32, 3)
    full = compressed_msg_to_rgb(msg)
    if fmt == "png":
        np.testing.assert_array_equal(full, smooth)
    else:
        assert np.abs(full.astype(int) - smooth.astype(int)).mean() < 3.0


def test_undecodable_compressed_message_raises():
    msg = CompressedImage(format="jpeg")
    msg.data = b"garbage bytes"
    with pytest.raises(ImageConversionError, match="could not decode 13 bytes"):
        compressed_msg_to_rgb(msg)


def test_cv_bridge_path_is_optional(rgb):
    msg = rgb_to_image_msg(rgb)
    if cv_bridge_available():  # a ROS install: both paths must agree
        np.testing.assert_array_equal(image_msg_to_rgb(msg, use_cv_bridge=True), image_msg_to_rgb(msg))
    else:
        with pytest.raises(ImageConversionError, match="cv_bridge cannot be imported"):
            image_msg_to_rgb(msg, use_cv_bridge=True)


# -- joint states ----------------------------------------------------------------------------


def test_joint_state_message_by_name():
    msg = JointState(
        name=["gripper", "elbow", "shoulder"], position=[0.9, 2.0, 1.0], velocity=[0.0, -2.0, -1.0]
    )
    out = joint_state_msg_to_vector(msg, ["shoulder", "elbow"])
    np.testing.assert_array_equal(out.positions, [1.0, 2.0])
    np.testing.assert_array_equal(out.velocities, [-1.0, -2.0])
    mapper = JointStateMapper(["elbow"])
    assert joint_state_msg_to_vector(msg, mapper).positions.tolist() == [2.0]
    assert joint_state_msg_to_vector(JointState(name=["elbow"], position=[0.5]), mapper).velocities is None


def test_joint_state_message_errors():
    with pytest.raises(JointStateError, match=r"missing joints \['wrist'\]"):
        joint_state_msg_to_vector(JointState(name=["elbow"], position=[0.0]), ["elbow", "wrist"])
    with pytest.raises(JointStateError, match="position not finite for elbow=nan"):
        joint_state_msg_to_vector(JointState(name=["elbow"], position=[math.nan]), ["elbow"])


# -- trajectories ----------------------------------------------------------------------------


def test_chunk_to_joint_trajectory_fields():
    positions = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    velocities = np.array([[1.0, 2.0], [2.0, 2.0], [2.0, 2.0]])
    msg = chunk_to_joint_trajectory(
        ["a", "b"], positions, velocities, dt=0.1, stamp=100.5, start_offset_s=0.02
    )
    assert isinstance(msg, JointTrajectory)
    assert list(msg.joint_names) == ["a", "b"]
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (100, 500_000_000)
    assert [(p.time_from_start.sec, p.time_from_start.nanosec) for p in msg.points] == [
        (0, 120_000_000),
        (0, 220_000_000),
        (0, 320_000_000),
    ]
    for point, p, v in zip(msg.points, positions, velocities):
        assert list(point.positions) == pytest.approx(p.tolist())
        assert list(point.velocities) == pytest.approx(v.tolist())
        assert len(point.accelerations) == 0 and len(point.effort) == 0
    names, times, back_p, back_v = joint_trajectory_to_arrays(msg)
    assert names == ["a", "b"]
    np.testing.assert_allclose(times, [0.12, 0.22, 0.32])
    np.testing.assert_allclose(back_p, positions)
    np.testing.assert_allclose(back_v, velocities)


def test_zero_stamp_means_start_on_receipt():
    msg = chunk_to_joint_trajectory(["a"], np.zeros((2, 1)), np.zeros((2, 1)), dt=0.05, stamp=Time())
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (0, 0)
    assert duration_to_seconds(msg.points[1].time_from_start) == pytest.approx(0.1)


def test_planned_trajectory_to_msg():
    plan = PlannedTrajectory(7.0, 0.1, np.ones((4, 2)), np.zeros((4, 2)), chunk_id=3)
    msg = planned_trajectory_to_msg(["a", "b"], plan)
    assert stamp_to_seconds(msg.header.stamp) == pytest.approx(7.0)
    assert len(msg.points) == 4
    assert duration_to_seconds(msg.points[-1].time_from_start) == pytest.approx(0.4)
    np.testing.assert_allclose(plan.times, [7.1, 7.2, 7.3, 7.4])


@pytest.mark.parametrize(
    "positions, velocities, kwargs, message",
    [
        (np.zeros((3, 2)), np.zeros((3, 3)), {}, r"shape \[H >= 1, 2\]"),
        (np.zeros((0, 2)), np.zeros((0, 2)), {}, r"shape \[H >= 1, 2\]"),
        (np.full((3, 2), np.nan), np.zeros((3, 2)), {}, "must be finite"),
        (np.zeros((3, 2)), np.zeros((3, 2)), {"dt": 0.0}, "dt must be > 0"),
        (np.zeros((3, 2)), np.zeros((3, 2)), {"start_offset_s": -1.0}, "start_offset_s must be >= 0"),
    ],
)
def test_bad_trajectories_are_refused(positions, velocities, kwargs, message):
    args = {"dt": 0.1, "stamp": 0.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        chunk_to_joint_trajectory(["a", "b"], positions, velocities, **args)
