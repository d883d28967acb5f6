#!/usr/bin/env bash
# Hopper-v5 clones of the shipped TD3 expert from 25 of its episodes: a CfC on the full state,
# CfCs on the positions only (velocities hidden; 1 and 2 stacked states), and the feedforward
# baselines on the positions (1 and 4 stacked states), all on the same data and recipe; then
# 30 held-out episodes each (seed 1), clean and under observation noise 0.1, and the expert on
# the same seeds. Resumable: finished steps are skipped. Usage: bash experiments/hopper/run.sh
# `bash experiments/hopper/run.sh seeds` trains and scores training seed 1 of the two shipped
# recipes (full state; positions, 2 stacked) on the same data.
set -euo pipefail
cd "$(dirname "$0")/../.."
C=${C:-.venv/bin/cfcclone}
OUT=${OUT:-runs/hopper}
EXPERT=checkpoints/hopper_expert.safetensors
RECIPE="--epochs 12 --batches-per-epoch 100 --batch 32 --seq-len 32 --lr 1e-3 --warmup 100 \
  --schedule cosine --eval-episodes 10 --eval-envs 10"
POS="--view-mask 0 1 2 3 4"
[ -f "$OUT/data/manifest.json" ] || $C collect --game Hopper-v5 --expert $EXPERT --stack 1 \
  --episodes 25 --frames 25000 --envs 1 --seed 0 --out "$OUT/data"
train() {  # name, options...
  local name=$1; shift
  [ -f "$OUT/$name/best.safetensors" ] || $C train --data "$OUT/data" --out "$OUT/$name" $RECIPE "$@"
}
if [ "${1:-}" = seeds ]; then
  train cfc-full-s1 --seed 1 &
  train cfc-pos2-s1 $POS --view-stack 2 --seed 1
  wait
  for name in cfc-full-s1 cfc-pos2-s1; do
    $C eval "$OUT/$name/best.safetensors" --episodes 30 --envs 10 --seed 1 \
      --json "$OUT/eval-$name-noise0.json"
  done
  exit
fi
train cfc-full &
train cfc-pos $POS
wait
train cfc-pos2 $POS --view-stack 2 &
train mlp-pos --core none $POS
train mlp-pos4 --core none $POS --view-stack 4
wait
for noise in 0 0.1; do
  $C eval --expert $EXPERT --game Hopper-v5 --episodes 30 --envs 10 --seed 1 --obs-noise $noise \
    --json "$OUT/eval-expert-noise$noise.json"
  for name in cfc-full cfc-pos cfc-pos2 mlp-pos mlp-pos4; do
    $C eval "$OUT/$name/best.safetensors" --episodes 30 --envs 10 --seed 1 --obs-noise $noise \
      --json "$OUT/eval-$name-noise$noise.json"
  done
done
