"""Where an update's time goes: the trainer's parts timed inside a whole run.

    .venv/bin/python benchmarks/update_parts.py [--preset CartPole-v1] [--compile] [--steps 51200]

A short run first (its compile, or the cached graph's load, stays out of the figures), then a
run of ``--steps`` with the trainer's functions wrapped in timers (one torch thread, TensorBoard
and progress off): the milliseconds per update of the rollout (``collect``), the epochs
(``run_epochs``), the KL and critic figures after the update (``kl_after_update``), the
per-update metrics and the finite check, against the whole loop's time per update.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

PARTS = {"trainer": ["collect", "update_metrics", "episode_metrics", "check_finite"],
         "update": ["run_epochs", "kl_after_update"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="CartPole-v1")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--steps", type=int, default=51_200)
    args = parser.parse_args()
    import torch

    import ppokit.classic.trainer as trainer
    import ppokit.classic.update as update
    from ppokit.config import RunConfig, override
    from ppokit.presets import PRESETS

    torch.set_num_threads(1)
    totals: collections.Counter[str] = collections.Counter()

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **k: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                totals[name] += time.perf_counter() - start

        return wrapper

    for module, names in ((trainer, PARTS["trainer"]), (update, PARTS["update"])):
        for name in names:
            setattr(module, name, timed(name, getattr(module, name)))
    p = PRESETS[args.preset]
    values = {**p.overrides, "id": p.env_id, "seed": 1, "progress": False, "tensorboard": False, "eval_episodes": 1,
              "compile": args.compile}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        batch = values["num_envs"] * values["num_steps"]
        trainer.train(override(RunConfig(), {**values, "run_dir": f"{tmp}/warm", "total_steps": 2 * batch}).validate())
        totals.clear()
        start = time.perf_counter()
        result = trainer.train(override(RunConfig(), {**values, "run_dir": f"{tmp}/run",
                                                      "total_steps": args.steps}).validate())  # fmt: skip
        wall = time.perf_counter() - start
    n = result.updates
    print(f"{args.preset}, compile={args.compile}: {n} updates, {wall / n * 1e3:.2f} ms per update "
          f"({result.metrics['time_elapsed'] / n * 1e3:.2f} ms of rollout and update)")  # fmt: skip
    for name, seconds in totals.most_common():
        print(f"  {name}: {seconds / n * 1e3:.2f} ms per update")


if __name__ == "__main__":
    main()
