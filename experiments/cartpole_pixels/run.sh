#!/usr/bin/env bash
# CartPole-v1 from pixels: the scripted state expert (planner) recorded while the student sees
# 84x84 grayscale renders in stacks of 4; a nature CfC trained on them, then 30 held-out
# episodes (seed 1). Resumable: finished steps are skipped. Usage:
#   bash experiments/cartpole_pixels/run.sh            # BC on 100 episodes
#   bash experiments/cartpole_pixels/run.sh dagger     # then 12 DAgger rounds from that clone
set -euo pipefail
cd "$(dirname "$0")/../.."
C=${C:-.venv/bin/cfcclone}
OUT=${OUT:-runs/cartpole_pixels}
RECIPE="--encoder nature --epochs 20 --batches-per-epoch 150 --batch 32 --seq-len 32 --lr 1e-3 \
  --warmup 100 --schedule cosine --eval-episodes 6 --eval-envs 6"
[ -f "$OUT/data/manifest.json" ] || $C collect --game CartPole-v1 --pixels --expert planner \
  --episodes 100 --frames 50000 --envs 2 --seed 0 --out "$OUT/data"
[ -f "$OUT/bc/best.safetensors" ] || $C train --data "$OUT/data" --out "$OUT/bc" $RECIPE
[ -f "$OUT/eval-bc.json" ] || $C eval "$OUT/bc/best.safetensors" --episodes 30 --envs 10 --seed 1 \
  --json "$OUT/eval-bc.json"
if [ "${1:-}" = dagger ]; then
  [ -f "$OUT/dagger/metrics.jsonl" ] && RESUME=--resume || RESUME=
  $C dagger --init "$OUT/bc/best.safetensors" --data "$OUT/data" --out "$OUT/dagger" \
    --expert planner --rounds ${ROUNDS:-12} --labels-per-round 20000 --beta 0.5 --envs 8 --epochs 4 $RESUME
fi
