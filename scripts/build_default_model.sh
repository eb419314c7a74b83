#!/usr/bin/env bash
# Rebuild the bundled default model (models/default/) from scratch, reproducibly:
#   1. 400 scripted-expert demonstrations (reach + push) in the MuJoCo sim, seed 1,
#   2. train the `small` MoE-VLA with the frozen ImageNet EfficientNet-Lite0 encoder: 2000 dense
#      warm-up steps, upcycle, 800 MoE-tuning steps, seed 0 (no image shift: the bundled recipe),
#   3. export to ONNX (sparse CPU + dense TensorRT-ready expert graphs, gated int8), verified,
#   4. evaluate closed loop through the policy node on held-out seeds.
# Takes ~45 min on 2 CPU cores (training ~40 min at ~1.2 steps/s with one thread). Intermediate files go to build/default_model/.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${MOE_VLA_VENV:-$repo/.venv}/bin"
work="$repo/build/default_model"
cd "$repo"
mkdir -p "$work"
[ -d "$work/demos" ] || "$bin/moe_vla_generate_demos" --out "$work/demos" --episodes 400 --seed 1 --tasks reach,push
[ -f "$work/train/model.safetensors" ] || "$bin/moe_vla_train" --dataset "$work/demos" --out "$work/train" \
  --preset small --config '{"vision": {"backbone": "efficientnet_lite0", "freeze_backbone": true}}' \
  --seed 0 --dense-steps 2000 --moe-steps 800 --batch-size 32 --eval-every 400 --image-shift 0 --num-threads 1
"$bin/moe_vla_export" --checkpoint "$work/train" --out "$repo/models/default" --name default \
  --formulations sparse,dense --int8 --no-checkpoint --force
"$bin/moe_vla_eval_sim" --model "$repo/models/default" --episodes 20 --tasks reach,push --out "$work/eval"
