"""Where the time goes: one ppokit run under cProfile.

    .venv/bin/python benchmarks/profile_run.py [--preset CartPole-v1] [--set KEY=VALUE ...] [--top 15]

Runs ``ppokit.classic.trainer.train`` with a preset (seed 1, one torch thread, TensorBoard and the
progress bar off, a one-episode final evaluation) and ``--set`` overrides on top, and prints
the run's training steps/s and the profile sorted by own time and by cumulative time.
The Hopper profile of docs/benchmarks.md (SB3's defaults, with both normalizations)::

    .venv/bin/python benchmarks/profile_run.py --preset Hopper-v5 --set num_envs=1 num_steps=2048 \\
        total_steps=8192 ent_coef=0
"""

from __future__ import annotations

import argparse
import ast
import cProfile
import pstats
import tempfile
from typing import Any

import torch

from ppokit.classic.trainer import train
from ppokit.config import RunConfig, override
from ppokit.presets import PRESETS


def _value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="CartPole-v1", choices=sorted(PRESETS), help="default CartPole-v1")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides (flat keys)")
    parser.add_argument("--top", type=int, default=15, help="lines of each listing (default 15)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    preset = PRESETS[args.preset]
    extra = dict(item.split("=", 1) for item in args.set)
    with tempfile.TemporaryDirectory() as tmp:
        values = {**preset.overrides, "id": preset.env_id, "seed": 1, "run_dir": f"{tmp}/run", "progress": False,
                  "tensorboard": False, "eval_episodes": 1, **{k: _value(v) for k, v in extra.items()}}  # fmt: skip
        profiler = cProfile.Profile()
        profiler.enable()
        result = train(override(RunConfig(), values).validate())
        profiler.disable()
    print(f"time_elapsed (training wall-clock under the profiler): {result.metrics['time_elapsed']:.1f} s, "
          f"{result.metrics['sps']:.0f} steps/s")  # fmt: skip
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(2 * args.top)


if __name__ == "__main__":
    main()
