"""ppokit against Stable-Baselines3's PPO on CartPole-v1: time to solve, steps/s, peak memory.

    .venv/bin/python benchmarks/speed.py [--seeds 3] [--steps 100000] [--quick] [--json PATH]

Both libraries train with the rl-baselines3-zoo hyperparameters: ppokit's CartPole-v1 preset
(8 envs x 32 steps, 20 epochs, minibatch 256, gamma 0.98, lambda 0.8, lr 1e-3 and clip 0.2
annealed linearly), mapped onto SB3's ``PPO`` by :func:`ppokit.compare.to_sb3`. Both train
``updates x 256`` env steps (99,840 for ``--steps 100000``). ppokit runs with TensorBoard and
the progress bar off (SB3 runs with ``verbose=0``) and a one-episode final evaluation.

Every job runs in a fresh process (``multiprocessing`` spawn context), one at a time so that
timings do not contend, with ``torch.set_num_threads(1)``. Per seed (default 1, 2, 3) the jobs
are: raw env throughput, ppokit, SB3 (so ppokit and SB3 alternate). Reported, each the median
over seeds, and the ratio ppokit / SB3:

- **time to solve**: training wall-clock until the mean return of the last 20 finished
  training episodes is >= 475. Both libraries train for the full budget and the time is
  computed afterwards (no early stop), from the same runs that give steps/s.

  * ppokit logs per update only (``metrics.jsonl``: ``episodes``, ``episode_return_mean``,
    ``time_elapsed``). Each update's mean is expanded over its episode count (exact when an
    update finishes at most one episode, as near the threshold, where episodes last ~500
    steps and an update is 256 steps), and the window's mean after an update is mapped to that
    update's ``time_elapsed``: ppokit's training clock (rollouts + updates; per-update metrics,
    logging and checkpoints are outside it).
  * SB3: a callback records every finished episode's return from ``infos`` (SB3's
    ``Monitor``) with the wall-clock since ``learn()`` was called; the solve time is the time
    the 20th-most-recent episode window first reaches 475. ``learn()`` includes SB3's
    per-rollout logging and the callback (a loop over 8 info dicts per step).

  A seed that never gets there counts as not solved (infinite): the median is "not solved"
  when half or more of the seeds are.
- **training steps/s**: env steps trained / training wall-clock of the whole run (ppokit:
  final ``time_elapsed``; SB3: ``learn()``). A second ppokit line uses the wall-clock of
  ppokit's whole training loop (``ppokit.trainer._loop``, timed from here), which also holds
  the per-update metrics, JSONL logging, health checks and checkpoints, i.e. what SB3's
  ``learn()`` holds.
- **peak memory**: ``ru_maxrss`` of the job's process at its end (imports included; the
  RSS after imports is printed too; the SB3 job imports ppokit and matplotlib, via
  ``ppokit.compare``).
- **raw env steps/s**: Gymnasium's native CartPole vector env (what ppokit steps) with 8
  envs and random actions drawn beforehand: the limit for training steps/s. For reference,
  also SB3's env path (``make_vec_env``: ``DummyVecEnv`` of 8 ``Monitor``-wrapped envs).

``--quick`` (5,000 steps, 1 seed) checks the script in a few seconds of training; it does
not solve.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ppokit.config import RunConfig

ENV_ID = "CartPole-v1"
SOLVED_AT = 475.0
WINDOW = 20
KINDS = ("raw", "ppokit", "sb3")


@dataclass(frozen=True)
class Job:
    kind: str  # "raw", "ppokit" or "sb3"
    seed: int
    steps: int  # the --steps budget
    work_dir: str  # run folders go here


@dataclass(frozen=True)
class JobResult:
    kind: str
    seed: int
    steps: int  # env steps trained (or stepped, for raw)
    train_time: float  # s: training wall-clock (ppokit: time_elapsed; SB3: learn(); raw: the step loop)
    solve_time: float | None = None  # s on the same clock; None: not solved
    solve_step: int | None = None  # env steps at that time
    loop_time: float | None = None  # ppokit: wall-clock of the whole training loop
    raw_sb3_sps: float | None = None  # raw: SB3's DummyVecEnv path
    n_envs: int = 0
    import_rss_mib: float = 0.0  # max RSS once imported
    peak_rss_mib: float = 0.0  # max RSS at the end

    @property
    def sps(self) -> float:
        return self.steps / self.train_time


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _solve(episodes: Iterable[tuple[float, int, float]]) -> tuple[float | None, int | None]:
    """First (time, step) at which the mean of the last WINDOW returns is >= SOLVED_AT, from
    (time, step, return) in the order the episodes finished."""
    window: deque[float] = deque(maxlen=WINDOW)
    for t, step, ret in episodes:
        window.append(ret)
        if len(window) == WINDOW and sum(window) / WINDOW >= SOLVED_AT:
            return t, step
    return None, None


def _config(job: Job) -> RunConfig:
    """ppokit's CartPole-v1 preset (the rl-zoo numbers), as compare.default_config builds it."""
    from ppokit.config import RunConfig, override
    from ppokit.presets import PRESETS

    return override(RunConfig(), {
        **PRESETS[ENV_ID].overrides, "id": ENV_ID, "seed": job.seed, "total_steps": job.steps,
        "run_dir": str(Path(job.work_dir) / f"{job.kind}-seed-{job.seed}"),
        "progress": False, "tensorboard": False, "eval_episodes": 1})  # fmt: skip


# --- jobs, each in its own process -------------------------------------------------------------


def _run_job(job: Job) -> JobResult:
    run: Callable[[Job], JobResult] = {"raw": _raw_job, "ppokit": _ppokit_job, "sb3": _sb3_job}[job.kind]
    return run(job)


def _raw_job(job: Job) -> JobResult:
    import gymnasium as gym
    import numpy as np
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv

    n_envs = _config(job).env.num_envs
    rounds = job.steps // n_envs
    actions = np.random.default_rng(job.seed).integers(0, 2, size=(rounds, n_envs))

    native = gym.make_vec(ENV_ID, num_envs=n_envs, vectorization_mode="vector_entry_point")
    native.reset(seed=job.seed)
    start = time.perf_counter()
    for a in actions:
        native.step(a)
    native_time = time.perf_counter() - start
    native.close()

    dummy = make_vec_env(ENV_ID, n_envs=n_envs, seed=job.seed, vec_env_cls=DummyVecEnv)
    dummy.reset()
    start = time.perf_counter()
    for a in actions:
        dummy.step(a)
    dummy_time = time.perf_counter() - start
    dummy.close()
    return JobResult("raw", job.seed, rounds * n_envs, native_time, raw_sb3_sps=rounds * n_envs / dummy_time,
                     n_envs=n_envs, peak_rss_mib=_maxrss_mib())  # fmt: skip


def _ppokit_job(job: Job) -> JobResult:
    import torch

    import ppokit.trainer as trainer

    torch.set_num_threads(1)
    config = _config(job).validate()
    import_rss = _maxrss_mib()

    loop_time: list[float] = []
    loop = trainer._loop

    def timed_loop(*args: Any, **kwargs: Any) -> Any:  # the whole loop's wall-clock, for reference
        start = time.perf_counter()
        try:
            return loop(*args, **kwargs)
        finally:
            loop_time.append(time.perf_counter() - start)

    trainer._loop = timed_loop
    result = trainer.train(config)
    lines = (result.run_dir / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    expanded = [(float(r["time_elapsed"]), int(r["global_step"]), float(r["episode_return_mean"]))
                for r in rows for _ in range(int(r["episodes"]))]  # fmt: skip
    solve_time, solve_step = _solve(expanded)
    return JobResult("ppokit", job.seed, result.global_step, float(rows[-1]["time_elapsed"]), solve_time, solve_step,
                     loop_time=loop_time[0] if loop_time else None, import_rss_mib=import_rss,
                     peak_rss_mib=_maxrss_mib())  # fmt: skip


def _sb3_job(job: Job) -> JobResult:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv

    from ppokit.compare import to_sb3

    torch.set_num_threads(1)
    config = _config(job).validate()
    setup = to_sb3(config)
    if setup.vec_normalize is not None or setup.ent_coef_final is not None:
        raise RuntimeError("the CartPole preset has no normalization and no entropy schedule")
    import_rss = _maxrss_mib()

    class Episodes(BaseCallback):
        """(seconds since learn() was called, env steps, return) of every finished episode."""

        def __init__(self, started: float) -> None:
            super().__init__()
            self.started = started
            self.finished: list[tuple[float, int, float]] = []

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                episode = info.get("episode")
                if episode is not None:
                    self.finished.append((time.perf_counter() - self.started, self.num_timesteps, float(episode["r"])))
            return True

    venv = make_vec_env(ENV_ID, n_envs=setup.n_envs, seed=job.seed, vec_env_cls=DummyVecEnv)
    model = PPO(env=venv, seed=job.seed, verbose=0, **setup.ppo_kwargs)
    start = time.perf_counter()
    recorder = Episodes(start)
    model.learn(total_timesteps=setup.total_timesteps, callback=recorder)
    train_time = time.perf_counter() - start
    venv.close()
    solve_time, solve_step = _solve(recorder.finished)
    return JobResult("sb3", job.seed, model.num_timesteps, train_time, solve_time, solve_step,
                     import_rss_mib=import_rss, peak_rss_mib=_maxrss_mib())  # fmt: skip


def run_jobs(jobs: Sequence[Job]) -> list[JobResult]:
    """One job at a time, each in a fresh spawned process."""
    results = []
    for i, job in enumerate(jobs, 1):
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            result = pool.submit(_run_job, job).result()
        results.append(result)
        solved = "" if result.kind == "raw" else f", time to solve {_fmt_time(result.solve_time)}"
        print(f"[{i}/{len(jobs)}] {job.kind} seed {job.seed}: {result.sps:,.0f} steps/s{solved}, "
              f"peak RSS {result.peak_rss_mib:.0f} MiB", file=sys.stderr, flush=True)  # fmt: skip
    return results


# --- the table ---------------------------------------------------------------------------------


def _median(values: Sequence[float | None]) -> float | None:
    """Median with None as infinity (not solved); None when the median is not solved."""
    m = statistics.median(math.inf if v is None else v for v in values)
    return None if math.isinf(m) else m


def _fmt_time(t: float | None) -> str:
    return "not solved" if t is None else f"{t:.1f} s"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}"


def table(results: Sequence[JobResult], seeds: Sequence[int], steps: int) -> str:
    by = {k: sorted((r for r in results if r.kind == k), key=lambda r: r.seed) for k in KINDS}
    p, s, raw = by["ppokit"], by["sb3"], by["raw"]

    def per_seed(rs: Sequence[JobResult], f: Callable[[JobResult], float | None], fmt: str) -> str:
        return ", ".join("-" if (v := f(r)) is None else format(v, fmt) for r in rs)

    def row(name: str, f: Callable[[JobResult], float | None], fmt: str, unit: str = "") -> list[str]:
        mp, ms = _median([f(r) for r in p]), _median([f(r) for r in s])

        def show(m: float | None) -> str:
            return "not solved" if m is None else format(m, fmt) + unit

        return [f"| {name} | {show(mp)} | {show(ms)} | {_ratio(mp, ms)} |",
                f"| - per seed | {per_seed(p, f, fmt)} | {per_seed(s, f, fmt)} | |"]  # fmt: skip

    def solved(rs: Sequence[JobResult]) -> int:
        return sum(r.solve_time is not None for r in rs)

    loop_sps = [r.steps / r.loop_time for r in p if r.loop_time]
    raw_native = statistics.median(r.sps for r in raw)
    raw_dummy = statistics.median(r.raw_sb3_sps or math.nan for r in raw)
    mp_sps, ms_sps = statistics.median(r.sps for r in p), statistics.median(r.sps for r in s)
    lines = [
        f"{ENV_ID}, rl-zoo hyperparameters (ppokit preset; SB3 via to_sb3): {p[0].steps:,} env steps "
        f"(--steps {steps}), seeds {', '.join(map(str, seeds))}, medians over seeds, torch threads 1",
        "",
        "| | ppokit | SB3 | ppokit / SB3 |",
        "|---|---|---|---|",
        *row(f"time to solve (last {WINDOW} episodes >= {SOLVED_AT:.0f})", lambda r: r.solve_time, ".1f", " s"),
        f"| - seeds solved | {solved(p)}/{len(p)} | {solved(s)}/{len(s)} | |",
        *row("env steps to solve", lambda r: r.solve_step, ",.0f"),
        *row("training steps/s", lambda r: r.sps, ",.0f"),
        *row("training wall-clock, full run", lambda r: r.train_time, ".1f", " s"),
        *row("peak memory (max RSS)", lambda r: r.peak_rss_mib, ".0f", " MiB"),
        *row("max RSS after imports", lambda r: r.import_rss_mib, ".0f", " MiB"),
    ]
    if loop_sps:
        m = statistics.median(loop_sps)
        lines.append(f"| training steps/s, ppokit's whole loop (metrics, logging, checkpoints in) | {m:,.0f} | "
                     f"{ms_sps:,.0f} | {m / ms_sps:.2f} |")  # fmt: skip
    lines += [
        "",
        f"raw env steps/s, Gymnasium native CartPole vector env, {raw[0].n_envs} envs, random actions: "
        f"{raw_native:,.0f} (per seed: {per_seed(raw, lambda r: r.sps, ',.0f')})",
        f"raw env steps/s, SB3's env path (DummyVecEnv of {raw[0].n_envs} Monitor-wrapped envs): {raw_dummy:,.0f}",
        f"training / raw native: ppokit {mp_sps / raw_native:.3f}, SB3 {ms_sps / raw_native:.3f}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N (default 3)")
    parser.add_argument("--steps", type=int, default=100_000, help="env steps per run (default 100000)")
    parser.add_argument("--quick", action="store_true", help="smoke mode: 5000 steps, 1 seed")
    parser.add_argument("--json", type=Path, help="also write every job's result here")
    args = parser.parse_args(argv)
    seeds = [1] if args.quick else list(range(1, args.seeds + 1))
    steps = 5_000 if args.quick else args.steps
    if not seeds or steps < 256:
        parser.error("--seeds must be >= 1 and --steps >= 256 (one rollout)")
    with tempfile.TemporaryDirectory(prefix="ppokit-speed-") as work:
        jobs = [Job(kind, seed, steps, work) for seed in seeds for kind in KINDS]
        results = run_jobs(jobs)
    print(table(results, seeds, steps))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"seeds": seeds, "steps": steps, "results": [asdict(r) | {"sps": r.sps} for r in results]}
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
