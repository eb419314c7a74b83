"""Replay a rosbag2 recording through the real policy node on simulated time and record what it
publishes.

    ros2 launch moe_vla_ros bag_replay.launch.py bag:=/path/to/bag output:=/path/to/out_bag rate:=1.0
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("moe_vla_ros")
    policy = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "policy.launch.py"])),
        launch_arguments={
            "robot_config": LaunchConfiguration("robot_config"),
            "model_path": LaunchConfiguration("model_path"),
            "use_sim_time": "true",
            "autostart": "true",
        }.items(),
    )
    recorder = Node(
        package="moe_vla_ros",
        executable="moe_vla_bag_record",
        name="bag_recorder",
        output="screen",
        arguments=["--output", LaunchConfiguration("output"), "--storage", LaunchConfiguration("storage")],
    )
    player = Node(
        package="moe_vla_ros",
        executable="moe_vla_bag_play",
        name="bag_player",
        output="screen",
        arguments=[LaunchConfiguration("bag"), "--rate", LaunchConfiguration("rate")],
    )
    return LaunchDescription([
        DeclareLaunchArgument("bag", description="Bag to replay (ours or a robot's, standard messages)."),
        DeclareLaunchArgument("output", description="New bag for what the node publishes (never overwritten)."),
        DeclareLaunchArgument("storage", default_value="mcap", description="mcap or sqlite3."),
        DeclareLaunchArgument("rate", default_value="1.0", description="Playback rate (1 real time)."),
        DeclareLaunchArgument("robot_config",
                              default_value=PathJoinSubstitution([share, "config", "robots", "sim_arm.yaml"]),
                              description="Per-robot parameters matching the bag's topics."),
        DeclareLaunchArgument("model_path", default_value="", description="Model folder (empty: bundled default)."),
        policy,
        recorder,
        player,
    ])
