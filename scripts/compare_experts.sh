#!/usr/bin/env bash
# Do the experts earn their place? Train (a) the MoE recipe, (b) a dense model of equal ACTIVE
# parameters and (c) a dense model of equal TOTAL parameters on the same demonstrations with the
# same seed and steps, export them, evaluate each closed loop through the policy node on two
# held-out seed blocks, measure their ONNX Runtime latency in the same run and write a report
# (report.json, report.md, success/latency/expert-usage plots): moe_vla_ros/evaluation/compare_experts.py.
# Reduced from the bundled recipe to fit 2 CPU cores (reach only, fewer demos and steps); sizes
# come from the environment:
#   COMPARE_WORK (build/moe_vs_dense) COMPARE_DEMOS (400) COMPARE_TASKS (reach)
#   COMPARE_DENSE_STEPS (360) COMPARE_MOE_STEPS (120) COMPARE_EVAL_EVERY (240)
#   COMPARE_EPISODES (40 per seed block and arm) COMPARE_SEED_BLOCKS (10000,20000)
#   COMPARE_PARALLEL (3 trainings at once) COMPARE_ARGS (more options of the module)
# A step whose output exists is skipped (delete it to redo it). The code under test is a snapshot
# of the committed moe_vla_ros/ (git archive HEAD, in $COMPARE_WORK/src) so that edits made during
# the run do not reach it; COMPARE_WORKTREE_CODE=1 uses the working tree instead.
# Progress: $COMPARE_WORK/run.log; each tool's log in $COMPARE_WORK/logs/.
# The recorded run (models/default/README.md) took ~90 min on 2 shared cores: trainings 72 min at
# once, exports ~1-2 min, 6 x 20 closed-loop episodes ~13 min (COMPARE_EPISODES=20).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${MOE_VLA_VENV:-$repo/.venv}/bin/python"
cd "$repo"
work="${COMPARE_WORK:-build/moe_vs_dense}"
mkdir -p "$work"
if [ -z "${COMPARE_WORKTREE_CODE:-}" ]; then
  source "$repo/scripts/code_snapshot.sh"
  use_code_snapshot "$repo" "$work"
  echo "[compare] code: moe_vla_ros at $SNAPSHOT_COMMIT" | tee -a "$work/run.log"
fi
# shellcheck disable=SC2086
nice -n 10 "$py" -m moe_vla_ros.evaluation.compare_experts --out "$work" \
  --demos "${COMPARE_DEMOS:-400}" --demo-seed 7 --tasks "${COMPARE_TASKS:-reach}" \
  --dense-steps "${COMPARE_DENSE_STEPS:-360}" --moe-steps "${COMPARE_MOE_STEPS:-120}" \
  --eval-every "${COMPARE_EVAL_EVERY:-240}" --episodes "${COMPARE_EPISODES:-40}" \
  --seed-blocks "${COMPARE_SEED_BLOCKS:-10000,20000}" --parallel-trainings "${COMPARE_PARALLEL:-3}" \
  ${COMPARE_ARGS:-} 2>&1 | tee -a "$work/run.log"
