"""Tests of moe_vla_ros/param_files.py: flattening and nesting parameter trees."""

from moe_vla_ros.param_files import flatten_parameters, nest_parameters


def test_nest_is_the_inverse_of_flatten():
    tree = {"model": {"path": "m", "triton": {"url": "h:1"}}, "autostart": True, "robot": {"joint_names": ["a"]}}
    flat = flatten_parameters(tree)
    assert flat == {"model.path": "m", "model.triton.url": "h:1", "autostart": True, "robot.joint_names": ["a"]}
    assert nest_parameters(flat) == tree


def test_nest_merges_into_a_tree_keeping_its_other_entries():
    tree = {"model": {"path": "old", "warmup_runs": 3}, "topics": {"trajectory": "t"}}
    assert nest_parameters({"model.path": "new", "safety.recovery_s": 1.0}, tree) is tree
    assert tree == {"model": {"path": "new", "warmup_runs": 3}, "topics": {"trajectory": "t"},
                    "safety": {"recovery_s": 1.0}}
