"""Training steps/s next to the raw env's steps/s, for the same env and env count.

    .venv/bin/python benchmarks/throughput.py [--env CartPole-v1] [--steps 50000] [--repeats 3]
                                              [--set KEY=VALUE ...]

Prints the median over repeats of: raw env steps/s (random actions, same vectorization and
env count), ppokit training steps/s (rollout + update, the preset's hyperparameters with the
``--set`` overrides on top, parsed as ``ppokit train`` flags are), and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ppokit.cli import parse_value
from ppokit.config import RunConfig, override
from ppokit.envs import make_vec_env
from ppokit.presets import PRESETS
from ppokit.trainer import train


def raw_env_sps(config: RunConfig, steps: int) -> float:
    vec = make_vec_env(config.env)
    vec.env.reset(seed=0)
    vec.env.action_space.seed(0)
    actions = [vec.env.action_space.sample() for _ in range(64)]
    n = steps // vec.num_envs
    start = time.perf_counter()
    for i in range(n):
        vec.env.step(actions[i % 64])
    elapsed = time.perf_counter() - start
    vec.close()
    return n * vec.num_envs / elapsed


def train_sps(config: RunConfig) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        run = override(config, {"run_dir": str(Path(tmp) / "run"), "eval_episodes": 1})
        start = time.perf_counter()
        result = train(run)
        elapsed = time.perf_counter() - start
    return result.global_step / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides (flat keys)")
    args = parser.parse_args()
    extra = {key: parse_value(key, text) for key, text in (item.split("=", 1) for item in args.set)}
    torch.set_num_threads(args.threads)
    preset = PRESETS[args.env].overrides if args.env in PRESETS else {}
    config = override(
        RunConfig(),
        {"id": args.env, **preset, **extra, "total_steps": args.steps, "progress": False, "tensorboard": False},
    ).validate()
    raw, trained = [], []
    for _ in range(args.repeats):  # alternate, so drifting machine load hits both alike
        raw.append(raw_env_sps(config, args.steps))
        trained.append(train_sps(config))
    raw_m, train_m = statistics.median(raw), statistics.median(trained)
    print(f"env {args.env}, {config.env.num_envs} envs x {config.algo.num_steps} steps, "
          f"{config.algo.update_epochs} epochs, minibatch {config.algo.minibatch_size}, "
          f"torch threads {args.threads}, {args.steps} steps, median of {args.repeats}")  # fmt: skip
    print(f"raw env steps/s       {raw_m:12,.0f}   (runs: {', '.join(f'{x:,.0f}' for x in raw)})")
    print(f"ppokit train steps/s  {train_m:12,.0f}   (runs: {', '.join(f'{x:,.0f}' for x in trained)})")
    print(f"train / raw           {train_m / raw_m:12.3f}")


if __name__ == "__main__":
    main()
