"""The policy on a real robot running ros2_control (joint_trajectory_controller) and cameras.

    ros2 launch moe_vla_ros robot.launch.py robot_config:=/path/to/my_robot.yaml model_path:=/path/to/model

With namespace:=robot1 the node is /robot1/policy_node on /robot1/<topics> (several robots on
one graph, each with its own robot_config). Gazebo / Isaac Sim: use_sim_time:=true.
"""

from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("moe_vla_ros")
    return LaunchDescription([
        DeclareLaunchArgument("robot_config", description="Per-robot parameters (copy config/robots/sim_arm.yaml)."),
        DeclareLaunchArgument("policy_config", default_value=PathJoinSubstitution([share, "config", "policy.yaml"]),
                              description="Generic policy parameters."),
        DeclareLaunchArgument("model_path", default_value="",
                              description="Model folder (empty: the config files' model.path, else the bundled model)."),
        DeclareLaunchArgument("backend", default_value="",
                              description="onnxruntime or torch (empty: the config files' model.backend)."),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="Follow /clock (simulators)."),
        DeclareLaunchArgument("namespace", default_value="", description="Robot namespace (e.g. robot1)."),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "policy.launch.py"])),
            launch_arguments={
                "policy_config": LaunchConfiguration("policy_config"),
                "robot_config": LaunchConfiguration("robot_config"),
                "model_path": LaunchConfiguration("model_path"),
                "backend": LaunchConfiguration("backend"),
                "use_sim_time": LaunchConfiguration("use_sim_time"),
                "autostart": "true",
                "namespace": LaunchConfiguration("namespace"),
            }.items(),
        ),
    ])
