"""Training steps/s next to the raw env's steps/s, for the same env and env count.

    .venv/bin/python benchmarks/throughput.py [--env CartPole-v1] [--steps 50000] [--repeats 3]
                                              [--set KEY=VALUE ...]

Torch threads are the config's ``torch_threads`` (default 1; ``--set torch_threads=2``), which
``train()`` sets.

Prints the median over repeats of: raw env steps/s (random actions, same vectorization and
env count); ppokit's training steps/s with the preset's hyperparameters and the ``--set``
overrides on top (parsed as ``ppokit train`` flags are), twice: over the rollouts and updates
(``time_elapsed``, the speed benchmark's definition of training steps/s) and over the whole
``train()`` call (env construction, the process's first optimizer, checkpoints and a
one-episode final evaluation in); and each against the raw figure.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from ppokit.classic.envs import make_vec_env
from ppokit.classic.trainer import train
from ppokit.config import RunConfig, override, parse_value
from ppokit.presets import PRESETS


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


def train_sps(config: RunConfig) -> tuple[float, float]:
    """(steps/s over rollouts and updates, steps/s over the whole ``train()`` call)."""
    with tempfile.TemporaryDirectory() as tmp:
        run = override(config, {"run_dir": str(Path(tmp) / "run"), "eval_episodes": 1})
        start = time.perf_counter()
        result = train(run)
        elapsed = time.perf_counter() - start
    return result.global_step / result.metrics["time_elapsed"], result.global_step / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides (flat keys)")
    args = parser.parse_args()
    extra = {key: parse_value(key, text) for key, text in (item.split("=", 1) for item in args.set)}
    preset = PRESETS[args.env].overrides if args.env in PRESETS else {}
    config = override(
        RunConfig(),
        {"id": args.env, **preset, **extra, "total_steps": args.steps, "progress": False, "tensorboard": False},
    ).validate()
    raw, trained, whole = [], [], []
    for _ in range(args.repeats):  # alternate, so drifting machine load hits both alike
        raw.append(raw_env_sps(config, args.steps))
        loop_sps, whole_sps = train_sps(config)
        trained.append(loop_sps)
        whole.append(whole_sps)
    raw_m, train_m, whole_m = statistics.median(raw), statistics.median(trained), statistics.median(whole)
    print(f"env {args.env}, {config.env.num_envs} envs x {config.algo.num_steps} steps, "
          f"{config.algo.update_epochs} epochs, minibatch {config.algo.minibatch_size}, "
          f"torch threads {config.torch_threads}, {args.steps} steps, median of {args.repeats}")  # fmt: skip

    def runs(xs: list[float]) -> str:
        return ", ".join(f"{x:,.0f}" for x in xs)

    print(f"raw env steps/s                          {raw_m:10,.0f}   (runs: {runs(raw)})")
    print(f"ppokit training steps/s (time_elapsed)   {train_m:10,.0f}   (runs: {runs(trained)})")
    print(f"ppokit steps/s over the whole train()    {whole_m:10,.0f}   (runs: {runs(whole)})")
    print(f"training / raw                           {train_m / raw_m:10.3f}")
    print(f"whole train() / raw                      {whole_m / raw_m:10.3f}")


if __name__ == "__main__":
    main()
