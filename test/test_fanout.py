"""Bag work over many bags (moe_vla_ros/fanout.py), in this process and on a real local Ray cluster.

The Ray tests share one local cluster of 2 CPUs started once for the module (~5-15 s): the
fan-out itself (results in input order whatever order they finish in, a failing bag and a
crashing worker reported without stopping the rest), then both fleet tools (moe_vla_bag_to_dataset,
moe_vla_eval_bag) run on Ray against the same command run locally: identical outputs, the corrupt
bag and the folder that is not a bag reported in the fleet summary, exit 1, progress over the bags.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from moe_vla_ros import fanout
from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.bags.synthetic import SyntheticDemo, write_demo_bag
from moe_vla_ros.errors import BadInputError, FailedError
from moe_vla_ros.fanout import BagResult, FanOutConfig, fan_out

RAY = FanOutConfig(executor="ray", progress=True)


def _work(bag: Path, tag: str = "") -> tuple[str, str, int]:
    """A per-bag function with every outcome: a value, the package's error, a bug, a dying worker.
    Bags whose name starts with "slow" finish last, so completion order differs from input order."""
    name = bag.name
    if name.startswith("slow"):
        time.sleep(0.5)
    if name.startswith("bad"):
        raise BagError(f"{name} is not a bag")
    if name.startswith("bug"):
        raise KeyError(name)
    if name.startswith("crash"):
        os._exit(3)  # a worker that dies (a native decoder crashing)
    return name, tag, len(name)


def _without_timing(value):
    """A report or summary without what depends on when and how fast it ran."""
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if k not in {"wall_s", "elapsed_s", "bag_s", "executor", "created"}}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


# -- without Ray ----------------------------------------------------------------------------------

def test_output_names_tell_bags_of_the_same_name_apart(tmp_path):
    for p in ("robot1/bag", "robot2/bag", "site/a/robot1/bag", "lab/bag_0", "single"):
        (tmp_path / p).mkdir(parents=True)
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "bag_0.mcap").write_bytes(b"")
    names = fanout.output_names([tmp_path / p for p in ("robot1/bag", "robot2/bag", "site/a/robot1/bag", "single")])
    assert names == [f"{tmp_path.name}_robot1_bag", "robot2_bag", "a_robot1_bag", "single"]
    # a bag file is named without its suffix, and told apart from a folder of the same name by its parents
    assert fanout.output_names([tmp_path / "files/bag_0.mcap", tmp_path / "lab/bag_0"]) == ["files_bag_0", "lab_bag_0"]
    assert fanout.output_names([tmp_path / "single"]) == ["single"]


def test_bags_and_output_are_checked_before_any_work(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(BadInputError, match="not found"):
        fanout.check_bags([tmp_path / "a", tmp_path / "missing"])
    with pytest.raises(BadInputError, match="given twice"):
        fanout.check_bags([tmp_path / "a", tmp_path / "." / "a"])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("")
    with pytest.raises(BadInputError, match="not empty"):
        fanout.check_fleet_output(tmp_path / "out")
    assert fanout.check_fleet_output(tmp_path / "new") == tmp_path / "new"


def test_config_names_the_bad_value():
    with pytest.raises(BadInputError, match="executor must be one of"):
        FanOutConfig(executor="dask")
    with pytest.raises(BadInputError, match="need --executor ray"):
        FanOutConfig(ray_address="ray://head:10001")
    with pytest.raises(BadInputError, match="ray_num_cpus must be an integer >= 1"):
        FanOutConfig(executor="ray", ray_num_cpus=0)
    with pytest.raises(BadInputError, match="has its own CPUs"):
        FanOutConfig(executor="ray", ray_address="auto", ray_num_cpus=2)


def test_local_results_in_order_and_a_failure_does_not_stop_the_rest(tmp_path, capsys):
    bags = [tmp_path / n for n in ("slow_a", "bad_b", "c", "bug_d", "e")]
    results = fan_out(_work, bags, FanOutConfig(), args=[(str(i),) for i in range(5)])
    assert [r.index for r in results] == list(range(5)) and [r.bag for r in results] == bags
    assert [r.ok for r in results] == [True, False, True, False, True]
    assert results[0].value == ("slow_a", "0", 6) and results[4].value == ("e", "4", 1)
    bad, bug = results[1], results[3]
    assert (bad.error, bad.error_type, bad.exit_code, bad.detail) == ("bad_b is not a bag", "BagError", 2, "")
    assert bug.error_type == "KeyError" and bug.exit_code == 1 and "Traceback" in bug.detail  # a bug keeps its traceback
    err = capsys.readouterr().err
    assert "bags: 100%" in err and "5/5" in err  # one progress bar over the bags
    assert f"bags: {bags[1]} failed: bad_b is not a bag" in err
    with pytest.raises(BadInputError, match="bad_b is not a bag"):
        bad.raise_error()
    with pytest.raises(FailedError, match="2 of 5 bags failed"):
        fanout.raise_if_failed(results)


def test_no_progress_still_names_a_failed_bag(tmp_path, capsys):
    fan_out(_work, [tmp_path / "bad", tmp_path / "ok"], FanOutConfig(progress=False))
    err = capsys.readouterr().err
    assert "%|" not in err and "failed: bad is not a bag" in err


def test_fleet_summary_table_and_json(tmp_path):
    results = [BagResult(Path("r1/bag"), 0, value={"steps": 3}, wall_s=0.5),
               BagResult(Path("r2/bag"), 1, error="truncated", error_type="BagError", exit_code=2)]
    summary = fanout.summarize("tool", results, ["r1_bag", "r2_bag"], [tmp_path / "r1_bag", tmp_path / "r2_bag"],
                               metrics=lambda v: {"steps": v["steps"]})
    table = summary.format([fanout.Column("steps", "steps")])
    assert table.splitlines()[0].split() == ["bag", "status", "steps"]
    assert table.splitlines()[1].split() == ["r1_bag", "ok", "3"] and table.splitlines()[2].split() == ["r2_bag", "failed", "-"]
    assert "r2_bag: BagError: truncated" in table and table.endswith("1 of 2 bags ok, 1 failed")
    data = json.loads(summary.write(tmp_path).read_text())
    assert (data["bags"], data["ok"], data["failed"]) == (2, 1, 1)
    assert data["per_bag"][1] == {"name": "r2_bag", "bag": "r2/bag", "out": str(tmp_path / "r2_bag"), "status": "failed",
                                  "wall_s": 0.0, "error": "truncated", "error_type": "BagError", "exit_code": 2}


# -- on a local Ray cluster -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray cluster (2 CPUs) for the module; the tools use it as it is (ray.is_initialized)."""
    ray = pytest.importorskip("ray")
    started = time.perf_counter()
    fanout.start_ray(num_cpus=2)
    print(f"local Ray cluster up in {time.perf_counter() - started:.1f} s")
    # this module's functions travel by value (the workers cannot import a test module)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


def test_ray_results_match_local_in_order_despite_failures_and_a_dying_worker(ray_cluster, tmp_path, capsys):
    bags = [tmp_path / n for n in ("slow_a", "bad_b", "c", "crash_d", "bug_e", "f")]
    args = [(str(i),) for i in range(len(bags))]
    on_ray = fan_out(_work, bags, RAY, args)
    assert ray_cluster.is_initialized()  # the session the module opened is left open
    local = fan_out(_work, [b for b in bags if not b.name.startswith("crash")], FanOutConfig(progress=False),
                    [a for a, b in zip(args, bags) if not b.name.startswith("crash")])
    assert [r.index for r in on_ray] == list(range(6)) and [r.bag for r in on_ray] == bags
    kept = [r for r in on_ray if not r.bag.name.startswith("crash")]
    assert [(r.value, r.error, r.error_type, r.exit_code) for r in kept] == \
           [(r.value, r.error, r.error_type, r.exit_code) for r in local]
    crash = on_ray[3]
    assert not crash.ok and crash.exit_code == 1 and crash.error_type  # Ray's error for the lost worker
    err = capsys.readouterr().err
    assert "bags: 100%" in err and "6/6" in err and "crash_d failed:" in err


@pytest.fixture(scope="module")
def demo_fleet(tmp_path_factory):
    """Three generated demonstration bags (two of the same name), a truncated one and a folder
    that is not a bag; the contract file."""
    root = tmp_path_factory.mktemp("fleet")
    demo = SyntheticDemo(duration_s=3.0)
    good = [root / "robot1" / "bag", root / "robot2" / "bag", root / "robot3" / "bag_0"]
    for path in good:
        write_demo_bag(path, demo)
    truncated = root / "robot4" / "bag"
    shutil.copytree(good[0], truncated)
    mcap = next(truncated.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    (root / "not_a_bag").mkdir()
    contract = root / "contract.json"
    contract.write_text(json.dumps({"sensors": demo.contract().to_dict()}))
    return [good[0], truncated, good[1], root / "not_a_bag", good[2]], contract


def test_bag_to_dataset_fleet_on_ray_equals_local(ray_cluster, demo_fleet, tmp_path, capsys):
    from moe_vla_ros.bags.to_dataset import main
    from moe_vla_ros.data.dataset import DemoDataset

    bags, contract = demo_fleet
    common = ["--contract", str(contract), "--camera", "wrist=/camera/wrist/image_raw/compressed"]
    assert main([*map(str, bags), "-o", str(tmp_path / "ray"), *common, "--executor", "ray"]) == 1
    ray_out = capsys.readouterr()
    assert main([*map(str, bags), "-o", str(tmp_path / "local"), *common]) == 1
    local_out = capsys.readouterr()
    names = ["robot1_bag", "robot4_bag", "robot2_bag", "not_a_bag", "bag_0"]
    for out, run in ((tmp_path / "ray", ray_out), (tmp_path / "local", local_out)):
        summary = json.loads((out / "fleet_summary.json").read_text())
        assert [r["name"] for r in summary["per_bag"]] == names  # input order
        assert [r["status"] for r in summary["per_bag"]] == ["ok", "failed", "ok", "failed", "ok"]
        assert "truncated or corrupt" in summary["per_bag"][1]["error"] and "no metadata.yaml" in summary["per_bag"][3]["error"]
        assert summary["totals"]["episodes"] == 3 and sorted(p.name for p in out.iterdir()) == \
               sorted(["fleet_summary.json", "robot1_bag", "robot2_bag", "bag_0"])  # nothing for the failed bags
        assert "3 of 5 bags ok, 2 failed" in run.out
        assert "moe_vla_bag_to_dataset: error: 2 of 5 bags failed" in run.err and "convert bags: 100%" in run.err
    assert _without_timing(json.loads((tmp_path / "ray" / "fleet_summary.json").read_text().replace(str(tmp_path / "ray"), "OUT"))) == \
           _without_timing(json.loads((tmp_path / "local" / "fleet_summary.json").read_text().replace(str(tmp_path / "local"), "OUT")))
    for name in ("robot1_bag", "robot2_bag", "bag_0"):
        on_ray, local = DemoDataset(tmp_path / "ray" / name), DemoDataset(tmp_path / "local" / name)
        assert len(on_ray) == len(local) == 1
        for a, b in zip(on_ray, local):
            assert a.instruction == b.instruction
            np.testing.assert_array_equal(a.action, b.action)
            np.testing.assert_array_equal(a.images["front"], b.images["front"])


def test_eval_bag_fleet_on_ray_equals_local(ray_cluster, tmp_path, capsys):
    """The bundled model on two recorded expert bags and a folder that is not a bag, fixed latency."""
    from moe_vla_ros.bags.from_sim import SimRecordingConfig, record_sim_bag
    from moe_vla_ros.evaluation.bag.offline import main
    from moe_vla_ros.paths import bundled_model_dir

    bags = []
    for seed in (1, 2):
        cfg = SimRecordingConfig(episodes=1, max_episode_s=2.0, image_size=48, camera_rate_hz=15.0, seed=seed, progress=False)
        bags.append(record_sim_bag(tmp_path / f"robot{seed}" / "bag", cfg).path)
    (tmp_path / "empty").mkdir()
    bags.insert(1, tmp_path / "empty")
    common = ["--model", str(bundled_model_dir()), "--latency", "0.05", "--no-plots"]
    assert main([*map(str, bags), "-o", str(tmp_path / "ray"), *common, "--executor", "ray"]) == 1
    ray_run = capsys.readouterr()
    assert main([*map(str, bags), "-o", str(tmp_path / "local"), *common, "--no-progress"]) == 1
    local_run = capsys.readouterr()
    assert "evaluate bags: 100%" in ray_run.err and "%|" not in local_run.err
    for run in (ray_run, local_run):
        assert "2 of 3 bags ok, 1 failed" in run.out and "empty: BagError:" in run.out
        assert "moe_vla_eval_bag: error: 1 of 3 bags failed" in run.err
    summaries = [json.loads((tmp_path / ex / "fleet_summary.json").read_text()) for ex in ("ray", "local")]
    for summary in summaries:
        assert [r["status"] for r in summary["per_bag"]] == ["ok", "failed", "ok"]
        assert summary["per_bag"][0]["commands"] >= 1 and summary["totals"]["action_mae"] is not None
    for name in ("robot1_bag", "robot2_bag"):
        reports = [json.loads((tmp_path / ex / name / "report.json").read_text().replace(str(tmp_path / ex), "OUT"))
                   for ex in ("ray", "local")]
        assert _without_timing(reports[0]) == _without_timing(reports[1])
    assert [r.get("action_mae") for r in summaries[0]["per_bag"]] == [r.get("action_mae") for r in summaries[1]["per_bag"]]
