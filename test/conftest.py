"""Suite-wide setup: every ROS process of the tests stays on this machine, in this run's domain."""

import os
from pathlib import Path
from typing import NamedTuple

import pytest

from moe_vla_ros.ros.testing import apply_isolated_ros_env

# Before any test imports rclpy: localhost discovery, this run's ROS_DOMAIN_ID, logs in build/.
apply_isolated_ros_env(int(os.environ["ROS_DOMAIN_ID"]) if "ROS_DOMAIN_ID" in os.environ else None)
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def no_realtime_threads():
    """After every test, no thread of the test process keeps real-time scheduling. Run as root, a
    libsvtav1 encoder (LeRobot video tests) can leave threads at SCHED_FIFO 99 that later ROS
    contexts inherit; a Fast DDS thread spinning at that priority starves the 2 cores and every
    timing-sensitive test after it (seen: 151 such threads, load 66, a lifecycle test stalled)."""
    yield
    from moe_vla_ros.data.lerobot.video import undo_realtime

    undo_realtime((os.SCHED_OTHER, 0))


@pytest.fixture
def ros_context():
    """A fresh rclpy context for one test; shut down afterwards even when the test fails."""
    from moe_vla_ros.ros.contexts import private_context

    with private_context() as context:  # its participant leaves the graph afterwards
        yield context


class DemoExport(NamedTuple):
    checkpoint: Path
    model: Path


@pytest.fixture(scope="session")
def demo_export(tmp_path_factory) -> DemoExport:
    """A seeded random-weight tiny MoE-VLA (tiny preset, seed 0): checkpoint + model folder exported
    once per test session, with its gated int8 and fp16 variants."""
    from moe_vla_ros.export.config import ExportConfig
    from moe_vla_ros.export.demo_checkpoint import export_demo_model

    root = tmp_path_factory.getbasetemp() / "demo_export"
    return DemoExport(*export_demo_model(root, "tiny", 0, ExportConfig(int8=True, fp16=True)))


@pytest.fixture(scope="session")
def tiny_model_dir(demo_export) -> Path:
    """The exported folder of `demo_export`."""
    return demo_export.model


@pytest.fixture(scope="session")
def sim_model_dir(tmp_path_factory):
    """A seeded random-weight tiny MoE-VLA with the simulator's contract (7 joints, front + wrist
    cameras at 32x32, chunks of 16 at 10 Hz), exported to ONNX (sparse graphs only)."""
    from moe_vla_ros.contract import PolicyContract
    from moe_vla_ros.export.config import ExportConfig
    from moe_vla_ros.export.demo_checkpoint import export_demo_model
    from moe_vla_ros.sim.arm_sim import sim_sensor_contract

    contract = PolicyContract(sim_sensor_contract(("front", "wrist"), 32, 10.0), chunk_length=16,
                              max_instruction_tokens=8, max_reasoning_tokens=10)
    cfg = ExportConfig(formulations=("sparse",), policy_observations=1)
    _, model_dir = export_demo_model(tmp_path_factory.mktemp("sim_model"), "tiny", 0, cfg, contract, tag="sim")
    return model_dir


@pytest.fixture(scope="session")
def fixed_batch_model(tmp_path_factory) -> Path:
    """A copy of the bundled model as exports made before the dynamic batch axis are: every graph input
    and output has a batch of 1 (no dim_param on its batch axis); the manifest's sha256s updated."""
    import shutil

    import onnx

    from moe_vla_ros.paths import bundled_model_dir
    from moe_vla_ros.runtime.manifest import read_manifest, sha256_file
    from moe_vla_ros.serving.triton_repository import batch_axis

    out = tmp_path_factory.mktemp("fixed_batch") / "model"
    shutil.copytree(bundled_model_dir(), out)
    manifest = read_manifest(out)
    for entry in manifest.graphs:
        model = onnx.load(str(out / entry.file))
        for value in [*model.graph.input, *model.graph.output]:
            dims = value.type.tensor_type.shape.dim
            axis = batch_axis(entry.stage, value.name)
            if len(dims) > axis and dims[axis].dim_param:
                dims[axis].dim_value = 1  # clears dim_param (a oneof)
        onnx.save(model, str(out / entry.file))
        manifest.files[entry.file] = sha256_file(out / entry.file)
    manifest.write(out)
    read_manifest(out)  # checksums hold
    return out
