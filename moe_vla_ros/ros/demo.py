"""`moe_vla_demo`: watch the bundled MoE-VLA policy work in the simulator, in one command.

    moe_vla_demo                       # 6 episodes (3 reach + 3 push) with the bundled model
    moe_vla_demo --episodes 10 --model models/my_model --out build/demo

Runs a short closed-loop evaluation (moe_vla_ros/ros/closed_loop_eval.py): the MuJoCo
simulator, the policy node as its own process driven through its lifecycle, the scripted
expert on the same scenes for comparison. Prints the success table and where the report,
the figures and the camera GIF were written.
"""

from __future__ import annotations

import argparse
import sys

from moe_vla_ros.evaluation.records import EvaluationError
from moe_vla_ros.ros.closed_loop_eval import run_and_print
from moe_vla_ros.ros.closed_loop_eval_config import EvalConfig

DEMO_EPISODES = 6  # alternating reach / push: 3 of each


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="moe_vla_demo", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])  # fmt: skip
    parser.add_argument("--model", default="", help="exported model folder (default: the bundled model)")
    parser.add_argument("--episodes", type=int, default=DEMO_EPISODES, help=f"episodes (default {DEMO_EPISODES})")
    parser.add_argument("--out", default="", help="output folder (default build/eval/<timestamp>)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        cfg = EvalConfig(model=args.model, episodes=args.episodes, tasks=("reach", "push"), out_dir=args.out)
    except EvaluationError as e:
        print(f"moe_vla_demo: {e}", file=sys.stderr)
        return 2
    print(f"moe_vla_demo: {cfg.episodes} episodes (reach, push) in the simulator through the policy node ...",
          file=sys.stderr)
    return run_and_print(cfg)


if __name__ == "__main__":
    sys.exit(main())
