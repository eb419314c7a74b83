"""Reading a policy node's recorded outputs back as run records (evaluation/bag/records.py)."""

import math

import numpy as np
import pytest

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.typestore import get_typestore
from moe_vla_ros.bags.writer import BagWriter
from moe_vla_ros.contract import SensorContract
from moe_vla_ros.evaluation.bag.records import records_from_node_bag

NS = 1_000_000_000
CONTRACT = SensorContract(("cam",), 16, 16, ("a", "b"), 10.0)
TOPICS = {"trajectory_topic": "/t", "usage_topic": "/u", "trace_topic": "/r", "status_topic": "/s"}


def _time(types, t: float):
    return types["builtin_interfaces/msg/Time"](sec=int(t), nanosec=int(round((t % 1) * NS)))


def write_node_bag(path, *, lose_usage: int | None = None, joint_names=("b", "a")):
    """A hold at 1.0 s, then trajectories received at 2.0 and 3.0 s (observations at 1.95 / 2.9 s)."""
    t = get_typestore().types
    def header(s: float):
        return t["std_msgs/msg/Header"](stamp=_time(t, s), frame_id="")

    def duration(s: float):
        return t["builtin_interfaces/msg/Duration"](sec=int(s), nanosec=int(round((s % 1) * NS)))

    def trajectory(stamp, values):
        points = [t["trajectory_msgs/msg/JointTrajectoryPoint"](
            positions=np.array(v, dtype=np.float64), velocities=np.full(2, 0.5), accelerations=np.zeros(0),
            effort=np.zeros(0), time_from_start=duration(0.1 * (i + 1))) for i, v in enumerate(values)]
        return t["trajectory_msgs/msg/JointTrajectory"](
            header=header(stamp), joint_names=list(joint_names), points=points
        )

    layer = t["moe_vla_msgs/msg/LayerExpertUsage"](layer_name="moe", expert_load=np.array([0.25, 0.75], np.float32),
                                                 router_entropy=0.5, num_tokens=4, dropped_tokens=0)

    def usage(stamp: float, chunk_id: int):
        return t["moe_vla_msgs/msg/ExpertUsage"](header=header(stamp), chunk_id=chunk_id, layers=[layer])

    trace = t["moe_vla_msgs/msg/ReasoningTrace"](
        header=header(1.95), text="go", chunk_id=3, instruction="x", generation_latency=duration(0.01), num_tokens=1,
        stopped_at_eos=True, expert_usage=[layer],
    )
    events = [
        (1.0, "/t", trajectory(0.0, [])),
        (2.0, "/t", trajectory(1.9, [[1.0, 2.0], [1.1, 2.1]])), (2.0, "/u", usage(1.95, 3)), (2.0, "/r", trace),
        (3.0, "/t", trajectory(2.9, [[5.0, 6.0]])), (3.0, "/u", usage(2.9, 4)),
    ]
    if lose_usage is not None:
        events = [e for e in events if not (e[1] == "/u" and e[0] == lose_usage)]
    with BagWriter(path) as bag:
        for topic, msgtype in (("/t", "trajectory_msgs/msg/JointTrajectory"), ("/u", "moe_vla_msgs/msg/ExpertUsage"),
                               ("/r", "moe_vla_msgs/msg/ReasoningTrace")):
            bag.add_topic(topic, msgtype)
        for when, topic, msg in events:
            bag.write(topic, int(when * NS), msg)


def test_trajectories_become_commands_paired_with_their_usage(tmp_path):
    write_node_bag(tmp_path / "out")
    records = records_from_node_bag(tmp_path / "out", CONTRACT, **TOPICS)
    hold, first, second = records.commands
    assert hold.is_hold and hold.start_s == 1.0  # stamp 0 = "start now": the receipt time
    assert first.received_s == 2.0 and first.start_s == pytest.approx(1.9)
    np.testing.assert_allclose(first.times_s, [2.0, 2.1])
    np.testing.assert_allclose(first.positions, [[2.0, 1.0], [2.1, 1.1]])  # reordered to the contract's a, b
    assert (first.obs_stamp_s, first.chunk_id) == (pytest.approx(1.95), 3)
    assert (second.obs_stamp_s, second.chunk_id) == (pytest.approx(2.9), 4)
    assert [(r.text, r.chunk_id) for r in records.traces] == [("go", 3)]
    assert [r.layers["moe"].tolist() for r in records.usage] == [[0.25, 0.75]] * 2
    assert (records.start_s, records.end_s) == (1.0, 3.0)


def test_a_lost_usage_leaves_only_its_trajectory_unpaired(tmp_path):
    write_node_bag(tmp_path / "out", lose_usage=2.0)
    _, first, second = records_from_node_bag(tmp_path / "out", CONTRACT, **TOPICS).commands
    assert math.isnan(first.obs_stamp_s) and first.chunk_id == -1
    assert second.chunk_id == 4


def test_wrong_joints_and_missing_topic_are_clear_errors(tmp_path):
    write_node_bag(tmp_path / "out", joint_names=("b", "c"))
    with pytest.raises(BagError, match=r"trajectory 1 on /t .*missing joints \['a'\]"):
        records_from_node_bag(tmp_path / "out", CONTRACT, **TOPICS)
    with pytest.raises(BagError, match=r"lacks topic\(s\) \['/nope'\]"):
        records_from_node_bag(tmp_path / "out", CONTRACT, **{**TOPICS, "trajectory_topic": "/nope"})
