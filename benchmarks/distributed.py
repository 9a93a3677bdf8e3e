"""Env steps/s of one process against several (``ppokit train --nproc N``), side by side.

    .venv/bin/python benchmarks/distributed.py [--envs Hopper-v5 ppokit/SlowCartPole-v0]
                                               [--nprocs 1 2] [--steps 40960] [--repeats 3]

For each env (with its preset, ``env.num_envs`` envs per process) and each process count, the
runs alternate (1, 2, 1, 2, ...) so that a change in the machine's load hits both; printed are
the median over repeats of env steps/s over the rollouts and updates (``global_step /
time_elapsed`` of the last update: all processes' steps together), the speed-up against one
process and the scaling efficiency (speed-up / processes), and the final evaluation's mean
return (equal env steps for every process count).

``ppokit/SlowCartPole-v0`` waits a random 0-2 ms in every step (a slow simulator with a variable
step time); Hopper-v5 is MuJoCo, bound by the env and the small network on each core.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run_once(env_id: str, nproc: int, steps: int, seed: int, folder: Path) -> tuple[float, float]:
    """(env steps/s over rollouts and updates, final evaluation mean) of one run."""
    command = [sys.executable, "-m", "ppokit", "train", "--env.id", env_id, "--nproc", str(nproc),
               "--total-steps", str(steps), "--seed", str(seed), "--run-dir", str(folder), "--no-progress",
               "--no-tensorboard", "--eval-episodes", "10"]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, text=True)
    last = json.loads((folder / "metrics.jsonl").read_text().splitlines()[-1])
    evaluation = json.loads((folder / "eval.json").read_text())
    return last["global_step"] / last["time_elapsed"], evaluation["eval_return_mean"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["Hopper-v5", "ppokit/SlowCartPole-v0"])
    parser.add_argument("--nprocs", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--steps", type=int, default=40_960)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| env | processes | env steps/s (median) | per repeat | speed-up | efficiency | final eval per repeat |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for env_id in args.envs:
            results: dict[int, list[tuple[float, float]]] = {n: [] for n in args.nprocs}
            for repeat in range(args.repeats):
                for n in args.nprocs:
                    folder = Path(tmp) / f"{env_id.replace('/', '_')}-{n}-{repeat}"
                    results[n].append(run_once(env_id, n, args.steps, repeat + 1, folder))
            base = statistics.median(s for s, _ in results[args.nprocs[0]])
            for n in args.nprocs:
                sps = [s for s, _ in results[n]]
                median = statistics.median(sps)
                evals = ", ".join(f"{e:.1f}" for _, e in results[n])
                speedup = median / base
                print(f"| {env_id} | {n} | {median:,.0f} | {', '.join(f'{s:,.0f}' for s in sps)} | {speedup:.2f}x | "
                      f"{speedup / (n / args.nprocs[0]):.0%} | {evals} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
