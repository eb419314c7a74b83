"""The policy on a real robot running ros2_control (joint_trajectory_controller) and cameras.

    ros2 launch moe_vla_ros robot.launch.py robot_config:=/path/to/my_robot.yaml model_path:=/path/to/model
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("moe_vla_ros")
    return LaunchDescription([
        DeclareLaunchArgument("robot_config", description="Per-robot parameters (copy config/robots/sim_arm.yaml)."),
        DeclareLaunchArgument("model_path", default_value="", description="Model folder (empty: bundled default)."),
        DeclareLaunchArgument("backend", default_value="onnxruntime", description="onnxruntime or torch."),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "policy.launch.py"])),
            launch_arguments={
                "robot_config": LaunchConfiguration("robot_config"),
                "model_path": LaunchConfiguration("model_path"),
                "backend": LaunchConfiguration("backend"),
                "use_sim_time": "false",
                "autostart": "true",
            }.items(),
        ),
    ])
