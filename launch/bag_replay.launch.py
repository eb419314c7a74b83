"""Replay a rosbag2 recording through the real policy node on simulated time and record what it
publishes.

    ros2 launch moe_vla_ros bag_replay.launch.py bag:=/path/to/bag output:=/path/to/out_bag rate:=1.0

With namespace:=robot1 the policy node, player and recorder run in /robot1: the bag's topics are
played under /robot1 (a topic already under /robot1 stays as it is; /clock, /tf, /tf_static and
/diagnostics stay global) and the recorder records the node's outputs under /robot1. The node's
own outputs found in the bag (a recording of an earlier run) are not played. The player waits
(wait_timeout) for the node's input subscriptions, i.e. until the node has loaded its model, and
for the recorder's subscriptions to the node's outputs, so the first replies are recorded too.
When the bag has been played the launch ends (shutdown_at_end:=false keeps the node running) and
the recorder closes the output bag.
"""

from launch.actions import DeclareLaunchArgument, EmitEvent, IncludeLaunchDescription, OpaqueFunction, RegisterEventHandler
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

GLOBAL_TOPICS = ("/clock", "/diagnostics", "/tf", "/tf_static", "/rosout", "/parameter_events")


def in_namespace(topic: str, namespace: str) -> str:
    """`topic` (fully qualified) moved under `namespace`, unless global or already there."""
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    if not ns or topic in GLOBAL_TOPICS or topic.startswith(ns + "/"):
        return topic
    return ns + topic


def _node_outputs(params_files: list[str], namespace: str) -> list[str]:
    """Fully qualified output topics of the policy node in `namespace` with `params_files`, as the
    node spec resolves them (evaluation/bag/replay.py OUTPUTS names the output roles)."""
    from moe_vla_ros.evaluation.bag.replay import OUTPUTS
    from moe_vla_ros.spec.policy_node import PolicyNodeConfig

    topics = PolicyNodeConfig.from_params_files(params_files, namespace=namespace or "/").topics
    return [topics.resolved(role, namespace or "/") for role in OUTPUTS]


def _player_and_recorder(context) -> list:
    from moe_vla_ros.bags.reader import BagReader

    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    namespace = arg("namespace")
    with BagReader(arg("bag")) as reader:
        bag_topics = list(reader.topics)
    # The node's own outputs in the bag (a recording of a run) are not played: the node publishes
    # them. The player waits until the node subscribes to what it plays (the model is loaded) and
    # the recorder to the node's outputs (nothing the node publishes in reply is lost).
    outputs = _node_outputs([arg("policy_config"), arg("robot_config"), _replay_config(context)], namespace)
    played = [t for t in bag_topics if t not in outputs and in_namespace(t, namespace) not in outputs]
    remap = [f"{t}:={in_namespace(t, namespace)}" for t in played if in_namespace(t, namespace) != t]
    recorder = in_namespace("/bag_recorder", namespace)
    player_args = [arg("bag"), "--rate", arg("rate"), "--wait-timeout", arg("wait_timeout"), "--topics", *played,
                   "--wait-for-reader", recorder, "--reader-topics", *outputs]
    player_args += ["--remap", *remap] if remap else []
    player = Node(package="moe_vla_ros", executable="moe_vla_bag_play", name="bag_player", namespace=namespace,
                  output="screen", arguments=player_args)
    actions = [
        Node(package="moe_vla_ros", executable="moe_vla_bag_record", name="bag_recorder", namespace=namespace,
             output="screen",
             arguments=["--out", arg("output"), "--storage", arg("storage"), "--topics", *outputs, "/diagnostics"]),
        player,
    ]
    # the recorder closes its bag on the shutdown's SIGINT
    actions.append(RegisterEventHandler(OnProcessExit(
        target_action=player,
        on_exit=lambda event, _context: [EmitEvent(event=Shutdown(
            reason=f"bag played (player exit code {event.returncode})"))],
    ), condition=IfCondition(LaunchConfiguration("shutdown_at_end"))))
    return actions


def _replay_config(context=None):
    """config/bag_replay.yaml, the node's extra parameter file here (a path when `context` is given)."""
    path = PathJoinSubstitution([FindPackageShare("moe_vla_ros"), "config", "bag_replay.yaml"])
    return path.perform(context) if context is not None else path


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("moe_vla_ros")
    policy = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "policy.launch.py"])),
        launch_arguments={
            "policy_config": LaunchConfiguration("policy_config"),
            "robot_config": LaunchConfiguration("robot_config"),
            # the bag's joint states follow the recorded commands: no tracking/frozen checks
            "extra_config": _replay_config(),
            "model_path": LaunchConfiguration("model_path"),
            "use_sim_time": "true",
            "autostart": "true",
            "namespace": LaunchConfiguration("namespace"),
        }.items(),
    )
    return LaunchDescription([
        DeclareLaunchArgument("bag", description="Bag to replay (ours or a robot's, standard messages)."),
        DeclareLaunchArgument("output", description="New bag for what the node publishes (never overwritten)."),
        DeclareLaunchArgument("storage", default_value="mcap", description="mcap or sqlite3."),
        DeclareLaunchArgument("rate", default_value="1.0", description="Playback rate (1 real time)."),
        DeclareLaunchArgument("wait_timeout", default_value="60",
                              description="Seconds the player waits for the node's subscriptions (model loading)."),
        DeclareLaunchArgument("policy_config", default_value=PathJoinSubstitution([share, "config", "policy.yaml"]),
                              description="Generic policy parameters."),
        DeclareLaunchArgument("robot_config",
                              default_value=PathJoinSubstitution([share, "config", "robots", "sim_arm.yaml"]),
                              description="Per-robot parameters matching the bag's topics."),
        DeclareLaunchArgument("model_path", default_value="",
                              description="Model folder (empty: the config files' model.path, else the bundled model)."),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the replay (e.g. robot1)."),
        DeclareLaunchArgument("shutdown_at_end", default_value="true",
                              description="End the launch (node, recorder) when the player is done."),
        policy,
        OpaqueFunction(function=_player_and_recorder),
    ])
