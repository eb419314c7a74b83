"""Generic launch of the MoE-VLA policy node for any robot.

    ros2 launch moe_vla_ros policy.launch.py robot_config:=<path to config/robots/*.yaml> \
        model_path:=<model folder> use_sim_time:=false autostart:=true namespace:=robot1

Robot-specific launch files (robot / sim / bag replay) include this one with arguments.
Parameters: policy_config, then robot_config, then extra_config (if any), then the arguments
given here (model_path and backend only when not empty, so a robot file's model.path / model.backend stay otherwise).
Topic names are relative: in namespace `robot1` the node reads /robot1/joint_states, etc.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def _truth(text: str) -> bool:
    if text.strip().lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"expected true or false, got {text!r}")
    return text.strip().lower() in ("true", "1")


def _policy_node(context) -> list:
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    overrides = {"use_sim_time": _truth(arg("use_sim_time")), "autostart": _truth(arg("autostart"))}
    if arg("model_path"):
        overrides["model.path"] = arg("model_path")
    if arg("backend"):
        overrides["model.backend"] = arg("backend")
    return [LifecycleNode(
        package="moe_vla_ros",
        executable="policy_node",
        name="policy_node",
        namespace=arg("namespace"),
        output="screen",
        parameters=[arg("policy_config"), arg("robot_config"), *filter(None, [arg("extra_config")]), overrides],
    )]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("moe_vla_ros")
    return LaunchDescription([
        DeclareLaunchArgument("policy_config", default_value=PathJoinSubstitution([share, "config", "policy.yaml"]),
                              description="Generic policy parameters."),
        DeclareLaunchArgument("robot_config",
                              default_value=PathJoinSubstitution([share, "config", "robots", "sim_arm.yaml"]),
                              description="Per-robot parameters: joints, limits, topics."),
        DeclareLaunchArgument("extra_config", default_value="",
                              description="Another parameter file, applied after robot_config (empty: none)."),
        DeclareLaunchArgument("model_path", default_value="",
                              description="Model folder (empty: the config files' model.path, else the bundled model)."),
        DeclareLaunchArgument("backend", default_value="",
                              description="onnxruntime or torch (empty: the config files' model.backend)."),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="Follow /clock."),
        DeclareLaunchArgument("autostart", default_value="true", description="Configure + activate on start."),
        DeclareLaunchArgument("namespace", default_value="", description="Node namespace (e.g. robot1)."),
        OpaqueFunction(function=_policy_node),
    ])
