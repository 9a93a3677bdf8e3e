"""Env steps and seconds to solve CartPole-v1 with a given configuration, and its final policy.

    .venv/bin/python benchmarks/solve.py '{"num_envs": 64, "num_steps": 16, ...}' [--seeds 1 2 3]

For each seed, trains CartPole-v1 with the rl-zoo preset overridden by the JSON object (flat
config keys) and prints: the env steps and wall-clock (since ``train()`` was called) at which
the mean return of the last 20 finished training episodes first reached 475 (episodes are
stamped at the end of their rollout), the training steps/s, and the final deterministic
evaluation over 20 episodes. One torch thread. This is how candidate wall-clock presets were
screened (docs/benchmarks.md): steps to solve and the final evaluation do not depend on the
machine's load; seconds do.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any

from speed import first_solved  # the speed benchmark's criterion (this folder is on sys.path)

from ppokit.classic.hooks import Hooks, RolloutEvent
from ppokit.classic.trainer import train
from ppokit.config import RunConfig, override
from ppokit.presets import PRESETS


def solve(values: dict[str, Any], seed: int) -> tuple[int | None, float | None, float, float]:
    """(env steps to solve, seconds to solve, training steps/s, final eval mean)."""
    finished: list[tuple[float, int, float]] = []  # (seconds, env steps, return)
    clock: dict[str, Any] = {"start": 0.0, "steps": 0}

    def record(event: RolloutEvent) -> None:
        clock["steps"] += event.episodes.env_steps
        now = time.perf_counter() - clock["start"]
        finished.extend((now, clock["steps"], r) for r in event.episodes.returns)

    with tempfile.TemporaryDirectory() as tmp:
        config = override(RunConfig(), {**PRESETS["CartPole-v1"].overrides, "id": "CartPole-v1", **values,
                                        "seed": seed, "run_dir": f"{tmp}/run", "progress": False,
                                        "tensorboard": False, "torch_threads": 1}).validate()  # fmt: skip
        clock["start"] = time.perf_counter()
        result = train(config, hooks=Hooks(on_rollout=[record]))
    seconds, steps = first_solved(finished)
    return steps, seconds, result.metrics["sps"], result.evaluation.mean if result.evaluation else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("values", type=json.loads, help="JSON object of config overrides")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    for seed in args.seeds:
        steps, seconds, sps, final = solve(args.values, seed)
        solved = f"solved at {steps:,} steps, {seconds:.1f} s" if steps is not None else "not solved"
        print(f"seed {seed}: {solved}; {sps:,.0f} steps/s; final deterministic eval {final:.1f}", flush=True)


if __name__ == "__main__":
    main()
