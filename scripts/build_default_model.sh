#!/usr/bin/env bash
# Rebuild the bundled default model (models/default/) from scratch, reproducibly:
#   1. 1716 scripted-expert demonstrations (reach, push, lift: 572 each) in the MuJoCo sim, seed 1;
#      each step records the target cube's position for the target probe,
#   2. train the `small` MoE-VLA with the frozen ImageNet EfficientNet-Lite0 encoder and the
#      target probe feeding the trunk (trunk.target_input): 3000 dense warm-up steps, upcycle,
#      500 MoE-tuning steps, seed 0, episode starts drawn 4x as often,
#   3. 1200 noise-injected demonstrations (seed 2, executed arm targets perturbed by a smooth
#      0.03 rad offset while approaching, recorded actions the expert's: they show corrections
#      back to the path; pushes and lifts themselves clean),
#   4. fine-tune 2. on 3. for 1500 MoE steps (stage 3 only, peak lr 5e-4),
#      then 3. and 4. once more (seed 3, from the model of 4.; MODEL_FINETUNE_ROUNDS, default 2),
#   5. a push-weighted round: 1200 noise-injected demonstrations of reach, push, push, lift in turn
#      (seed 5: 300 / 600 / 300) and 4. on them from the model of the last round
#      (MODEL_PUSH_ROUND=0 skips it; its words new to the first tokenizer are learned here),
#   6. export to ONNX (sparse CPU + dense TensorRT-ready expert graphs), verified,
#   7. evaluate closed loop through the policy node on 120 held-out seeds (40 per task).
# Takes ~3 h on 2 CPU cores (training ~45 + 3 x ~30 min with one thread). Intermediate files go to
# build/default_model/; run it again after an interruption: finished steps are skipped, cut-short
# demonstrations are generated again and a training goes on from its last saved state (every 250 steps).
# A candidate recipe builds elsewhere from the environment (defaults: the bundled recipe above):
#   MODEL_WORK (build/default_model) MODEL_OUT (models/default) MODEL_TASKS (reach,push,lift)
#   MODEL_DEMOS (1716) MODEL_NOISY_DEMOS (1200) MODEL_EVAL_EPISODES (120, seeds 10000+)
#   MODEL_NOISE_PHASES (approaches; set it empty for noise in every phase) MODEL_FINETUNE_ROUNDS (2)
#   MODEL_PUSH_ROUND (1: step 5; 0: none)
#   MODEL_DEMO_WORKERS (the CPU count: simulator processes generating demonstrations; the data do not depend on it)
# e.g. the previous bundled model (reach + push, noise everywhere): MODEL_WORK=build/model_reach_push
#   MODEL_OUT=build/model_reach_push/model MODEL_TASKS=reach,push MODEL_DEMOS=1144 MODEL_NOISY_DEMOS=800
#   MODEL_NOISE_PHASES= MODEL_FINETUNE_ROUNDS=1 MODEL_PUSH_ROUND=0 MODEL_EVAL_EPISODES=40 bash scripts/build_default_model.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${MOE_VLA_VENV:-$repo/.venv}/bin"
work="$repo/${MODEL_WORK:-build/default_model}"
out="$repo/${MODEL_OUT:-models/default}"
tasks="${MODEL_TASKS:-reach,push,lift}"
cd "$repo"
mkdir -p "$work"
# demos NAME ARGS...: generate $work/NAME unless a finished dataset is there (meta.json "complete";
# a generation that was cut short is removed and started again)
demos() {
  local name="$1"; shift
  if "$bin/python" -c 'import sys; from moe_vla_ros.data.dataset import DemoDataset as D; sys.exit(not D(sys.argv[1]).complete)' \
      "$work/$name" 2>/dev/null; then
    return 0
  fi
  rm -rf "${work:?}/$name"
  "$bin/moe_vla_generate_demos" --out "$work/$name" --workers "${MODEL_DEMO_WORKERS:-$(nproc)}" "$@"
}
demos demos --episodes "${MODEL_DEMOS:-1716}" --seed 1 --tasks "$tasks"
[ -f "$work/train/model.safetensors" ] || "$bin/moe_vla_train" --dataset "$work/demos" --out "$work/train" \
  --preset small --config '{"vision": {"backbone": "efficientnet_lite0", "freeze_backbone": true},
                            "trunk": {"target_input": true}}' \
  --seed 0 --dense-steps 3000 --moe-steps 500 --batch-size 32 --eval-every 500 --image-shift 0 \
  --start-oversampling 4 --start-steps 3 --num-threads 1 --save-every 250 --resume --feature-cache "$work/backbone_features"
noise_phases=()
noise_phases_env="${MODEL_NOISE_PHASES-approaches}"  # unset: approaches; empty: every phase
[ -z "$noise_phases_env" ] || noise_phases=(--noise-phases "$noise_phases_env")
# finetune DATA OUT: step 4 on $work/DATA from $model into $work/OUT (skipped when done); $model becomes it
finetune() {
  [ -f "$work/$2/model.safetensors" ] || "$bin/moe_vla_train" --dataset "$work/$1" \
    --out "$work/$2" --init-checkpoint "$model" --dense-steps 0 --moe-steps 1500 --moe-lr 5e-4 \
    --seed 0 --batch-size 32 --eval-every 250 --image-shift 0 --start-oversampling 4 --start-steps 3 --num-threads 1 \
    --save-every 250 --resume --feature-cache "$work/backbone_features"
  model="$work/$2"
}
# fine-tuning rounds: round r trains on fresh noise-injected demonstrations (seed r + 1) from the
# model of round r - 1; folders demos_noisy, finetuned (round 1), demos_noisy2, finetuned2, ...
model="$work/train"
for round in $(seq 1 "${MODEL_FINETUNE_ROUNDS:-2}"); do
  suffix=""; [ "$round" = 1 ] || suffix="$round"
  demos "demos_noisy$suffix" --episodes "${MODEL_NOISY_DEMOS:-1200}" --seed $((round + 1)) --tasks "$tasks" \
    --execution-noise 0.03 "${noise_phases[@]}"
  finetune "demos_noisy$suffix" "finetuned$suffix"
done
# the push-weighted round: the task families in turn, push twice (generate_demos cycles --tasks)
if [ "${MODEL_PUSH_ROUND:-1}" = 1 ]; then
  weighted="${tasks/push/push,push}"
  demos demos_push --episodes "${MODEL_NOISY_DEMOS:-1200}" --seed 5 --tasks "$weighted" \
    --execution-noise 0.03 "${noise_phases[@]}"
  finetune demos_push finetuned_push
fi
"$bin/moe_vla_export" --checkpoint "$model" --out "$out" --name default \
  --formulations sparse,dense --no-checkpoint --force
"$bin/moe_vla_eval_sim" --model "$out" --episodes "${MODEL_EVAL_EPISODES:-120}" --tasks "$tasks" --out "$work/eval"
