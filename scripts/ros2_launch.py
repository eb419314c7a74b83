#!/usr/bin/env python3
"""Run a launch file with the real `launch` / `launch_ros` (what `ros2 launch` does), in the venv:

    .venv/bin/python scripts/ros2_launch.py moe_vla_ros sim.launch.py instruction:="reach the red cube"
    .venv/bin/python scripts/ros2_launch.py launch/robot.launch.py robot_config:=my_robot.yaml namespace:=robot1
    .venv/bin/python scripts/ros2_launch.py moe_vla_ros policy.launch.py --show-args

With a sourced ROS 2 install, `ros2 launch moe_vla_ros <file> ...` is the same. Ctrl-C (SIGINT)
stops every process it started. Exit status: the launch service's (non-zero when it failed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def launch_file_path(package_or_path: str, file_name: str | None) -> Path:
    if file_name is None:
        return Path(package_or_path)
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(package_or_path)) / "launch" / file_name


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(prog="ros2_launch.py", description=__doc__.split("\n\n")[0])
    p.add_argument("package_or_path", help="package name, or a launch file path")
    p.add_argument("file_name", nargs="?", help="launch file in the package's share/<package>/launch")
    p.add_argument("--show-args", action="store_true", help="print the launch arguments and exit")
    p.add_argument("--debug", action="store_true", help="launch's debug output")
    args = p.parse_args([a for a in argv if ":=" not in a])
    launch_arguments = [tuple(a.split(":=", 1)) for a in argv if ":=" in a]

    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    from launch import LaunchContext, LaunchDescription, LaunchService

    path = launch_file_path(args.package_or_path, args.file_name)
    if not path.is_file():
        print(f"ros2_launch.py: error: no launch file {path}", file=sys.stderr)
        return 2
    source = PythonLaunchDescriptionSource(str(path))
    if args.show_args:
        from launch.utilities import perform_substitutions

        context = LaunchContext()
        for arg in source.get_launch_description(context).get_launch_arguments():
            default = "" if arg.default_value is None else f" (default: {perform_substitutions(context, arg.default_value)!r})"
            print(f"  {arg.name}: {arg.description}{default}")
        return 0
    service = LaunchService(argv=argv, debug=args.debug)
    service.include_launch_description(LaunchDescription([
        IncludeLaunchDescription(source, launch_arguments=launch_arguments),
    ]))
    return service.run()


if __name__ == "__main__":
    sys.exit(main())
