#!/usr/bin/env bash
# The MuJoCo benchmark of docs/benchmarks.md, each experiment followed by its report. Run from
# the repository root after `make setup`:
#   bash experiments/mujoco.sh [OUT_DIR]    (default runs/mujoco; about 4 hours on 2 cores)
# An interrupted run resumes: run the same script again.
#  1. main: Hopper-v5, Walker2d-v5 and HalfCheetah-v5 with the common MuJoCo preset, 1M env steps,
#     5 seeds; then Walker2d-v5 with its own preset (smaller initial std, no value clipping);
#     then Humanoid-v5 with the MuJoCo preset, 2 seeds.
#  2. ablation on HalfCheetah-v5 (every episode ends by its time limit), 300k steps, 3 seeds:
#     the preset with truncation bootstrapping on and off, and with observation normalization off.
set -euo pipefail
OUT=${1:-runs/mujoco}
PPOKIT=${PPOKIT:-.venv/bin/ppokit}
ABLATION=(--env HalfCheetah-v5 --seeds 3 --total-steps 300000 --no-tensorboard)

"$PPOKIT" experiment --out "$OUT/main" --env Hopper-v5 --seeds 5 --no-tensorboard \
  --set id=Hopper-v5,Walker2d-v5,HalfCheetah-v5
"$PPOKIT" report "$OUT/main"
"$PPOKIT" experiment --out "$OUT/walker2d" --env Walker2d-v5 --seeds 5 --no-tensorboard
"$PPOKIT" report "$OUT/walker2d"
"$PPOKIT" experiment --out "$OUT/humanoid" --env Humanoid-v5 --seeds 2 --no-tensorboard
"$PPOKIT" report "$OUT/humanoid"
"$PPOKIT" experiment --out "$OUT/ablation-bootstrap" "${ABLATION[@]}" --set bootstrap_truncation=true,false
"$PPOKIT" report "$OUT/ablation-bootstrap"
"$PPOKIT" experiment --out "$OUT/ablation-norm-obs" "${ABLATION[@]}" --set norm_obs=false
"$PPOKIT" report "$OUT/ablation-norm-obs"
