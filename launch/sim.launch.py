"""Closed loop in the MuJoCo stand-in simulator: sim_node (cameras, joint_states, /clock,
a joint_trajectory_controller-like follower) + the policy node on simulated time.

    ros2 launch moe_vla_ros sim.launch.py instruction:="reach the red cube"

The simulator republishes its instruction every second; change it with
`ros2 topic pub --once /instruction std_msgs/msg/String "data: reach the blue cube"` (the policy
follows the newest). With namespace:=robot1 both nodes live in /robot1 (one simulator per graph:
it publishes the global /clock).

For Gazebo or Isaac Sim with ros2_control, launch the simulator your usual way and use
robot.launch.py with config/robots/gazebo_arm.yaml or config/robots/isaac_arm.yaml instead.
"""

from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("moe_vla_ros")
    sim = Node(
        package="moe_vla_ros",
        executable="sim_node",
        name="sim_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("sim_config"),
            {
                "seed": ParameterValue(LaunchConfiguration("seed"), value_type=int),
                "instruction": ParameterValue(LaunchConfiguration("instruction"), value_type=str),
            },
        ],
    )
    policy = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "policy.launch.py"])),
        launch_arguments={
            "policy_config": LaunchConfiguration("policy_config"),
            "robot_config": LaunchConfiguration("robot_config"),
            "model_path": LaunchConfiguration("model_path"),
            "use_sim_time": "true",
            "autostart": "true",
            "namespace": LaunchConfiguration("namespace"),
        }.items(),
    )
    return LaunchDescription([
        DeclareLaunchArgument("seed", default_value="0", description="Scene randomisation seed."),
        DeclareLaunchArgument("instruction", default_value="reach the red cube",
                              description="Instruction the simulator publishes (and republishes) on instruction."),
        DeclareLaunchArgument("model_path", default_value="",
                              description="Model folder (empty: the config files' model.path, else the bundled model)."),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of both nodes (e.g. robot1)."),
        DeclareLaunchArgument("sim_config", default_value=PathJoinSubstitution([share, "config", "sim.yaml"]),
                              description="Simulator parameters."),
        DeclareLaunchArgument("policy_config", default_value=PathJoinSubstitution([share, "config", "policy.yaml"]),
                              description="Generic policy parameters."),
        DeclareLaunchArgument("robot_config",
                              default_value=PathJoinSubstitution([share, "config", "robots", "sim_arm.yaml"]),
                              description="Policy parameters of the simulated arm (topics match sim_config)."),
        sim,
        policy,
    ])
