"""`moe_vla_demo`: watch the bundled MoE-VLA policy work in the simulator, in one command.

    moe_vla_demo                       # 6 episodes (2 reach, 2 push, 2 lift) with the bundled model
    moe_vla_demo --episodes 10 --model models/my_model --tasks reach,push --out build/demo

Runs a short closed-loop evaluation (moe_vla_ros/ros/closed_loop_eval.py): the MuJoCo
simulator, the policy node as its own process driven through its lifecycle, the scripted
expert on the same scenes for comparison. Prints the success table and where the report,
the figures and the camera GIF were written.
"""

from __future__ import annotations

import sys

from moe_vla_ros.cli import add_output_argument, run_tool, tool_parser
from moe_vla_ros.errors import BadInputError
from moe_vla_ros.evaluation.records import EvaluationError
from moe_vla_ros.ros.closed_loop_eval import run_and_print
from moe_vla_ros.ros.closed_loop_eval_config import EvalConfig, parse_tasks

DEMO_EPISODES = 6  # the tasks in turn: 2 of each of reach, push, lift


PROG = "moe_vla_demo"


def main(argv: list[str] | None = None) -> int:
    """Exit 0 done, 2 bad arguments, 1 the evaluation failed, 130 interrupted."""
    return run_tool(PROG, lambda: _run(sys.argv[1:] if argv is None else argv))


def _run(argv: list[str]) -> int:
    parser = tool_parser(PROG, __doc__, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--model", default="", help="exported model folder (default: the bundled model)")
    parser.add_argument("--episodes", type=int, default=DEMO_EPISODES, help=f"episodes (default {DEMO_EPISODES})")
    tasks = ",".join(EvalConfig().tasks)
    parser.add_argument("--tasks", default=tasks, help=f"task families, comma-separated, taken in turn (default {tasks})")
    add_output_argument(parser, "output folder (default build/eval/<timestamp>)", required=False)
    args = parser.parse_args(argv)
    try:
        cfg = EvalConfig(model=args.model, episodes=args.episodes, tasks=parse_tasks(args.tasks),
                         out_dir=str(args.out or ""))
    except EvaluationError as e:  # the configuration names the bad value
        raise BadInputError(str(e)) from e
    print(f"{PROG}: {cfg.episodes} episodes ({', '.join(cfg.tasks)}) in the simulator through the policy node ...",
          file=sys.stderr)
    return run_and_print(cfg)


if __name__ == "__main__":
    sys.exit(main())
