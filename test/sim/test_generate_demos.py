"""Demo generation: a readable, deterministic dataset; the command line."""

from __future__ import annotations

import numpy as np
import pytest

from moe_vla_ros.data.dataset import DemoDataset
from moe_vla_ros.sim.config import JOINT_NAMES
from moe_vla_ros.sim.generate_demos import DemoConfig, generate_demos, main

SMALL = dict(episodes=2, seed=3, tasks=("reach", "push"), image_size=32, progress=False)


def test_generated_dataset_round_trips(tmp_path):
    summary = generate_demos(tmp_path / "demos", DemoConfig(**SMALL))
    assert summary["episodes_run"] == 2 and summary["episodes_written"] == 2
    assert summary["success_rate"] == {"reach": 1.0, "push": 1.0}
    ds = DemoDataset(tmp_path / "demos")
    assert len(ds) == 2 and ds.num_steps == summary["steps_written"]
    assert ds.contract.joint_names == JOINT_NAMES
    assert ds.contract.camera_names == ("front", "wrist")
    assert (ds.contract.image_height, ds.contract.image_width, ds.contract.control_rate_hz) == (32, 32, 10.0)
    tasks = []
    for ep in ds:
        tasks.append(ep.task)
        assert ep.success and ep.instruction
        assert ep.images["wrist"].shape == (len(ep), 32, 32, 3)
        np.testing.assert_allclose(np.diff(ep.timestamp), 0.1, atol=1e-9)
        assert all(ep.reasoning) and len(ep.reasoning) == len(ep)
        # the target cube's recorded position: on the table, in the spawn area at the start
        assert ep.target_position.shape == (len(ep), 3)
        assert 0.3 <= ep.target_position[0, 0] <= 0.52 and abs(ep.target_position[0, 2] - 0.02) < 0.005
        # the action of step t is what the arm reaches about one control period later
        assert np.abs(ep.action[:-3, :6] - ep.joint_position[1:-2, :6]).mean() < 0.05
    assert tasks == ["reach", "push"]
    # the generator declares its closed vocabulary: every trace word and the instruction words of its tasks
    assert {"behind", "lifted", "slide", "touch", "99"} <= set(ds.vocabulary) and "pick" not in ds.vocabulary


def test_same_config_gives_the_same_dataset(tmp_path):
    for name in ("a", "b"):
        generate_demos(tmp_path / name, DemoConfig(**dict(SMALL, episodes=1)))
    a, b = DemoDataset(tmp_path / "a").episode(0), DemoDataset(tmp_path / "b").episode(0)
    np.testing.assert_array_equal(a.joint_position, b.joint_position)
    np.testing.assert_array_equal(a.images["front"], b.images["front"])
    assert a.reasoning == b.reasoning and a.instruction == b.instruction


def test_worker_processes_write_the_same_dataset(tmp_path):
    cfg = dict(SMALL, episodes=3, tasks=("push", "reach"), execution_noise_rad=0.03)
    one = generate_demos(tmp_path / "one", DemoConfig(**cfg))
    two = generate_demos(tmp_path / "two", DemoConfig(**dict(cfg, workers=2)))
    assert one["steps_written"] == two["steps_written"] and one["success_rate"] == two["success_rate"]
    a, b = DemoDataset(tmp_path / "one"), DemoDataset(tmp_path / "two")
    assert [ep.task for ep in b] == ["push", "reach", "push"]  # written in episode order
    for ea, eb in zip(a, b):
        np.testing.assert_array_equal(ea.joint_position, eb.joint_position)  # the same noise, too
        np.testing.assert_array_equal(ea.images["wrist"], eb.images["wrist"])
        assert ea.reasoning == eb.reasoning and ea.instruction == eb.instruction


def test_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["--out", str(out), "--episodes", "1", "--tasks", "lift", "--image-size", "24", "--cameras", "wrist,top",
            "--control-rate", "5", "--no-progress"]
    assert main(args) == 0
    assert "wrote 1/1 episodes" in capsys.readouterr().out
    ds = DemoDataset(out)
    assert ds.contract.camera_names == ("wrist", "top") and ds.contract.control_rate_hz == 5.0
    assert ds.episode(0).task == "lift"
    assert main(args) == 2  # refuses to overwrite
    assert "already holds a dataset" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "x"), "--tasks", "reach,fly"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("moe_vla_generate_demos: error: ") and "'fly'" in err


def test_execution_noise_keeps_the_scenes_and_perturbs_the_states(tmp_path):
    generate_demos(tmp_path / "clean", DemoConfig(**dict(SMALL, episodes=1)))
    assert main(["--out", str(tmp_path / "noisy"), "--episodes", "1", "--seed", "3", "--image-size", "32",
                 "--execution-noise", "0.03", "--no-progress"]) == 0
    clean, noisy = DemoDataset(tmp_path / "clean").episode(0), DemoDataset(tmp_path / "noisy").episode(0)
    assert noisy.instruction == clean.instruction and noisy.success
    assert "execution noise 0.03 rad" in (tmp_path / "noisy" / "meta.json").read_text()
    np.testing.assert_array_equal(noisy.images["front"][0], clean.images["front"][0])  # same scene
    np.testing.assert_array_equal(noisy.target_position[0], clean.target_position[0])
    # the arm strays from the recorded (clean) targets by about the noise level
    n = min(len(clean), len(noisy)) - 1
    lag_clean = np.abs(clean.action[:n, :6] - clean.joint_position[1 : n + 1, :6]).mean()
    lag_noisy = np.abs(noisy.action[:n, :6] - noisy.joint_position[1 : n + 1, :6]).mean()
    assert lag_noisy > lag_clean + 0.01


def test_noise_phases_leave_the_push_clean(tmp_path):
    lags = {}
    for name, phases in (("all", []), ("approaches", ["--noise-phases", "approaches"])):
        assert main(["--out", str(tmp_path / name), "--episodes", "1", "--seed", "3", "--tasks", "push", "--image-size",
                     "24", "--execution-noise", "0.05", "--keep-failures", "--no-progress", *phases]) == 0
        ep = DemoDataset(tmp_path / name).episode(0)
        lag = np.abs(ep.action[:-1, :6] - ep.joint_position[1:, :6]).mean(axis=1)  # [T-1] rad
        phase = np.array(["pushing" in text for text in ep.reasoning[:-1]])  # [T-1]
        later = np.convolve(phase, np.ones(6), mode="full")[: len(phase)] >= 6  # 5+ steps into the push
        lags[name] = (lag[~phase].mean(), lag[later].mean())
    assert "in phases approach,approach_side" in (tmp_path / "approaches" / "meta.json").read_text()
    assert lags["approaches"][0] > 0.01  # noisy approach
    assert lags["approaches"][1] < 0.5 * lags["all"][1]  # the push itself follows the expert


@pytest.mark.parametrize(
    "kwargs, message",
    [({"episodes": 0}, "episodes"), ({"execution_noise_rad": -1.0}, "std_rad"),
     ({"execution_noise_phases": ("fly",)}, "phases"), ({"tasks": ("dance",)}, "tasks"), ({"cameras": "front"}, "cameras"),
     ({"control_rate_hz": -1.0}, "control_rate_hz"), ({"workers": 0}, "workers"), ({"workers": 1.5}, "workers")],
)
def test_invalid_demo_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DemoConfig(**kwargs)
