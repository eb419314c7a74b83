"""ament_python package moe_vla_ros (also pip-installable: `pip install -e .`)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "moe_vla_ros"

# Executables: ROS nodes (`ros2 run moe_vla_ros <name>`) and command-line tools.
CONSOLE_SCRIPTS = [
    "moe_vla_bag_from_sim = moe_vla_ros.bags.from_sim:main",
    "moe_vla_eval_bag = moe_vla_ros.evaluation.bag.offline:main",
    "moe_vla_bag_replay_eval = moe_vla_ros.ros.bag_replay_eval:main",
    "moe_vla_demo = moe_vla_ros.ros.demo:main",
    "moe_vla_eval_sim = moe_vla_ros.ros.closed_loop_eval:main",
    "moe_vla_export = moe_vla_ros.export.cli:main",
    "moe_vla_triton_repository = moe_vla_ros.serving.cli:main",
    "policy_node = moe_vla_ros.ros.policy_node:main",
    "moe_vla_bringup = moe_vla_ros.ros.bringup:main",
    "moe_vla_train = moe_vla_ros.training.train:main",
    "sim_node = moe_vla_ros.ros.sim_node:main",
    "moe_vla_generate_demos = moe_vla_ros.sim.generate_demos:main",
    "moe_vla_bag_record = moe_vla_ros.ros.bag_recorder:main",
    "moe_vla_bag_play = moe_vla_ros.ros.bag_player:main",
    "moe_vla_bag_to_dataset = moe_vla_ros.bags.to_dataset:main",
    "moe_vla_to_lerobot = moe_vla_ros.bags.to_lerobot:main",
    "moe_vla_bag_info = moe_vla_ros.bags.validate:main",
    "moe_vla_bag_reindex = moe_vla_ros.bags.reindex:main",
]


def _data_tree(folder: str) -> list[tuple[str, list[str]]]:
    """data_files entries installing every file under `folder` into share/<pkg>/<folder>/..."""
    import os

    entries = {}
    for path in glob(f"{folder}/**/*", recursive=True):
        if os.path.isfile(path):
            entries.setdefault(os.path.join("share", PACKAGE, os.path.dirname(path)), []).append(path)
    return sorted(entries.items())


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={PACKAGE: ["sim/assets/*.xml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *_data_tree("launch"),
        *_data_tree("config"),
        *_data_tree("models"),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="moe_vla_ros maintainers",
    maintainer_email="maintainers@moe-vla-ros.dev",
    description="Mixture-of-Experts VLA policy for ROS 2 with ONNX Runtime / TensorRT inference.",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
)
