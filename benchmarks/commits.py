"""ppokit at two commits side by side: what a change did to training steps/s.

    .venv/bin/python benchmarks/commits.py BASE [HEAD] [--case cartpole hopper ...] [--repeats 3]

Checks BASE (and HEAD, default: this working tree) out into temporary git worktrees, then
for each case and repeat trains once with each tree's ``src`` on ``PYTHONPATH``, alternating,
each run in a fresh process with one torch thread, and prints the median steps/s (env steps
over ``time_elapsed``: rollouts and updates) of each side and their ratio HEAD / BASE. Every
case spells out its whole configuration, so it means the same to both commits.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from trees import run_job, two_trees  # this folder is on sys.path when a script runs

_SB3_DEFAULTS = {"num_envs": 1, "num_steps": 2048, "update_epochs": 10, "minibatch_size": 64, "learning_rate": 3e-4,
                 "anneal_lr": False, "gamma": 0.99, "gae_lambda": 0.95, "clip_coef": 0.2, "clip_vloss": False,
                 "ent_coef": 0.0, "vf_coef": 0.5, "max_grad_norm": 0.5, "vectorization": "sync"}  # fmt: skip
CASES: dict[str, dict[str, Any]] = {
    # rl-baselines3-zoo's CartPole-v1 settings (ppokit's preset)
    "cartpole": {"id": "CartPole-v1", "num_envs": 8, "num_steps": 32, "minibatch_size": 256, "update_epochs": 20,
                 "gae_lambda": 0.8, "gamma": 0.98, "learning_rate": 1e-3, "anneal_clip": True, "ent_coef": 0.0,
                 "total_steps": 51_200},
    # SB3's PPO defaults on Hopper-v5 (the speed issue's Hopper configuration)
    "hopper": {"id": "Hopper-v5", **_SB3_DEFAULTS, "total_steps": 20_480},
    # the same with observation normalization and reward scaling (the MuJoCo preset's per-step work)
    "hopper-norm": {"id": "Hopper-v5", **_SB3_DEFAULTS, "norm_obs": True, "norm_reward": True, "total_steps": 20_480},
}  # fmt: skip

_RUN = """
import json, sys, tempfile, torch
torch.set_num_threads(1)
import ppokit
from ppokit.config import RunConfig, override
values = json.loads(sys.argv[1])
with tempfile.TemporaryDirectory() as tmp:
    values.update(run_dir=tmp + "/run", progress=False, tensorboard=False, eval_episodes=1, seed=1)
    result = ppokit.train(override(RunConfig(), values).validate())
print(json.dumps({"sps": result.global_step / result.metrics["time_elapsed"]}))
"""


def steps_per_second(src: Path, values: dict[str, Any]) -> float:
    return float(run_job(src, _RUN, values)["sps"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="the commit to compare against")
    parser.add_argument("head", nargs="?", help="the other commit (default: this working tree)")
    parser.add_argument("--case", nargs="+", choices=sorted(CASES), default=["cartpole", "hopper"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with two_trees(args.base, args.head) as (base, head):
        print(f"steps/s, median of {args.repeats} (alternating), base {args.base}, head {args.head or 'this tree'}")
        for case in args.case:
            runs: dict[str, list[float]] = {"base": [], "head": []}
            for _ in range(args.repeats):
                runs["base"].append(steps_per_second(base, CASES[case]))
                runs["head"].append(steps_per_second(head, CASES[case]))
            b, h = statistics.median(runs["base"]), statistics.median(runs["head"])
            each = "; ".join(f"{k} {', '.join(f'{x:,.0f}' for x in v)}" for k, v in runs.items())
            print(f"{case:12s} base {b:8,.0f}  head {h:8,.0f}  head/base {h / b:5.2f}   ({each})")


if __name__ == "__main__":
    main()
