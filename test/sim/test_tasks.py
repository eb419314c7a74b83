"""Tasks: instructions, sampling, success checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from moe_vla_ros.sim.config import CUBE_COLORS, CUBE_HALF_SIZE
from moe_vla_ros.sim.tasks import (
    INSTRUCTION_TEMPLATES,
    LIFT_SUCCESS_HEIGHT_M,
    MAX_DURATION_S,
    PUSH_GOAL_DISTANCE_M,
    PUSH_SUCCESS_DISTANCE_M,
    REACH_TOLERANCE_M,
    TASK_FAMILIES,
    Task,
    TaskError,
    instruction_for,
    instruction_words,
    reach_point,
    sample_task,
)


def move_cube(sim, color, position):
    adr = int(sim.model.joint(f"cube_{color}").qposadr[0])
    sim.data.qpos[adr : adr + 3] = position
    sim.step(1)


def test_default_instruction_and_duration():
    task = Task("push", "red", "left")
    assert task.instruction == "push the red cube to the left"
    assert task.max_duration_s == MAX_DURATION_S["push"]
    assert Task("reach", "blue").instruction == "reach the blue cube"


def test_paraphrases_mention_color_and_direction():
    for family in TASK_FAMILIES:
        for i in range(len(INSTRUCTION_TEMPLATES[family])):
            text = instruction_for(family, "green", "right" if family == "push" else None, i)
            assert "green" in text and "{" not in text
            assert ("right" in text) == (family == "push")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"family": "throw", "color": "red"}, "'throw'"),
        ({"family": "reach", "color": "pink"}, "'pink'"),
        ({"family": "push", "color": "red", "direction": "up"}, "'up'"),
        ({"family": "reach", "color": "red", "direction": "left"}, "only used by push"),
        ({"family": "lift", "color": "red", "max_duration_s": 500.0}, "500.0"),
    ],
)
def test_invalid_tasks_are_rejected(kwargs, message):
    with pytest.raises(TaskError, match=message):
        Task(**kwargs)


def test_instruction_words_cover_every_paraphrase_of_the_families():
    words = instruction_words(("reach", "push"))
    assert {"touch", "slide", "left", "right", *CUBE_COLORS} <= set(words)
    assert "lift" not in words and "pick" not in words  # lift instructions are not among these families
    rng = np.random.default_rng(0)
    for _ in range(50):
        assert set(sample_task("push", rng).instruction.split()) <= set(words)
    assert {"lift", "pick", "up"} <= set(instruction_words())


def test_sample_task_is_deterministic_and_covers_variations():
    a = [sample_task("push", np.random.default_rng(s)) for s in range(40)]
    b = [sample_task("push", np.random.default_rng(s)) for s in range(40)]
    assert a == b
    assert {t.color for t in a} == set(CUBE_COLORS)
    assert {t.direction for t in a} == {"left", "right"}
    assert len({t.instruction for t in a}) > 6


def test_reach_success_depends_on_gripper_to_cube_distance(sim):
    monitor = Task("reach", "red").start(sim)
    assert not monitor.is_success(sim)
    move_cube(sim, "red", sim.gripper_position() - reach_point(np.zeros(3)))
    assert monitor.is_success(sim)


def test_push_success_needs_displacement_in_the_named_direction(sim):
    start = sim.cube_pose("green")[0]
    left, right = Task("push", "green", "left").start(sim), Task("push", "green", "right").start(sim)
    move_cube(sim, "green", start + (0.0, 0.05, 0.0))
    assert not left.is_success(sim)
    move_cube(sim, "green", start + (0.0, 0.09, 0.0))
    assert left.is_success(sim) and not right.is_success(sim)
    move_cube(sim, "green", start + (0.0, -0.09, 0.0))
    assert right.is_success(sim) and not left.is_success(sim)


def test_lift_success_needs_the_cube_raised_under_the_gripper(sim):
    monitor = Task("lift", "blue").start(sim)
    gripper = sim.gripper_position()
    move_cube(sim, "blue", (gripper[0] + 0.2, gripper[1], 0.1))  # raised, but not held
    assert not monitor.is_success(sim)
    move_cube(sim, "blue", (gripper[0], gripper[1], CUBE_HALF_SIZE + 0.06))
    assert monitor.is_success(sim)


def test_push_tasks_lay_the_goal_line_and_other_tasks_hide_it(sim):
    start = sim.cube_pose("green")[0]
    Task("push", "green", "left").start(sim)
    np.testing.assert_allclose(sim.push_goal(), start[:2] + (0.0, PUSH_GOAL_DISTANCE_M))
    Task("push", "green", "right").start(sim)
    np.testing.assert_allclose(sim.push_goal(), start[:2] - (0.0, PUSH_GOAL_DISTANCE_M))
    for family in ("reach", "lift"):
        Task("push", "green", "left").start(sim)
        Task(family, "green").start(sim)
        assert sim.push_goal() is None


def test_shortfall_says_how_far_from_success_each_task_is(sim):
    start = sim.cube_pose("green")[0]
    push = Task("push", "green", "left").start(sim)
    move_cube(sim, "green", start + (0.0, 0.05, 0.0))
    assert push.shortfall_m(sim) == pytest.approx(PUSH_SUCCESS_DISTANCE_M - 0.05, abs=1e-4)
    move_cube(sim, "green", start + (0.0, -0.05, 0.0))  # the wrong way
    assert push.shortfall_m(sim) == pytest.approx(PUSH_SUCCESS_DISTANCE_M + 0.05, abs=1e-4)
    move_cube(sim, "green", (0.3, 0.9, CUBE_HALF_SIZE))  # off the table
    assert push.shortfall_m(sim) == math.inf and not push.is_success(sim)

    reach = Task("reach", "red").start(sim)
    target = sim.gripper_position() - reach_point(np.zeros(3))
    move_cube(sim, "red", target + (0.05, 0.0, 0.0))
    assert reach.shortfall_m(sim) == pytest.approx(0.05 - REACH_TOLERANCE_M, abs=1e-4)
    move_cube(sim, "red", target)
    assert reach.shortfall_m(sim) == 0.0 and reach.is_success(sim)

    lift = Task("lift", "blue").start(sim)
    gripper = sim.gripper_position()
    move_cube(sim, "blue", (gripper[0], gripper[1], CUBE_HALF_SIZE + 0.02))  # held, 3 cm too low
    assert lift.shortfall_m(sim) == pytest.approx(LIFT_SUCCESS_HEIGHT_M - 0.02, abs=1e-3)
