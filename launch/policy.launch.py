"""Generic launch of the MoE-VLA policy node for any robot.

    ros2 launch moe_vla_ros policy.launch.py robot_config:=<path to config/robots/*.yaml> \
        model_path:=<model folder> use_sim_time:=false autostart:=true

Robot-specific launch files (robot / sim / bag replay) include this one with arguments.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("moe_vla_ros")
    args = [
        DeclareLaunchArgument("policy_config", default_value=PathJoinSubstitution([share, "config", "policy.yaml"]),
                              description="Generic policy parameters."),
        DeclareLaunchArgument("robot_config",
                              default_value=PathJoinSubstitution([share, "config", "robots", "sim_arm.yaml"]),
                              description="Per-robot parameters: joints, limits, topics."),
        DeclareLaunchArgument("model_path", default_value="", description="Model folder (empty: bundled default)."),
        DeclareLaunchArgument("backend", default_value="onnxruntime", description="onnxruntime or torch."),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="Follow /clock."),
        DeclareLaunchArgument("autostart", default_value="true", description="Configure + activate on start."),
        DeclareLaunchArgument("namespace", default_value="", description="Node namespace."),
    ]
    policy = LifecycleNode(
        package="moe_vla_ros",
        executable="policy_node",
        name="policy_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("policy_config"),
            LaunchConfiguration("robot_config"),
            {
                "model.path": LaunchConfiguration("model_path"),
                "model.backend": LaunchConfiguration("backend"),
                "use_sim_time": LaunchConfiguration("use_sim_time"),
                "autostart": LaunchConfiguration("autostart"),
            },
        ],
    )
    return LaunchDescription([*args, policy])
