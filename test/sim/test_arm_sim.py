"""ArmSim: determinism, speed, commands, rendering, trajectory tracking."""

from __future__ import annotations

import time

import numpy as np
import pytest

from moe_vla_ros.contract import SensorContract
from moe_vla_ros.sim.arm_sim import HOME_JOINT_POSITIONS, ArmSim, sim_sensor_contract
from moe_vla_ros.sim.config import CUBE_COLORS, CUBE_HALF_SIZE, JOINT_NAMES, SimConfig
from moe_vla_ros.sim.rendering import RenderingError
from moe_vla_ros.sim.trajectory_follower import JointTrajectory, TrajectoryFollower


def wiggle(sim: ArmSim, steps: int = 5) -> None:
    """A fixed command sequence that moves every joint and lets the cubes settle."""
    for k in range(steps):
        sim.set_joint_targets(np.array(HOME_JOINT_POSITIONS) + 0.05 * (k + 1) * np.array([1, -1, 1, -1, 1, -1, 0.1]))
        sim.step(sim.config.physics_steps_per_control)


def test_reset_puts_arm_home_and_cubes_on_the_table_apart(sim):
    sim.reset(3)
    np.testing.assert_allclose(sim.joint_positions(), HOME_JOINT_POSITIONS)
    np.testing.assert_allclose(sim.joint_targets(), HOME_JOINT_POSITIONS)
    assert sim.time == 0.0
    cubes = sim.cube_positions()
    assert set(cubes) == set(CUBE_COLORS)
    for pos in cubes.values():
        assert sim.config.cube_spawn_x[0] <= pos[0] <= sim.config.cube_spawn_x[1]
        assert sim.config.cube_spawn_y[0] <= pos[1] <= sim.config.cube_spawn_y[1]
        assert pos[2] == pytest.approx(CUBE_HALF_SIZE)
    xy = np.array([p[:2] for p in cubes.values()])
    gaps = [np.linalg.norm(xy[i] - xy[j]) for i in range(3) for j in range(i + 1, 3)]
    assert min(gaps) >= sim.config.min_cube_separation


def test_same_seed_gives_identical_states_and_images(small_config):
    runs = []
    for _ in range(2):
        with ArmSim(small_config) as sim:
            sim.reset(11)
            wiggle(sim)
            runs.append((sim.joint_positions(), sim.joint_velocities(), sim.cube_positions(), sim.render_all()))
    (q1, v1, c1, img1), (q2, v2, c2, img2) = runs
    np.testing.assert_array_equal(q1, q2)
    np.testing.assert_array_equal(v1, v2)
    for color in CUBE_COLORS:
        np.testing.assert_array_equal(c1[color], c2[color])
    for cam in small_config.camera_names:
        np.testing.assert_array_equal(img1[cam], img2[cam])


def test_different_seeds_give_different_cube_layouts(sim):
    sim.reset(1)
    first = sim.cube_positions()
    sim.reset(2)
    second = sim.cube_positions()
    assert all(np.linalg.norm(first[c] - second[c]) > 1e-3 for c in CUBE_COLORS)
    sim.reset(1)
    assert all(np.array_equal(first[c], sim.cube_positions()[c]) for c in CUBE_COLORS)


def test_reset_without_seed_uses_the_config_seed():
    with ArmSim(SimConfig(seed=4)) as a, ArmSim(SimConfig(seed=4)) as b:
        a.reset(99)
        a.reset()
        np.testing.assert_array_equal(a.cube_pose("red")[0], b.cube_pose("red")[0])


def test_simulation_runs_faster_than_real_time(sim):
    sim.set_joint_targets(np.array(HOME_JOINT_POSITIONS) + 0.2)
    start = time.perf_counter()
    sim.step_to(2.0)
    wall = time.perf_counter() - start
    assert sim.time == pytest.approx(2.0)
    assert 2.0 / wall > 1.0, f"real-time factor {2.0 / wall:.2f}"


def test_step_to_cannot_go_back_and_step_rejects_negative(sim):
    sim.step_to(0.1)
    with pytest.raises(ValueError, match="step back"):
        sim.step_to(0.05)
    with pytest.raises(ValueError, match="n must be"):
        sim.step(-1)


def test_set_joint_targets_by_vector_and_by_name_with_clipping(sim):
    sim.set_joint_targets({"joint_2": 0.3, "gripper": 1.0})
    targets = sim.joint_targets()
    assert targets[1] == pytest.approx(0.3)
    assert targets[6] == pytest.approx(0.04)  # clipped to the gripper's range
    assert targets[0] == pytest.approx(HOME_JOINT_POSITIONS[0])
    with pytest.raises(ValueError, match=r"unknown joint names \['joint_9'\]"):
        sim.set_joint_targets({"joint_9": 0.0})
    with pytest.raises(ValueError, match="shape"):
        sim.set_joint_targets([0.0, 0.0])
    with pytest.raises(ValueError, match="finite"):
        sim.set_joint_targets([float("nan")] * 7)


def test_gripper_closes_and_opens(sim):
    sim.set_joint_targets({"gripper": 0.04})
    sim.step_to(0.6)
    assert sim.joint_positions()[6] == pytest.approx(0.04, abs=2e-3)
    sim.set_joint_targets({"gripper": 0.0})
    sim.step_to(1.2)
    assert sim.joint_positions()[6] == pytest.approx(0.0, abs=2e-3)


def test_render_returns_rgb_images_of_the_configured_size(sim):
    images = sim.render_all()
    assert list(images) == ["front", "wrist"]
    for img in images.values():
        assert img.dtype == np.uint8 and img.shape == (48, 64, 3)
        assert img.std() > 5  # not a blank frame
    assert not np.array_equal(images["front"], images["wrist"])
    with pytest.raises(RenderingError, match="unknown camera 'side'"):
        sim.render("side")


def test_render_larger_than_the_default_offscreen_buffer():
    with ArmSim(SimConfig(image_height=720, image_width=800, camera_names=("top",))) as sim:
        assert sim.render("top").shape == (720, 800, 3)


def test_close_frees_the_renderer_and_render_reopens_it(sim):
    sim.render("front")
    sim.close()
    sim.close()  # idempotent
    assert sim.render("front").shape == (48, 64, 3)


def test_sensor_contract_matches_config(sim):
    contract = sim.sensor_contract()
    assert isinstance(contract, SensorContract)
    assert contract.joint_names == JOINT_NAMES
    assert contract.camera_names == ("front", "wrist")
    assert (contract.image_height, contract.image_width) == (48, 64)
    assert contract.control_rate_hz == 10.0
    assert sim_sensor_contract(("wrist",), 96, 5.0).image_width == 96


def test_sim_tracks_a_follower_trajectory(sim):
    home = np.array(HOME_JOINT_POSITIONS)
    goal = home + np.array([0.6, 0.4, -0.5, 0.5, -0.4, 0.8, 0.03])
    mid = (home + goal) / 2
    traj = JointTrajectory.from_arrays(
        JOINT_NAMES, np.stack([mid, goal]), [1.0, 2.0], velocities=np.stack([0.75 * (goal - home), np.zeros(7)])
    )
    follower = TrajectoryFollower(JOINT_NAMES, sim.joint_targets())
    follower.set_trajectory(traj, sim.time)
    errors = []
    for k in range(25):
        sim.step_to(0.1 * (k + 1), setpoint=follower.positions_at)
        errors.append(np.abs(sim.joint_positions() - follower.positions_at(sim.time)))
    errors = np.array(errors)
    assert errors.max() < 0.04, f"tracking error while moving {errors.max(0)}"
    np.testing.assert_allclose(sim.joint_positions(), goal, atol=2e-3)


def test_push_goal_line_is_hidden_at_reset_and_shown_where_asked(sim):
    sim.reset(3)
    hidden = sim.render_all()
    assert sim.push_goal() is None
    sim.show_push_goal((0.45, 0.1))
    np.testing.assert_allclose(sim.push_goal(), (0.45, 0.1))
    shown = sim.render_all()
    assert all(not np.array_equal(shown[c], hidden[c]) for c in shown)  # every camera sees it
    sim.show_push_goal(None)
    assert sim.push_goal() is None
    assert all(np.array_equal(sim.render(c), hidden[c]) for c in hidden)  # out of every view
    sim.show_push_goal((0.45, 0.1))
    sim.reset(3)
    assert sim.push_goal() is None
    with pytest.raises(ValueError, match="finite"):
        sim.show_push_goal((np.nan, 0.0))


def test_push_goal_line_does_not_collide(sim):
    sim.reset(3)
    cube = sim.cube_pose("red")[0]
    sim.show_push_goal(cube[:2])  # under the cube
    sim.step(100)
    np.testing.assert_allclose(sim.cube_pose("red")[0], cube, atol=1e-4)
