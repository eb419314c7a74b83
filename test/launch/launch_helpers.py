"""Helpers of the launch tests (test/launch/): run a launch file as `ros2 launch` does, per-test robot
config files, parameter look-ups through a node's services."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from moe_vla_ros.param_files import nest_parameters
from moe_vla_ros.ros.testing import REPO_ROOT, RosPeerProcess, isolated_ros_env

LAUNCH_RUNNER = REPO_ROOT / "scripts" / "ros2_launch.py"


def launch(file_name: str, **arguments) -> RosPeerProcess:
    """`ros2 launch moe_vla_ros FILE name:=value ...` as a peer process (a context manager)."""
    args = [str(LAUNCH_RUNNER), "moe_vla_ros", file_name, *(f"{k}:={v}" for k, v in arguments.items())]
    return RosPeerProcess(args, env=isolated_ros_env())


def robot_config(tmp_path: Path, name: str, model_dir: Path, **overrides) -> Path:
    """config/robots/sim_arm.yaml with the test model on the CPU and `overrides` (dotted names)."""
    doc = yaml.safe_load((REPO_ROOT / "config" / "robots" / "sim_arm.yaml").read_text())
    params = doc["/**/policy_node"]["ros__parameters"]
    nest_parameters({"model.path": str(model_dir), "model.providers": ["CPUExecutionProvider"],
                     "model.warmup_runs": 0, **overrides}, params)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def get_parameters(node, executor, fqn: str, names: list[str], timeout_s: float = 20.0) -> dict:
    """Values of `names` of the node `fqn`, through its get_parameters service."""
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python

    client = node.create_client(GetParameters, f"{fqn}/get_parameters")
    deadline = time.monotonic() + timeout_s
    while not client.wait_for_service(timeout_sec=0.1):
        executor.spin_once(timeout_sec=0.05)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {fqn}/get_parameters service after {timeout_s} s")
    future = client.call_async(GetParameters.Request(names=names))
    executor.spin_until_future_complete(future, timeout_sec=timeout_s)
    assert future.done(), f"{fqn}/get_parameters did not answer"
    node.destroy_client(client)
    return {n: parameter_value_to_python(v) for n, v in zip(names, future.result().values)}


