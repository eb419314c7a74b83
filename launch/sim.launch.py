"""Closed loop in the MuJoCo stand-in simulator: sim_node (cameras, joint_states, /clock,
a joint_trajectory_controller-like follower) + the policy node on simulated time.

    ros2 launch moe_vla_ros sim.launch.py instruction:="reach the red cube"

For Gazebo or Isaac Sim with ros2_control, launch the simulator your usual way and use
robot.launch.py with config/robots/gazebo_arm.yaml or config/robots/isaac_arm.yaml instead.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("moe_vla_ros")
    sim = Node(
        package="moe_vla_ros",
        executable="sim_node",
        name="sim_node",
        output="screen",
        parameters=[
            PathJoinSubstitution([share, "config", "sim.yaml"]),
            {"seed": LaunchConfiguration("seed"), "instruction": LaunchConfiguration("instruction")},
        ],
    )
    policy = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "policy.launch.py"])),
        launch_arguments={
            "robot_config": PathJoinSubstitution([share, "config", "robots", "sim_arm.yaml"]),
            "model_path": LaunchConfiguration("model_path"),
            "use_sim_time": "true",
            "autostart": "true",
        }.items(),
    )
    return LaunchDescription([
        DeclareLaunchArgument("seed", default_value="0", description="Scene randomisation seed."),
        DeclareLaunchArgument("instruction", default_value="reach the red cube",
                              description="Instruction the simulator publishes (latched) on /instruction."),
        DeclareLaunchArgument("model_path", default_value="", description="Model folder (empty: bundled default)."),
        sim,
        policy,
    ])
