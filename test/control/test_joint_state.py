"""Tests of moe_vla_ros/control/joint_state.py: mapping joint states by name."""

import math

import numpy as np
import pytest

from moe_vla_ros.control.joint_state import JointStateError, JointStateMapper

CONTRACT = ("shoulder", "elbow", "wrist")


def test_reordered_and_extra_joints_map_by_name():
    mapper = JointStateMapper(CONTRACT)
    names = ["gripper", "wrist", "shoulder", "wheel", "elbow"]
    out = mapper.map(names, [9.0, 3.0, 1.0, 8.0, 2.0], [-9.0, -3.0, -1.0, -8.0, -2.0])
    np.testing.assert_array_equal(out.positions, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(out.velocities, [-1.0, -2.0, -3.0])
    assert out.positions.dtype == np.float64


def test_missing_velocities_give_none():
    out = JointStateMapper(CONTRACT).map(list(CONTRACT), [1.0, 2.0, 3.0], [])
    assert out.velocities is None
    assert JointStateMapper(CONTRACT).map(list(CONTRACT), [1.0, 2.0, 3.0]).velocities is None


def test_missing_joints_are_all_listed():
    with pytest.raises(JointStateError, match=r"missing joints \['shoulder', 'wrist'\]"):
        JointStateMapper(CONTRACT).map(["elbow", "gripper"], [0.0, 0.0])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_position_names_the_joint(bad):
    with pytest.raises(JointStateError, match=r"position not finite for elbow="):
        JointStateMapper(CONTRACT).map(["wrist", "elbow", "shoulder"], [0.0, bad, 0.0])


def test_non_finite_velocity_names_the_joint():
    with pytest.raises(JointStateError, match=r"velocity not finite for wrist=nan"):
        JointStateMapper(CONTRACT).map(list(CONTRACT), [0.0, 0.0, 0.0], [0.0, 0.0, math.nan])


def test_nan_in_an_ignored_joint_is_fine():
    out = JointStateMapper(CONTRACT).map([*CONTRACT, "gripper"], [1.0, 2.0, 3.0, math.nan])
    np.testing.assert_array_equal(out.positions, [1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    "names, positions, velocities, message",
    [
        (["shoulder", "elbow", "wrist"], [1.0, 2.0], None, r"3 names but position has shape \(2,\)"),
        (["shoulder", "elbow", "wrist"], [1.0, 2.0, 3.0], [1.0], r"velocity has shape \(1,\)"),
        (["shoulder", "elbow", "wrist", "elbow"], [0.0] * 4, None, r"more than once: \['elbow'\]"),
    ],
)
def test_inconsistent_states_are_rejected(names, positions, velocities, message):
    with pytest.raises(JointStateError, match=message):
        JointStateMapper(CONTRACT).map(names, positions, velocities)


def test_index_mapping_is_cached_per_name_list():
    mapper = JointStateMapper(CONTRACT, cache_size=2)
    a = ["wrist", "elbow", "shoulder"]
    first = mapper.indices(a)
    assert mapper.indices(list(a)) is first  # same names, new list object: cache hit
    np.testing.assert_array_equal(first, [2, 1, 0])
    b, c = ["elbow", "shoulder", "wrist"], ["shoulder", "elbow", "wrist"]
    mapper.indices(b)
    mapper.indices(c)  # evicts the least recently used (a)
    assert mapper.indices(a) is not first
    np.testing.assert_array_equal(mapper.indices(a), first)


def test_bad_contract_names_are_rejected():
    with pytest.raises(JointStateError, match="duplicates"):
        JointStateMapper(["a", "a"])
    with pytest.raises(JointStateError, match="must not be empty"):
        JointStateMapper([])
