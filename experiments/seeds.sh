#!/usr/bin/env bash
# The experiments of docs/experiments.md, one `ppokit experiment` command each (5 seeds),
# followed by its report. Run from the repository root after `make setup`:
#   bash experiments/seeds.sh [OUT_DIR]     (default runs/experiments; about 25 min on 2 cores)
# An interrupted run resumes: run the same script again.
set -euo pipefail
OUT=${1:-runs/experiments}
PPOKIT=${PPOKIT:-.venv/bin/ppokit}
COMMON=(--seeds 5 --no-tensorboard)
BANDIT=(--env ppokit/Bandit-v0 --num-envs 16 --num-steps 2 --minibatch-size 16 --learning-rate 0.01
        --update-epochs 10 --total-steps 3200 --info-metrics best_arm_chosen regret)
GRID=(--env ppokit/GridWorld-v0 --num-envs 8 --num-steps 64 --minibatch-size 128 --total-steps 20480)

run() {  # run NAME ARGS...: one experiment and its report
  local name=$1; shift
  "$PPOKIT" experiment --out "$OUT/$name" "${COMMON[@]}" "$@"
  "$PPOKIT" report "$OUT/$name"
}

# 1. Bandit: PPO-Clip vs the unclipped surrogate (ppo-kl with beta fixed at 0), same epochs.
run bandit-clip "${BANDIT[@]}" --set method=ppo,ppo-kl --kl-coef 0 --no-kl-adaptive
# 2. Epochs sweep K in {1, 4, 10, 30}.
run epochs-gridworld "${GRID[@]}" --set update_epochs=1,4,10,30
run epochs-cartpole --env CartPole-v1 --set update_epochs=1,4,10,30
# 3. PPO vs A2C vs REINFORCE at matched env steps (CartPole preset).
run pg-family-cartpole --env CartPole-v1 --set method=ppo,a2c,reinforce
# 4. PPO-Clip vs PPO-KL (adaptive beta) vs adaptive clip.
run clip-vs-kl-cartpole --env CartPole-v1 --set method=ppo,ppo-kl
run adaptive-clip-cartpole --env CartPole-v1 --adaptive-clip --no-anneal-clip
# 5. PPO vs GRPO: GridWorld (8 envs = one group of 8; T = 50 = the episode limit) and the bandit.
run grpo-gridworld "${GRID[@]}" --set method=ppo,grpo --group-size 8
run grpo-bandit "${BANDIT[@]}" --set method=ppo,grpo --group-size 8
# 6. Past the safe limit (needs --allow-unsafe): where does the KL per update explode?
run epochs-unsafe-gridworld "${GRID[@]}" --set update_epochs=100 --allow-unsafe
run epochs-unsafe-cartpole --env CartPole-v1 --set update_epochs=100 --allow-unsafe
