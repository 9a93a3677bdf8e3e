"""Where ``--compile`` pays: each preset's update time eager and compiled, the compiled first
update's extra cost, and the break-even against the preset's own budget.

    .venv/bin/python benchmarks/compile_presets.py [--presets CartPole-v1 Pendulum-v1 ...]
                                                   [--updates 6] [--repeats 2]

Per preset, in fresh processes one after the other (one torch thread, TensorBoard, progress
and checkpoints between the ends off, a one-episode final evaluation): a compiled job in a
fresh compile cache (the *cold* first update), then ``--repeats`` times an eager job and a
compiled job that loads that cache (*warm*), alternating. Each job trains ``--updates``
updates of the preset (its envs, batch and epochs) and records every update's wall-clock
(its rollout, update, metrics and logging: from one update hook to the next). Printed per preset, medians over repeats:
the seconds per update after the first, eager and compiled, and their ratio; the compiled
job's first update minus the eager one's (what compiling costs, warm and cold); the
break-even, that extra cost over the time each later update saves, in updates and env
steps; and the preset's own budget in updates, which says whether compiling pays on the
preset's default run.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

PRESETS = ["CartPole-v1", "Pendulum-v1", "LunarLander-v3", "Hopper-v5", "HalfCheetah-v5"]


def _job(preset: str, compile: bool, updates: int, cache: str) -> list[float]:
    """Seconds of each update (its rollout and its update), in this fresh process."""
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
    import torch

    from ppokit.classic.hooks import Hooks
    from ppokit.classic.trainer import train
    from ppokit.config import RunConfig, override
    from ppokit.presets import PRESETS as TABLE

    torch.set_num_threads(1)
    p = TABLE[preset]
    batch = p.overrides["num_envs"] * p.overrides["num_steps"]
    stamps: list[float] = []  # the loop's start, then the end of every update
    hook = lambda _: stamps.append(time.perf_counter())
    with tempfile.TemporaryDirectory() as tmp:
        values = {**p.overrides, "id": p.env_id, "seed": 1, "total_steps": updates * batch, "compile": compile,
                  "run_dir": f"{tmp}/run", "progress": False, "tensorboard": False, "eval_episodes": 1,
                  "checkpoint_every": 10_000}  # fmt: skip
        train(override(RunConfig(), values).validate(), hooks=Hooks(on_start=[hook], on_update=[hook]))
    return [b - a for a, b in itertools.pairwise(stamps)]  # each update: its rollout and update


def _in_fresh_process(*args: Any) -> list[float]:
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_job, *args).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=PRESETS)
    parser.add_argument("--updates", type=int, default=6, help="updates per job (default 6)")
    parser.add_argument("--repeats", type=int, default=2, help="eager/compiled pairs per preset (default 2)")
    args = parser.parse_args()
    from ppokit.presets import PRESETS as TABLE

    print("| preset | s per update, eager | compiled | speed-up | first update's extra cost, warm (cold) | "
          "break-even (updates, env steps) | the preset's budget (updates) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for preset in args.presets:
        p = TABLE[preset]
        batch = p.overrides["num_envs"] * p.overrides["num_steps"]
        budget = p.overrides["total_steps"] // batch
        cache = tempfile.mkdtemp(prefix="ppokit-compile-presets-")
        cold = _in_fresh_process(preset, True, args.updates, cache)
        eager, warm = [], []
        for _ in range(args.repeats):
            eager.append(_in_fresh_process(preset, False, args.updates, cache))
            warm.append(_in_fresh_process(preset, True, args.updates, cache))
        per_eager = statistics.median(statistics.median(t[1:]) for t in eager)
        per_compiled = statistics.median(statistics.median(t[1:]) for t in warm)
        first_eager = statistics.median(t[0] for t in eager)
        extra_warm = statistics.median(t[0] for t in warm) - first_eager
        extra_cold = cold[0] - first_eager
        saved = per_eager - per_compiled
        even = extra_warm / saved if saved > 0 else float("inf")
        ratio = per_eager / per_compiled
        print(f"| {preset} | {per_eager * 1e3:,.1f} ms | {per_compiled * 1e3:,.1f} ms | {ratio:.2f}x "
              f"| {extra_warm:.1f} s ({extra_cold:.1f} s) | {even:,.0f}, {even * batch:,.0f} | {budget:,} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
