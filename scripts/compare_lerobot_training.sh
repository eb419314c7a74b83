#!/usr/bin/env bash
# Does training from a LeRobot-format copy of our demonstrations give the same policy as training
# from the npz original? Reproducible comparison, reduced from the bundled recipe to fit 2 CPU cores:
#   1. scripted-expert demonstrations (reach only, fixed seed) in the MuJoCo sim,
#   2. `moe_vla_to_lerobot` -> LeRobotDataset v3.0 (mp4 video; default AV1 / libsvtav1, crf 30,
#      g=2, yuv420p, as LeRobot encodes; see PARITY_PIX_FMT below), and the round trip measured:
#      decoded video frames vs the npz images (mean/p99/max abs pixel error), joints/actions/
#      targets/instructions compared exactly,
#   3. model A trained from the npz folder, model B from the LeRobot folder: the bundled recipe's
#      settings (frozen ImageNet EfficientNet-Lite0, target probe + trunk.target_input, episode
#      starts oversampled 4x) with fewer steps, same seed; both at once under `nice -n 10`, one
#      torch thread each,
#   4. both exported (sparse expert graphs, fp32, no checkpoint copy),
#   5. both evaluated closed loop through the policy node, one after the other, on the SAME
#      held-out scene seeds (not training seeds),
#   6. each model evaluated offline on the held-out demos both as npz images and as decoded video,
#   7. report: success per model with a 95 % Wilson interval, two-proportion z-test, Fisher's
#      exact test, paired (same seeds) exact McNemar test, training metrics side by side, wall
#      times; written to build/lerobot_parity/report.json and printed.
# A step is skipped when its output exists (delete it to redo it). Sizes come from the environment:
#   PARITY_DEMOS (200) PARITY_DEMO_SEED (7) PARITY_DENSE_STEPS (600) PARITY_MOE_STEPS (200)
#   PARITY_EVAL_EVERY (200) PARITY_EVAL_EPISODES (40) PARITY_EVAL_SEED (10000) PARITY_SEED (0)
#   PARITY_WORK (build/lerobot_parity)
# and the LeRobot copy's video encoding (moe_vla_to_lerobot --vcodec/--crf/--gop/--pix-fmt; defaults
# LeRobot's): PARITY_VCODEC (libsvtav1) PARITY_CRF (30) PARITY_GOP (2) PARITY_PIX_FMT (yuv420p);
# yuv444p (full-resolution colour) needs PARITY_VCODEC=h264 or hevc, e.g.
#   PARITY_WORK=build/lerobot_parity_yuv444p PARITY_VCODEC=h264 PARITY_CRF=23 PARITY_PIX_FMT=yuv444p \
#     bash scripts/compare_lerobot_training.sh
# e.g. a smoke run: PARITY_WORK=build/lerobot_parity_smoke PARITY_DEMOS=6 PARITY_DENSE_STEPS=20
#   PARITY_MOE_STEPS=10 PARITY_EVAL_EVERY=10 PARITY_EVAL_EPISODES=2 bash scripts/compare_lerobot_training.sh
# The defaults take ~50 min on 2 CPU cores (training ~30 min for both at once, evaluation ~2 x 5 min).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${MOE_VLA_VENV:-$repo/.venv}/bin"
cd "$repo"
work="${PARITY_WORK:-build/lerobot_parity}"
demos="${PARITY_DEMOS:-200}"
demo_seed="${PARITY_DEMO_SEED:-7}"
dense_steps="${PARITY_DENSE_STEPS:-600}"
moe_steps="${PARITY_MOE_STEPS:-200}"
eval_every="${PARITY_EVAL_EVERY:-200}"
eval_episodes="${PARITY_EVAL_EPISODES:-40}"
eval_seed="${PARITY_EVAL_SEED:-10000}"
seed="${PARITY_SEED:-0}"
vcodec="${PARITY_VCODEC:-libsvtav1}"
crf="${PARITY_CRF:-30}"
gop="${PARITY_GOP:-2}"
pix_fmt="${PARITY_PIX_FMT:-yuv420p}"
mkdir -p "$work/times"
# The code under test is a snapshot of the committed HEAD (git archive of moe_vla_ros/): edits made
# in the working tree during the run do not reach the trainings, the export or the policy node.
# PARITY_WORKTREE_CODE=1 uses the working tree instead.
if [ -z "${PARITY_WORKTREE_CODE:-}" ]; then
  source "$repo/scripts/code_snapshot.sh"
  use_code_snapshot "$repo" "$work"
  echo "[parity] code: moe_vla_ros at commit $SNAPSHOT_COMMIT"
fi

# timed NAME CMD...: run CMD, record its wall time in $work/times/NAME.s
timed() {
  local name="$1" start end
  shift
  start=$(date +%s.%N)
  "$@"
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f\n", b - a }' > "$work/times/$name.s"
}

echo "[parity] $(date -u +%H:%M:%S) 1. demonstrations ($demos reach episodes, seed $demo_seed)"
[ -f "$work/demos/meta.json" ] || { rm -rf "$work/demos"; timed demos "$bin/moe_vla_generate_demos" --out "$work/demos" \
  --episodes "$demos" --seed "$demo_seed" --tasks reach --no-progress; }

echo "[parity] $(date -u +%H:%M:%S) 2. LeRobot copy (mp4, $vcodec crf $crf g $gop $pix_fmt)"
[ -f "$work/lerobot/meta/info.json" ] || { rm -rf "$work/lerobot"; timed convert "$bin/moe_vla_to_lerobot" "$work/demos" \
  -o "$work/lerobot" --vcodec "$vcodec" --crf "$crf" --gop "$gop" --pix-fmt "$pix_fmt" --no-progress; }
[ -f "$work/roundtrip.json" ] || timed roundtrip "$bin/python" - "$work" <<'EOF'
"""Decoded LeRobot episodes vs the npz episodes: pixels (codec loss), everything else exact."""
import json
import sys
from pathlib import Path

import numpy as np

from moe_vla_ros.data.dataset import DemoDataset
from moe_vla_ros.data.lerobot.reader import LeRobotDemoDataset

work = Path(sys.argv[1])
npz, lerobot = DemoDataset(work / "demos"), LeRobotDemoDataset(work / "lerobot")
assert len(npz) == len(lerobot), (len(npz), len(lerobot))
lerobot.contract.check_matches(npz.contract, what="LeRobot copy", against="npz dataset")
abs_sum, count, worst, hist = {}, {}, {}, {}
other = {"joint_position": 0.0, "action": 0.0, "target_position": 0.0}
same_text = True
for i in range(len(npz)):
    a, b = npz.episode(i), lerobot.episode(i)
    for cam in npz.contract.camera_names:
        d = np.abs(a.images[cam].astype(np.int16) - b.images[cam].astype(np.int16))
        abs_sum[cam] = abs_sum.get(cam, 0.0) + float(d.sum())
        count[cam] = count.get(cam, 0) + d.size
        worst[cam] = max(worst.get(cam, 0), int(d.max()))
        hist[cam] = hist.get(cam, 0) + np.bincount(d.ravel(), minlength=256)
    for key in other:
        other[key] = max(other[key], float(np.abs(getattr(a, key).astype(np.float64) - getattr(b, key)).max()))
    same_text &= a.instruction == b.instruction and list(a.reasoning) == list(b.reasoning) and a.task == b.task
lerobot.close()
video = json.loads((work / "lerobot/meta/info.json").read_text())["features"]
codec = {k: {f: v["info"][f] for f in ("video.codec", "video.pix_fmt") if f in v.get("info", {})}
         for k, v in video.items() if v.get("dtype") == "video"}
cams = {}
for cam in abs_sum:
    cdf = np.cumsum(hist[cam]) / count[cam]
    cams[cam] = {"mean_abs_error": abs_sum[cam] / count[cam], "max_abs_error": worst[cam],
                 "p99_abs_error": int(np.searchsorted(cdf, 0.99)),
                 "share_exact": float(hist[cam][0] / count[cam]),
                 "share_above_10": float(1.0 - cdf[10])}
total = sum(abs_sum.values()) / sum(count.values())
mp4_bytes = sum(p.stat().st_size for p in (work / "lerobot").rglob("*.mp4"))
npz_bytes = sum(p.stat().st_size for p in (work / "demos").rglob("*.npz"))
out = {"episodes": len(npz), "frames": int(npz.num_steps), "pixels_mean_abs_error": total, "cameras": cams,
       "codec": codec, "max_abs_diff": other, "text_identical": bool(same_text),
       "mp4_bytes": mp4_bytes, "npz_bytes": npz_bytes}
(work / "roundtrip.json").write_text(json.dumps(out, indent=1))
print(f"round trip: mean abs pixel error {total:.2f} grey levels (0..255); "
      + ", ".join(f"{c} mean {v['mean_abs_error']:.2f} p99 {v['p99_abs_error']} max {v['max_abs_error']}" for c, v in cams.items())
      + f"; joints/actions/targets max diff {max(other.values()):.2g}; texts identical: {same_text}")
EOF

echo "[parity] $(date -u +%H:%M:%S) 3. training A (npz) and B (LeRobot) at once: $dense_steps dense + $moe_steps MoE steps"
train() {  # train NAME DATASET
  [ -f "$work/train_$1/model.safetensors" ] && return 0
  rm -rf "$work/train_$1"
  timed "train_$1" nice -n 10 "$bin/moe_vla_train" --dataset "$2" --out "$work/train_$1" --preset small \
    --config '{"vision": {"backbone": "efficientnet_lite0", "freeze_backbone": true}, "trunk": {"target_input": true}}' \
    --seed "$seed" --dense-steps "$dense_steps" --moe-steps "$moe_steps" --batch-size 32 --eval-every "$eval_every" \
    --image-shift 0 --start-oversampling 4 --start-steps 3 --num-threads 1 --no-progress > "$work/train_$1.log" 2>&1
}
train npz "$work/demos" & pid_a=$!
train lerobot "$work/lerobot" & pid_b=$!
status=0
wait $pid_a || { status=1; echo "[parity] training A failed:"; tail -5 "$work/train_npz.log"; }
wait $pid_b || { status=1; echo "[parity] training B failed:"; tail -5 "$work/train_lerobot.log"; }
[ $status -eq 0 ] || exit 1
tail -n 2 "$work/train_npz.log" "$work/train_lerobot.log"

echo "[parity] $(date -u +%H:%M:%S) 4. export (sparse, fp32)"
for m in npz lerobot; do
  [ -f "$work/model_$m/manifest.json" ] || timed "export_$m" "$bin/moe_vla_export" --checkpoint "$work/train_$m" \
    --out "$work/model_$m" --name "parity_$m" --formulations sparse --no-checkpoint --force
done

echo "[parity] $(date -u +%H:%M:%S) 5. closed loop, $eval_episodes reach episodes each, seeds $eval_seed+ (one model at a time)"
for m in npz lerobot; do
  [ -f "$work/eval_$m/report.json" ] && continue
  rm -rf "$work/eval_$m"
  timed "eval_$m" "$bin/moe_vla_eval_sim" --model "$work/model_$m" --episodes "$eval_episodes" --tasks reach \
    --seed-start "$eval_seed" --no-gif --no-expert --out "$work/eval_$m" > "$work/eval_$m.log" 2>&1 \
    || { echo "[parity] evaluation of $m failed:"; tail -20 "$work/eval_$m.log"; exit 1; }
done

echo "[parity] $(date -u +%H:%M:%S) 6. each model on the held-out demos as npz images and as decoded video"
[ -f "$work/cross_eval.json" ] || timed cross_eval "$bin/python" - "$work" <<'EOF'
"""Each trained model on the held-out demos as npz images and as decoded video: does the codec change what a model sees?"""
import json
import sys
from pathlib import Path

import torch

from moe_vla_ros.data.dataset import DemoDataset
from moe_vla_ros.data.lerobot.reader import LeRobotDemoDataset
from moe_vla_ros.model.checkpoint import load_checkpoint, load_tokenizer
from moe_vla_ros.training.train_config import TrainConfig
from moe_vla_ros.training.data import VLADataset, split_episodes
from moe_vla_ros.training.evaluate import evaluate

torch.set_num_threads(1)
work = Path(sys.argv[1])
cfg = TrainConfig()
sources = {"npz": DemoDataset(work / "demos"), "lerobot": LeRobotDemoDataset(work / "lerobot")}
_, val_eps = split_episodes(len(sources["npz"]), cfg.val_fraction, int(json.loads((work / "train_npz/train_config.json").read_text())["seed"]))
keys = ("action_l1_rad", "action_l1_rad_episode_start", "target_error_cm", "target_error_cm_episode_start")
out = {}
for model_name in ("npz", "lerobot"):
    model = load_checkpoint(work / f"train_{model_name}")
    tokenizer = load_tokenizer(work / f"train_{model_name}")
    for source_name, source in sources.items():
        torch.manual_seed(0)
        m = evaluate(model, VLADataset(source, model.cfg.contract, tokenizer, val_eps), batch_size=64,
                     max_samples=cfg.max_eval_samples, generated_samples=cfg.eval_generated_samples)
        out[f"model_{model_name}_on_{source_name}_images"] = {k: m.get(k) for k in keys}
        print(f"model {model_name:8} on {source_name:8} images: " + ", ".join(f"{k} {m.get(k, float('nan')):.4f}" for k in keys))
(work / "cross_eval.json").write_text(json.dumps(out, indent=1))
EOF

echo "[parity] $(date -u +%H:%M:%S) 7. report"
"$bin/python" - "$work" <<'EOF'
"""Success with 95 % Wilson intervals and tests of the difference; training metrics; round trip; times."""
import json
import math
import sys
from pathlib import Path

work = Path(sys.argv[1])
Z = 1.959963984540054


def wilson(k, n):
    p, d = k / n, 1 + Z * Z / n
    c, h = (p + Z * Z / (2 * n)) / d, Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def two_proportion_p(k1, n1, k2, n2):
    p = (k1 + k2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    return 1.0 if se == 0 else math.erfc(abs(k1 / n1 - k2 / n2) / se / math.sqrt(2))


def fisher_p(k1, n1, k2, n2):
    """Two-sided Fisher exact test of a 2x2 table (sum of tables no more likely than the observed)."""
    total, col = n1 + n2, k1 + k2
    prob = {a: math.comb(n1, a) * math.comb(n2, col - a) / math.comb(total, col)
            for a in range(max(0, col - n2), min(n1, col) + 1)}
    return min(1.0, sum(v for v in prob.values() if v <= prob[k1] * (1 + 1e-9)))


def mcnemar_p(b, c):
    """Exact two-sided McNemar test on the discordant pairs (b: only A succeeded, c: only B)."""
    n = b + c
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n)


def train_metrics(folder):
    records = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines() if line.strip()]
    evals = [r for r in records if r.get("kind") == "eval"]
    trains = [r for r in records if r.get("kind") == "train"]
    last = evals[-1] if evals else {}
    keys = ("action_l1_rad", "action_l1_rad_episode_start", "target_error_cm", "target_error_cm_episode_start",
            "reasoning_accuracy")
    out = {k: last.get(k) for k in keys}
    out.update(step=last.get("step"), final_train_loss=trains[-1].get("loss") if trains else None,
               curve={k: [[r["step"], r.get(k)] for r in evals] for k in ("action_l1_rad_episode_start",
                                                                          "target_error_cm_episode_start")})
    return out


times = {p.stem: round(float(p.read_text()), 1) for p in sorted((work / "times").glob("*.s"))}
models = {}
for name in ("npz", "lerobot"):
    report = json.loads((work / f"eval_{name}/report.json").read_text())
    s = report["success"]["policy"]["overall"]
    lo, hi = wilson(s["successes"], s["episodes"])
    models[name] = {"successes": s["successes"], "episodes": s["episodes"], "rate": s["successes"] / s["episodes"],
                    "wilson95": [lo, hi], "mean_episode_time_s": report["episode_time_s"]["policy"].get("overall"),
                    "latency": report["latency"], "seeds": [e["seed"] for e in report["episodes"]],
                    "per_seed": {e["seed"]: bool(e["success"]) for e in report["episodes"]},
                    "training": train_metrics(work / f"train_{name}")}
a, b = models["npz"], models["lerobot"]
same_seeds = a["seeds"] == b["seeds"]
only_a = sum(a["per_seed"][s] and not b["per_seed"].get(s, False) for s in a["seeds"])
only_b = sum(b["per_seed"][s] and not a["per_seed"].get(s, False) for s in b["seeds"])
tests = {
    "difference_lerobot_minus_npz": b["rate"] - a["rate"],
    "two_proportion_z_p": two_proportion_p(a["successes"], a["episodes"], b["successes"], b["episodes"]),
    "fisher_exact_p": fisher_p(a["successes"], a["episodes"], b["successes"], b["episodes"]),
    "intervals_overlap": a["wilson95"][0] <= b["wilson95"][1] and b["wilson95"][0] <= a["wilson95"][1],
    "same_seeds": same_seeds, "paired_only_npz": only_a, "paired_only_lerobot": only_b,
    "mcnemar_exact_p": mcnemar_p(only_a, only_b) if same_seeds else None,
}
tests["within_noise"] = bool(tests["two_proportion_z_p"] >= 0.05 and tests["fisher_exact_p"] >= 0.05)
# 0 % against 0 % (or 100 % against 100 %) says nothing about the data path
tests["informative"] = 0 < a["successes"] + b["successes"] < a["episodes"] + b["episodes"]
roundtrip = json.loads((work / "roundtrip.json").read_text())
config = json.loads((work / "train_npz/train_config.json").read_text())
result = {"config": {k: config.get(k) for k in ("dense_steps", "moe_steps", "batch_size", "seed", "model_overrides",
                                                "start_oversampling", "start_steps", "image_shift_pixels", "val_fraction")},
          "demos": roundtrip["episodes"], "demo_frames": roundtrip["frames"],
          "eval_seed_start": min(a["seeds"]), "models": models, "tests": tests, "roundtrip": roundtrip,
          "cross_eval": json.loads((work / "cross_eval.json").read_text()), "wall_times_s": times}
(work / "report.json").write_text(json.dumps(result, indent=1))

def f(v, fmt="{:.4f}"):
    return "-" if v is None else fmt.format(v)

print(f"\n{result['demos']} reach demos ({result['demo_frames']} frames), {config['dense_steps']} dense + "
      f"{config['moe_steps']} MoE steps, closed loop on seeds {min(a['seeds'])}..{max(a['seeds'])}")
video = next(iter(roundtrip["codec"].values()), {})
b_label = "B: LeRobot " + (f"({video.get('video.codec')} {video.get('video.pix_fmt')})" if video else "(images)")
print(f"{'':34} {'A: npz':>18} {b_label:>24}")
for label, key in (("closed-loop success", None),):
    print(f"{label:34} " + " ".join(f"{m['successes']:>3}/{m['episodes']} = {m['rate'] * 100:5.1f} %".rjust(18) for m in (a, b)))
print(f"{'  95 % Wilson interval':34} " + " ".join(f"{m['wilson95'][0] * 100:.0f}-{m['wilson95'][1] * 100:.0f} %".rjust(18) for m in (a, b)))
print(f"{'  mean episode time [s]':34} " + " ".join(f(m["mean_episode_time_s"], "{:.2f}").rjust(18) for m in (a, b)))
for key in ("action_l1_rad", "action_l1_rad_episode_start", "target_error_cm", "target_error_cm_episode_start",
            "reasoning_accuracy", "final_train_loss"):
    print(f"{key:34} " + " ".join(f(m["training"][key]).rjust(18) for m in (a, b)))
print(f"difference B - A {tests['difference_lerobot_minus_npz'] * 100:+.1f} points; two-proportion z p = "
      f"{tests['two_proportion_z_p']:.3f}; Fisher exact p = {tests['fisher_exact_p']:.3f}; intervals overlap: "
      f"{tests['intervals_overlap']}; paired (same seeds): only A {only_a}, only B {only_b}, McNemar exact p = "
      f"{f(tests['mcnemar_exact_p'], '{:.3f}')}")
print(f"within noise: {tests['within_noise']}" + ("" if tests["informative"] else
      " (NOT informative: both models at 0 % or both at 100 %)"))
cams = ", ".join(f"{c} {v['mean_abs_error']:.2f} (p99 {v['p99_abs_error']}, max {v['max_abs_error']})"
                 for c, v in roundtrip["cameras"].items())
print(f"codec {roundtrip['codec']}: mean abs pixel error {roundtrip['pixels_mean_abs_error']:.2f} / 255 ({cams}); "
      f"joints/actions/targets max diff {max(roundtrip['max_abs_diff'].values()):.2g}; "
      f"mp4 {roundtrip['mp4_bytes'] / 1e6:.1f} MB vs npz {roundtrip['npz_bytes'] / 1e6:.1f} MB")
for name, m in result["cross_eval"].items():
    print(f"{name:34} " + ", ".join(f"{k} {v:.4f}" for k, v in m.items()))
print("wall times [s]: " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))
print(f"written {work / 'report.json'}")
EOF
