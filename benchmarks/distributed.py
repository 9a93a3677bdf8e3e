"""Env steps/s of one process against several (``ppokit train --nproc N``), side by side.

    .venv/bin/python benchmarks/distributed.py [--envs Hopper-v5 ppokit/SlowCartPole-v0]
                                               [--nprocs 1 2] [--steps 40960] [--repeats 3]

For each env (with its preset, ``env.num_envs`` envs per process) and each process count, and
one learner with ``--async-workers`` N Ray workers where the env's settings allow it (no
running normalizers), the runs alternate (1, 2, a2, 1, 2, a2, ...) so that a change in the
machine's load hits all; printed are
the median over repeats of env steps/s over the rollouts and updates (``global_step /
time_elapsed`` of the last update: all processes' steps together), the speed-up against one
process and the scaling efficiency (speed-up / processes or workers), and the final
evaluation's mean return (equal env steps for every mode).

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


def run_once(env_id: str, mode: str, steps: int, seed: int, folder: Path) -> tuple[float, float]:
    """(env steps/s over rollouts and updates, final evaluation mean) of one run; ``mode``:
    ``N`` processes, or ``aN``: one learner with N asynchronous workers."""
    parallel = ["--async-workers", mode[1:]] if mode.startswith("a") else ["--nproc", mode]
    command = [sys.executable, "-m", "ppokit", "train", "--env.id", env_id, *parallel,
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
    parser.add_argument(
        "--async-workers",
        nargs="*",
        type=int,
        default=[2],
        help="async worker counts to add (on envs whose settings allow them: no normalizers)",
    )
    parser.add_argument("--steps", type=int, default=40_960)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| env | processes | env steps/s (median) | per repeat | speed-up | efficiency | final eval per repeat |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for env_id in args.envs:
            modes = [str(n) for n in args.nprocs] + [f"a{n}" for n in args.async_workers if _async_allowed(env_id)]
            results: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
            for repeat in range(args.repeats):
                for mode in modes:
                    folder = Path(tmp) / f"{env_id.replace('/', '_')}-{mode}-{repeat}"
                    results[mode].append(run_once(env_id, mode, args.steps, repeat + 1, folder))
            base = statistics.median(s for s, _ in results[modes[0]])
            for mode in modes:
                sps = [s for s, _ in results[mode]]
                median, n = statistics.median(sps), int(mode.lstrip("a"))
                evals = ", ".join(f"{e:.1f}" for _, e in results[mode])
                label = f"1 + {n} async workers" if mode.startswith("a") else mode
                speedup, each = median / base, ", ".join(f"{s:,.0f}" for s in sps)
                print(f"| {env_id} | {label} | {median:,.0f} | {each} | {speedup:.2f}x | {speedup / n:.0%} | {evals} |",
                      flush=True)  # fmt: skip


def _async_allowed(env_id: str) -> bool:
    from ppokit.config import RunConfig, override
    from ppokit.presets import PRESETS, preset_for

    values = {"id": env_id} | (PRESETS[preset_for(env_id)].overrides if preset_for(env_id) != "none" else {})
    env = override(RunConfig(), values).env
    return not (env.norm_obs or env.norm_reward)


if __name__ == "__main__":
    main()
