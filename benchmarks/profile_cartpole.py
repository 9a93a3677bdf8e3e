"""Where the time goes: one ppokit CartPole-v1 run (the preset, seed 1) under cProfile.

    .venv/bin/python benchmarks/profile_cartpole.py [--top 15]

Prints the run's training wall-clock and the profile sorted by own time and by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile

import torch

from ppokit.config import RunConfig, override
from ppokit.presets import PRESETS
from ppokit.trainer import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top", type=int, default=15, help="lines of each listing (default 15)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        values = {**PRESETS["CartPole-v1"].overrides, "id": "CartPole-v1", "seed": 1, "run_dir": f"{tmp}/run",
                  "progress": False, "tensorboard": False, "eval_episodes": 1}  # fmt: skip
        profiler = cProfile.Profile()
        profiler.enable()
        result = train(override(RunConfig(), values).validate())
        profiler.disable()
    print(f"time_elapsed (training wall-clock under the profiler): {result.metrics['time_elapsed']:.1f} s")
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(2 * args.top)


if __name__ == "__main__":
    main()
