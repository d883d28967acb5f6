#!/usr/bin/env bash
# Liquid networks on the demo's Breakout job: the 64-unit dense CfC (the demo's model), a wired
# AutoNCP of 32 neurons on 32 features, and a dense LTC of 64 neurons, on the same tracker data
# and the demo's recipe; then 30 held-out episodes each (seed 1) and the expert on the same
# seeds. Resumable: finished steps are skipped. Usage: bash experiments/liquid/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
C=${C:-.venv/bin/cfcclone}
OUT=${OUT:-runs/liquid}
RECIPE="--encoder nature --lr 1e-3 --warmup 300 --schedule cosine --class-weights sqrt \
  --seq-len 16 --batch 16 --batches-per-epoch 300 --epochs 10 --eval-episodes 4 --eval-envs 4"
[ -f "$OUT/data/manifest.json" ] || $C collect --game breakout --expert tracker \
  --frames 100000 --envs 2 --seed 0 --out "$OUT/data"
train() {  # name, options...
  local name=$1; shift
  [ -f "$OUT/$name/best.safetensors" ] || $C train --data "$OUT/data" --out "$OUT/$name" $RECIPE "$@"
}
train cfc
train autoncp32 --wiring autoncp --units 32 --features 32
train ltc --cell ltc --units 64
train autoncp32-e20 --wiring autoncp --units 32 --features 32 --epochs 20   # twice the epochs
$C eval --expert tracker --game breakout --episodes 30 --envs 16 --seed 1 \
  --json "$OUT/eval-expert.json"
for name in cfc autoncp32 ltc autoncp32-e20; do
  $C eval "$OUT/$name/best.safetensors" --episodes 30 --envs 16 --seed 1 \
    --json "$OUT/eval-$name.json"
done
# Irregular time: the same expert with each step skipping 2..6 frames (4 on average); a clone
# with --timespans and one without on that data; every clone, and the expert, under that jitter
J="--frame-skip-jitter 2 6"
[ -f "$OUT/jitter-data/manifest.json" ] || $C collect --game breakout --expert tracker $J \
  --frames 100000 --envs 2 --seed 0 --out "$OUT/jitter-data"
for name in jitter-timespans jitter-plain; do
  opts=$([ $name = jitter-timespans ] && echo --timespans || true)
  [ -f "$OUT/$name/best.safetensors" ] || $C train --data "$OUT/jitter-data" --out "$OUT/$name" \
    $RECIPE $opts
done
$C eval --expert tracker --game breakout $J --episodes 30 --envs 16 --seed 1 \
  --json "$OUT/eval-expert-jitter.json"
for name in cfc jitter-timespans jitter-plain; do
  $C eval "$OUT/$name/best.safetensors" $J --episodes 30 --envs 16 --seed 1 \
    --json "$OUT/eval-$name-jitter.json"
done
