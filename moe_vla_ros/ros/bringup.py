"""`moe_vla_bringup`: the node graph of the launch files, in one process, from the same config.

Runs what launch/*.launch.py start, from the same parameter files, without `launch`:

    moe_vla_bringup                                   # = policy.launch.py with config/robots/sim_arm.yaml
    moe_vla_bringup --sim --instruction "reach the red cube"      # = sim.launch.py
    moe_vla_bringup --robot-config my_robot.yaml --model models/x  # = robot.launch.py
    moe_vla_bringup --sim --record build/run_bag      # also record inputs and outputs (mcap)
    moe_vla_bringup --robot-config r1.yaml --ros-args -r __ns:=/robot1 -p safety.input_timeout_s:=1.0

Parameters, later wins (as ROS 2 applies repeated --params-file / -p): config/policy.yaml, the
robot file (and config/sim.yaml with --sim), then this command's options (--model, --backend,
--instruction, --seed, autostart on, use_sim_time with --sim / --use-sim-time), then your own
`--ros-args --params-file FILE -p name:=value`. The policy node's parameters are those of its
spec (moe_vla_ros/spec/policy_node.py). The policy node auto-activates as in the launch files.

Exit status: 0 when stopped (Ctrl-C / SIGTERM: the policy node's final hold first), 1 when a node
cannot start or the policy node cannot configure or activate, 2 for bad arguments, config files
or parameters (one line on stderr, `moe_vla_bringup: error: ...`), 130 when interrupted before
the nodes run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import yaml

from moe_vla_ros.cli import one_line, run_tool, tool_parser
from moe_vla_ros.errors import BadInputError, FailedError
from moe_vla_ros.param_files import load_params_file, nest_parameters
from moe_vla_ros.paths import find_share_file
from moe_vla_ros.spec.policy_node import BACKENDS, NODE_NAME, PolicyNodeConfig

PROG = "moe_vla_bringup"
POLICY_NODE = NODE_NAME
SIM_NODE = "sim_node"
GLOBAL_TOPICS = ("/clock", "/diagnostics", "/tf", "/tf_static", "/rosout", "/parameter_events")


class BringupError(BadInputError):
    """Bad arguments, config files or parameters (one line on stderr, exit 2)."""


class BringupFailed(FailedError):
    """A node could not start, or the policy node could not configure or activate (exit 1)."""


# What node constructors raise for parameters they refuse (bad input, exit 2); anything else a
# constructor raises means the node could not start (exit 1).
PARAMETER_ERRORS = (BadInputError, ValueError, TypeError)


def policy_parameters(args: argparse.Namespace) -> dict:
    """This command's own values for the policy node (they go after the config files)."""
    params: dict[str, Any] = {"autostart": True, "use_sim_time": bool(args.sim or args.use_sim_time)}
    if args.model:
        params["model.path"] = str(args.model)
    if args.backend:
        params["model.backend"] = args.backend
    if args.instruction and not args.sim:
        params["execution.default_instruction"] = args.instruction
    return params


def sim_parameters(args: argparse.Namespace) -> dict:
    """This command's own values for the simulator node (they go after config/sim.yaml)."""
    params: dict[str, Any] = {}
    if args.seed is not None:
        params["seed"] = args.seed
    if args.instruction:
        params["instruction"] = args.instruction
    return params


def policy_config(args: argparse.Namespace, ros_args: list[str] = (), namespace: str = "/") -> PolicyNodeConfig:
    """The policy node's settings as the process will build them (the spec's validation)."""
    return PolicyNodeConfig.from_params(effective_parameters(args, POLICY_NODE, ros_args, namespace))


def config_files(args: argparse.Namespace) -> list[Path]:
    """The parameter files, in the order they apply."""
    return [args.policy_config, args.robot_config, *([args.sim_config] if args.sim else [])]


def effective_parameters(args: argparse.Namespace, node: str, ros_args: list[str] = (), namespace: str = "/") -> dict:
    """Flat parameters the node `node` will get (files, this command's options, the user's
    --params-file / -p in order): what the process applies, for tests and inspection."""
    flat: dict[str, Any] = {}
    for path in config_files(args):
        flat.update(load_params_file(path, node, namespace))
    flat.update(policy_parameters(args) if node == POLICY_NODE else sim_parameters(args))
    items = _ros_param_items(ros_args)
    for kind, value in items:
        if kind == "file":
            flat.update(load_params_file(value, node, namespace))
        else:
            name, _, text = value.partition(":=")
            flat[name] = yaml.safe_load(text)
    return flat


def _ros_param_items(argv: list[str]) -> list[tuple[str, str]]:
    """("file", path) / ("param", "name:=value") of the --params-file / -p options inside the
    --ros-args sections of `argv`, in order."""
    items, inside, i = [], False, 0
    while i < len(argv):
        a = argv[i]
        if a == "--ros-args":
            inside = True
        elif a == "--":
            inside = False
        elif inside and a == "--params-file" and i + 1 < len(argv):
            items.append(("file", argv[i + 1]))
            i += 1
        elif inside and a in ("-p", "--param") and i + 1 < len(argv):
            items.append(("param", argv[i + 1]))
            i += 1
        i += 1
    return items


def _options_file(args: argparse.Namespace) -> Path:
    """A temporary params file with this command's own values (rcl reads it in rclpy.init)."""
    doc = {f"/**/{POLICY_NODE}": {"ros__parameters": nest_parameters(policy_parameters(args))}}
    if args.sim and sim_parameters(args):
        doc[f"/**/{SIM_NODE}"] = {"ros__parameters": nest_parameters(sim_parameters(args))}
    fd, name = tempfile.mkstemp(prefix="moe_vla_bringup_", suffix=".yaml")
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(doc, fh)
    return Path(name)


def check_user_params_files(user_argv: list[str]) -> None:
    """BringupError naming the file when a --params-file of the user's --ros-args cannot be read."""
    _check_files([v for k, v in _ros_param_items(user_argv) if k == "file"])


def check_config_files(args: argparse.Namespace, user_argv: list[str]) -> None:
    """BringupError naming the file when a config file (ours or a user --params-file) cannot be read."""
    _check_files([*config_files(args), *(v for k, v in _ros_param_items(user_argv) if k == "file")])


def _check_files(paths) -> None:
    for path in paths:
        try:
            load_params_file(path, POLICY_NODE)
        except OSError as e:
            raise BringupError(f"cannot read config file {path}: {e.strerror or e}") from None
        except (yaml.YAMLError, ValueError) as e:
            raise BringupError(f"invalid config file {path}: {one_line(e)}") from None


def ros_arguments(args: argparse.Namespace, options_file: Path, user_argv: list[str]) -> list[str]:
    """rclpy.init's args: our files and options first, then everything the user gave (later wins)."""
    ours = ["--ros-args"]
    for path in [*config_files(args), options_file]:
        ours += ["--params-file", str(path)]
    return [PROG, *ours, "--", *user_argv]


def namespaced(topic: str, namespace: str) -> str:
    """Fully qualified `topic` moved under `namespace` (global topics stay)."""
    ns = namespace.rstrip("/")
    if not ns or topic in GLOBAL_TOPICS or topic.startswith(ns + "/"):
        return topic
    return ns + topic


class SimThread(threading.Thread):
    """Creates the simulator node in a thread of its own and spins it there with
    `spin.spin_until_shutdown` (its OpenGL context works only in the thread that created it, so it
    cannot share the policy node's executor; outside the main thread no signal handling is
    installed). `error` is set when the node cannot be created."""

    def __init__(self) -> None:
        super().__init__(name=SIM_NODE, daemon=True)
        self.node = None
        self.error: BaseException | None = None
        self.ready = threading.Event()

    def run(self) -> None:
        from moe_vla_ros.ros.sim_node import SimNode
        from moe_vla_ros.ros.spin import spin_until_shutdown

        try:
            self.node = SimNode()
        except Exception as e:
            self.error = e
            return
        finally:
            self.ready.set()
        spin_until_shutdown(self.node)  # ends on stop() (exit_requested) or an rclpy shutdown; destroys the node

    def stop(self) -> None:
        if self.node is not None:
            self.node.exit_requested = True
        self.join(timeout=10)


def _start_error(node: str, error: BaseException) -> Exception:
    """The error that ends the bringup when `node` cannot be created."""
    text = f"{node} cannot start: {type(error).__name__}: {one_line(error)}"
    return BringupError(text) if isinstance(error, PARAMETER_ERRORS) else BringupFailed(text)


def build_parser() -> argparse.ArgumentParser:
    p = tool_parser(PROG, __doc__, epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--policy-config", type=Path, default=None, help="generic policy parameters (config/policy.yaml)")
    p.add_argument("--robot-config", type=Path, default=None,
                   help="per-robot parameters (default config/robots/sim_arm.yaml)")
    p.add_argument("--model", type=Path, default=None, help="model folder (default: the config's, else bundled)")
    p.add_argument("--backend", choices=BACKENDS, default=None)
    p.add_argument("--sim", action="store_true", help="also run the MuJoCo simulator node (config/sim.yaml)")
    p.add_argument("--sim-config", type=Path, default=None, help="simulator parameters (config/sim.yaml)")
    p.add_argument("--seed", type=int, default=None, help="simulator scene seed (default: the sim config's)")
    p.add_argument("--instruction", default="", help="instruction (published by the simulator, else the default)")
    p.add_argument("--use-sim-time", action="store_true", help="policy follows /clock (bag replay)")
    p.add_argument("--record", type=Path, default=None, help="record inputs and outputs into this new bag")
    return p


def resolve_config_paths(args: argparse.Namespace) -> argparse.Namespace:
    """Default config files from the package's share folder (BringupError when not found)."""
    try:
        args.policy_config = args.policy_config or find_share_file("config", "policy.yaml")
        args.robot_config = args.robot_config or find_share_file("config", "robots", "sim_arm.yaml")
        args.sim_config = args.sim_config or find_share_file("config", "sim.yaml")
    except FileNotFoundError as e:
        raise BringupError(str(e)) from None
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    return run_tool(PROG, lambda: _run(argv))


def _run(argv: list[str]) -> int:
    from rclpy.utilities import remove_ros_args

    check_user_params_files(argv)  # before rcl parses them (remove_ros_args does)
    try:
        non_ros = remove_ros_args([PROG, *argv])[1:]
    except Exception as e:
        raise BringupError(f"invalid ROS arguments: {one_line(e)}") from None
    args = build_parser().parse_args(non_ros)
    resolve_config_paths(args)
    check_config_files(args, argv)

    from moe_vla_ros.ros.spin import init_process, spin_until_shutdown

    options_file = _options_file(args)
    try:
        init_process(ros_arguments(args, options_file, argv))
    except Exception as e:
        raise BringupError(f"cannot start ROS: {one_line(e)}") from None
    finally:
        options_file.unlink(missing_ok=True)  # parsed by rclpy.init

    import rclpy

    from moe_vla_ros.ros.policy_node import PolicyNode

    sim_thread = None
    try:
        if args.sim:
            sim_thread = SimThread()
            sim_thread.start()
            sim_thread.ready.wait()
            if sim_thread.error is not None:
                raise _start_error(SIM_NODE, sim_thread.error)
        try:
            policy = PolicyNode()
        except Exception as e:
            raise _start_error(POLICY_NODE, e) from None
    except (BringupError, BringupFailed):
        if sim_thread is not None:
            sim_thread.stop()
        rclpy.try_shutdown()
        raise
    nodes = [policy]
    if args.record:
        from moe_vla_ros.ros.bag_recorder import DEFAULT_TOPICS, BagRecorder, RecorderConfig

        topics = tuple(dict.fromkeys(namespaced(t, policy.get_namespace()) for t in DEFAULT_TOPICS))
        nodes.append(BagRecorder(RecorderConfig(output=args.record, topics=topics)))
    # Ctrl-C/SIGTERM: the policy node's final hold first; the recorder finishes its bag when
    # destroyed; the simulator stops last, before rclpy shuts down.
    spin_until_shutdown(*nodes, before_shutdown=sim_thread.stop if sim_thread is not None else None)
    if policy.exit_code:
        raise BringupFailed(f"policy_node could not start: {policy.configure_error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
