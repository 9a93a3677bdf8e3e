"""ppokit against Stable-Baselines3's PPO: time to solve CartPole-v1, steps/s, peak memory, Hopper-v5.

    .venv/bin/python benchmarks/speed.py [--seeds 3] [--steps 100000] [--hopper-steps 20480]
                                         [--no-hopper] [--no-cuda] [--quick] [--json PATH]

**CartPole-v1, rl-zoo hyperparameters.** Both libraries train with the rl-baselines3-zoo
hyperparameters: ppokit's CartPole-v1 preset (8 envs x 32 steps, 20 epochs, minibatch 256,
gamma 0.98, lambda 0.8, lr 1e-3 and clip 0.2 annealed linearly), mapped onto SB3's ``PPO`` by
:func:`ppokit.analysis.compare.to_sb3`. Both train ``updates x 256`` env steps (99,840 for ``--steps
100000``). ppokit runs with TensorBoard and the progress bar off (SB3 runs with ``verbose=0``)
and a one-episode final evaluation (after training, outside every clock).

**Hopper-v5, SB3's defaults** (``--hopper-steps``, default 20,480 = 10 updates; ``--no-hopper``
skips it; skipped with a message when ``mujoco`` cannot be imported): the same
hyperparameters on both sides, SB3's PPO defaults: 1 env x 2048 steps, 10 epochs, minibatch 64,
lr 3e-4 constant, clip 0.2 constant, gamma 0.99, lambda 0.95, ent 0, vf 0.5, max grad norm 0.5,
advantages normalized per minibatch, Adam eps 1e-5, no observation or reward normalization,
no value clipping, separate 64x64 tanh MLPs for actor and critic, orthogonal init (sqrt 2,
0.01 policy head, 1 value head), state-independent log std starting at 0, actions clipped to
the bounds, truncations bootstrapped. ppokit's ``RunConfig`` sets every one of these
explicitly (vectorization ``sync``: Gymnasium's ``SyncVectorEnv`` of 1) and ``to_sb3`` maps
it onto SB3 (``DummyVecEnv`` of 1 ``Monitor``-wrapped env). No time to solve on Hopper.
A second ppokit job per seed, on both envs, sets ``compile=True`` (the whole minibatch step
compiled as one graph, ``ppokit.classic.fused``): its compiling happens in the first update,
inside its clock, so the table gives its steps/s over the whole run and over the updates after
the first, what a long run sees (the same figure is given for the eager job), and the first
update's time. The benchmark starts with a fresh compile cache: the first compiled job
compiles (cold), the later ones load the graph (warm).

Every job runs in a fresh process (``multiprocessing`` spawn context), one at a time so that
timings do not contend, with ``torch.set_num_threads(1)``. Per seed (default 1, 2, 3) the
CartPole jobs are: raw env throughput, ppokit, ppokit compiled, SB3 (so ppokit and SB3 alternate); then, per
seed, the Hopper jobs: raw env throughput, ppokit, ppokit compiled, SB3. With a CUDA device (and no
``--no-cuda``), ppokit on CartPole and on Hopper also runs on ``cuda`` right after its CPU
job; their figures are extra rows (SB3 stays on the CPU). Reported, each the median over
seeds, and ratios of the medians:

- **time to solve** (CartPole): wall-clock until the mean return of the last 20 finished
  training episodes is >= 475, from the same full-budget runs that give steps/s (no early
  stop). A seed that never gets there counts as not solved (infinite): the median is "not
  solved" when half or more of the seeds are.

  * ppokit: an ``on_rollout`` hook records, for every episode finished in a rollout,
    (wall-clock since ``train()`` was called, env steps so far, return) at the end of that
    rollout. The clock starts where SB3's starts at ``learn()``, so it holds everything
    after it: rollouts, updates, per-update metrics, logging, health checks, checkpoints.
    ppokit's ``train()`` also builds the envs, the policy and the optimizer, which SB3 does
    before ``learn()`` (in ``make_vec_env`` and ``PPO(...)``, outside its clock): a few ms
    against ppokit. Not so the one-off costs of a process's first optimizer (torch imports
    ``torch._dynamo`` on the first ``Optimizer.__init__``, ~1 s) and, on cuda, of the CUDA
    context: the ppokit job pays these before its clock starts, as SB3 does in ``PPO(...)``.
    A row gives each clock's start-up (the call to the first rollout's start: ppokit's
    ``on_start`` hook). An episode is
    stamped at the end of its rollout, not at its last step: late by at most one rollout's
    collection (8 x 32 steps on the rl-zoo preset: a few ms), again against ppokit.
  * SB3: a callback records every finished episode's return from ``infos`` (SB3's
    ``Monitor``) with the wall-clock since ``learn()`` was called. ``learn()`` includes SB3's
    per-rollout logging and the callback (a loop over 8 info dicts per step).

- **env steps to solve**: the env steps trained at that time (ppokit: at the end of the
  rollout). **start-up inside that clock**: from ``train()`` / ``learn()`` being called to
  the start of the first rollout.
- **training steps/s**: env steps trained / training wall-clock of the whole run (ppokit:
  ``time_elapsed``, rollouts + updates only; SB3: ``learn()``). A second ppokit line uses the
  wall-clock of ppokit's whole training loop (from the ``on_start`` hook to the last
  ``on_update`` hook), which also holds the per-update metrics, JSONL logging, health checks and checkpoints, i.e.
  what SB3's ``learn()`` holds. ppokit's env steps include the step after each episode end
  that resets the sub-env (Gymnasium's ``NEXT_STEP`` autoreset; it trains on nothing), SB3's
  do not (its vec env resets within the last step): on Hopper, where early episodes last
  tens of steps, up to a few percent of ppokit's steps are such resets.
- **peak memory**: ``ru_maxrss`` of the job's process at its end (imports included; the
  RSS after imports is printed too; the SB3 job imports ppokit and matplotlib, via
  ``ppokit.analysis.compare``). cuda jobs also report torch's peak allocated GPU memory.
- **raw env steps/s**, random actions drawn beforehand, the limit for training steps/s.
  CartPole: Gymnasium's native CartPole vector env (what ppokit steps) with 8 envs, and SB3's
  env path (``make_vec_env``: ``DummyVecEnv`` of 8 ``Monitor``-wrapped envs). Hopper (1 env):
  a plain ``gym.make`` env reset by hand when an episode ends (resets not counted as steps),
  ppokit's path (``ppokit.classic.envs.make_vec_env``: ``SyncVectorEnv`` of 1, ``NEXT_STEP``
  autoreset, reset steps counted as ppokit counts them), and SB3's path (``DummyVecEnv`` of 1
  ``Monitor``-wrapped env), each after 200 untimed steps. Random actions end Hopper episodes
  after a few dozen steps, so these raw figures hold more resets than training does. Training
  steps/s is also given as a percentage of the raw figures.

``--quick`` (5,000 CartPole steps, 2,048 Hopper steps, 1 seed) checks the script in a few
seconds of training per job; it does not solve. The default run took 11-12 minutes on the
2-core development machine (three runs on 2026-11-21, docs/benchmarks.md); ``--no-hopper``
skips the Hopper section. The CartPole budget stays at 100k steps because SB3 needed up to ~62k to solve.
"""

from __future__ import annotations

import argparse
import json
import math
import os
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
HOPPER_ID = "Hopper-v5"
SOLVED_AT = 475.0
WINDOW = 20
CARTPOLE_KINDS = ("raw", "ppokit", "ppokit-compile", "sb3")  # per seed, in this order
HOPPER_KINDS = ("raw-hopper", "ppokit-hopper", "ppokit-compile-hopper", "sb3-hopper")
CUDA_KINDS = ("ppokit", "ppokit-hopper")  # also run on cuda, right after the CPU job
SOLVING_KINDS = ("ppokit", "ppokit-compile", "sb3")  # the kinds with a time to solve
WARMUP_STEPS = 200  # raw Hopper: untimed steps before each timed loop

# Hopper-v5 with SB3's PPO defaults, every field that matters set explicitly on ppokit's side.
HOPPER_OVERRIDES: dict[str, Any] = {
    "id": HOPPER_ID, "num_envs": 1, "vectorization": "sync", "norm_obs": False, "norm_reward": False,
    "method": "ppo", "num_steps": 2048, "update_epochs": 10, "minibatch_size": 64, "learning_rate": 3e-4,
    "anneal_lr": False, "gamma": 0.99, "gae_lambda": 0.95, "bootstrap_truncation": True, "clip_coef": 0.2,
    "anneal_clip": False, "clip_vloss": False, "vf_coef": 0.5, "ent_coef": 0.0, "ent_coef_final": None,
    "norm_adv": True, "max_grad_norm": 0.5, "target_kl": None, "adam_eps": 1e-5,
    "hidden_sizes": (64, 64), "activation": "tanh", "shared_trunk": False, "init_log_std": 0.0, "ortho_init": True,
}  # fmt: skip


@dataclass(frozen=True)
class Job:
    kind: str  # one of CARTPOLE_KINDS or HOPPER_KINDS
    seed: int
    steps: int  # env steps to train (or to step, for raw); the config rounds down to whole updates
    work_dir: str  # run folders go here
    device: str = "cpu"  # ppokit's torch device


@dataclass(frozen=True)
class JobResult:
    kind: str
    seed: int
    steps: int  # env steps trained (or stepped, for raw)
    train_time: float  # s: training wall-clock (ppokit: time_elapsed; SB3: learn(); raw: the step loop)
    solve_time: float | None = None  # s since train()/learn() was called; None: not solved (or Hopper)
    solve_step: int | None = None  # env steps at that time
    loop_time: float | None = None  # ppokit: wall-clock of the whole training loop
    startup_time: float | None = None  # s from train()/learn() being called to the first rollout's start
    raw_sb3_sps: float | None = None  # raw: SB3's DummyVecEnv path
    raw_plain_sps: float | None = None  # raw-hopper: a plain gym.make env, reset by hand
    n_envs: int = 0
    device: str = "cpu"
    import_rss_mib: float = 0.0  # max RSS once imported
    peak_rss_mib: float = 0.0  # max RSS at the end
    gpu_peak_mib: float | None = None  # cuda: torch.cuda.max_memory_allocated
    later_sps: float | None = None  # ppokit: steps/s over the updates after the first (compiled by then)
    first_update_time: float | None = None  # ppokit: the first rollout and update (compiling in it, if at all)

    @property
    def sps(self) -> float:
        return self.steps / self.train_time


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def first_solved(episodes: Iterable[tuple[float, int, float]]) -> tuple[float | None, int | None]:
    """First (time, step) at which the mean of the last WINDOW returns is >= SOLVED_AT, from
    (time, step, return) in the order the episodes finished."""
    window: deque[float] = deque(maxlen=WINDOW)
    for t, step, ret in episodes:
        window.append(ret)
        if len(window) == WINDOW and sum(window) / WINDOW >= SOLVED_AT:
            return t, step
    return None, None


def _base(steps: int, run_dir: Path, seed: int, device: str) -> dict[str, Any]:
    """The benchmark's run settings: no TensorBoard, no progress bar, a one-episode evaluation."""
    return {"seed": seed, "total_steps": steps, "device": device, "run_dir": str(run_dir), "progress": False,
            "tensorboard": False, "eval_episodes": 1}  # fmt: skip


def _config(job: Job) -> RunConfig:
    """The job's ppokit config: the CartPole-v1 preset (the rl-zoo numbers, as
    compare.default_config builds it), or Hopper with SB3's defaults."""
    from ppokit.config import RunConfig, override
    from ppokit.presets import PRESETS

    run_dir = Path(job.work_dir) / f"{job.kind}-{job.device.replace(':', '')}-seed-{job.seed}"
    base = _base(job.steps, run_dir, job.seed, job.device)
    if job.kind.endswith("hopper"):
        return override(RunConfig(), HOPPER_OVERRIDES | base | {"compile": job.kind == "ppokit-compile-hopper"})
    preset = PRESETS[ENV_ID]
    return override(RunConfig(), {**preset.overrides, "id": preset.env_id, **base,
                                  "compile": job.kind == "ppokit-compile"})  # fmt: skip


# --- jobs, each in its own process -------------------------------------------------------------


def _run_job(job: Job) -> JobResult:
    run: Callable[[Job], JobResult] = {
        "raw": _raw_job, "ppokit": _ppokit_job, "ppokit-compile": _ppokit_job, "sb3": _sb3_job,
        "raw-hopper": _raw_hopper_job, "ppokit-hopper": _ppokit_job, "ppokit-compile-hopper": _ppokit_job,
        "sb3-hopper": _sb3_job,
    }[job.kind]  # fmt: skip
    return run(job)


def _native_sps(n_envs: int, rounds: int, seed: int) -> float:
    """Steps/s of Gymnasium's native CartPole vector env of n_envs, random actions drawn beforehand."""
    import gymnasium as gym
    import numpy as np

    actions = np.random.default_rng(seed).integers(0, 2, size=(rounds, n_envs))
    native = gym.make_vec(ENV_ID, num_envs=n_envs, vectorization_mode="vector_entry_point")
    native.reset(seed=seed)
    start = time.perf_counter()
    for a in actions:
        native.step(a)
    elapsed = time.perf_counter() - start
    native.close()
    return rounds * n_envs / elapsed


def _raw_job(job: Job) -> JobResult:
    import numpy as np
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv

    n_envs = _config(job).env.num_envs
    rounds = job.steps // n_envs
    native_sps = _native_sps(n_envs, rounds, job.seed)

    actions = np.random.default_rng(job.seed).integers(0, 2, size=(rounds, n_envs))
    dummy = make_vec_env(ENV_ID, n_envs=n_envs, seed=job.seed, vec_env_cls=DummyVecEnv)
    dummy.reset()
    start = time.perf_counter()
    for a in actions:
        dummy.step(a)
    dummy_time = time.perf_counter() - start
    dummy.close()

    steps = rounds * n_envs
    return JobResult("raw", job.seed, steps, steps / native_sps, raw_sb3_sps=steps / dummy_time, n_envs=n_envs,
                     peak_rss_mib=_maxrss_mib())  # fmt: skip


def _raw_hopper_job(job: Job) -> JobResult:
    import gymnasium as gym
    import numpy as np
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv

    from ppokit.classic.envs import make_vec_env as ppokit_vec_env

    plain = gym.make(HOPPER_ID)
    space = plain.action_space
    assert isinstance(space, gym.spaces.Box)
    actions = np.random.default_rng(job.seed).uniform(space.low, space.high, (job.steps, *space.shape))
    actions = actions.astype(space.dtype)

    warmup = actions[:WARMUP_STEPS]  # untimed, each path: first calls into MuJoCo, caches

    def plain_steps(steps: Iterable[Any]) -> None:
        for a in steps:
            _, _, terminated, truncated, _ = plain.step(a)
            if terminated or truncated:
                plain.reset()

    plain.reset(seed=job.seed)
    plain_steps(warmup)
    start = time.perf_counter()
    plain_steps(actions)
    plain_time = time.perf_counter() - start
    plain.close()

    vec = ppokit_vec_env(_config(job).env)  # what ppokit steps: SyncVectorEnv of 1, NEXT_STEP autoreset
    vec.env.reset(seed=job.seed)
    for a in warmup:
        vec.env.step(a[None])
    start = time.perf_counter()
    for a in actions[:, None]:
        vec.env.step(a)
    sync_time = time.perf_counter() - start
    vec.close()

    dummy = make_vec_env(HOPPER_ID, n_envs=1, seed=job.seed, vec_env_cls=DummyVecEnv)
    dummy.reset()
    for a in warmup:
        dummy.step(a[None])
    start = time.perf_counter()
    for a in actions[:, None]:
        dummy.step(a)
    dummy_time = time.perf_counter() - start
    dummy.close()
    return JobResult("raw-hopper", job.seed, job.steps, sync_time, raw_sb3_sps=job.steps / dummy_time,
                     raw_plain_sps=job.steps / plain_time, n_envs=1, peak_rss_mib=_maxrss_mib())  # fmt: skip


def _warm_up(torch: Any, device: str) -> None:
    """What SB3 does in ``PPO(...)``, before its clock starts, and ppokit in ``train()``, after its
    clock starts: the first optimizer construction (it imports ``torch._dynamo`` lazily, ~1 s)
    and, on cuda, the CUDA context. Done here for ppokit, before its clock."""
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1, device=device))])
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _ppokit_job(job: Job) -> JobResult:
    import torch

    from ppokit.classic.hooks import Hooks
    from ppokit.classic.trainer import train

    torch.set_num_threads(1)
    config = _config(job).validate()
    import_rss = _maxrss_mib()
    _warm_up(torch, config.device)

    loop_time: list[float] = []
    first_rollout: list[float] = []
    finished: list[tuple[float, int, float]] = []  # (s since train() was called, env steps, return)
    env_steps = 0
    started = 0.0

    def on_start(state: Any) -> None:  # the loop starts with the first rollout
        first_rollout.append(time.perf_counter() - started)

    def on_rollout(event: Any) -> None:  # every finished episode, stamped at the end of its rollout
        nonlocal env_steps
        now = time.perf_counter() - started
        env_steps += event.episodes.env_steps
        finished.extend((now, env_steps, ret) for ret in event.episodes.returns)

    def on_update(event: Any) -> None:  # the loop's wall-clock up to the end of this update
        loop_time[:] = [time.perf_counter() - started - first_rollout[0]]

    hooks = Hooks(on_start=[on_start], on_rollout=[on_rollout], on_update=[on_update])
    started = time.perf_counter()
    result = train(config, hooks=hooks)
    solve_time, solve_step = (None, None) if job.kind.endswith("hopper") else first_solved(finished)
    gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if config.device.startswith("cuda") else None
    logged = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    later = None
    if len(logged) > 1:
        later = (logged[-1]["global_step"] - logged[0]["global_step"]) / (
            logged[-1]["time_elapsed"] - logged[0]["time_elapsed"]
        )
    return JobResult(job.kind, job.seed, result.global_step, float(result.metrics["time_elapsed"]), solve_time,
                     solve_step, loop_time=loop_time[0] if loop_time else None,
                     startup_time=first_rollout[0] if first_rollout else None, n_envs=config.env.num_envs,
                     device=config.device, import_rss_mib=import_rss, peak_rss_mib=_maxrss_mib(),
                     gpu_peak_mib=gpu_peak, later_sps=later,
                     first_update_time=logged[0]["time_elapsed"] if logged else None)  # fmt: skip


def _sb3_job(job: Job) -> JobResult:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv

    from ppokit.analysis.compare import to_sb3

    torch.set_num_threads(1)
    config = _config(job).validate()
    setup = to_sb3(config)
    if setup.vec_normalize is not None or setup.ent_coef_final is not None:
        raise RuntimeError("the benchmark's configs have no normalization and no entropy schedule")
    import_rss = _maxrss_mib()

    class Episodes(BaseCallback):
        """(seconds since learn() was called, env steps, return) of every finished episode."""

        def __init__(self, started: float) -> None:
            super().__init__()
            self.started = started
            self.finished: list[tuple[float, int, float]] = []
            self.first_rollout: float | None = None

        def _on_rollout_start(self) -> None:
            if self.first_rollout is None:
                self.first_rollout = time.perf_counter() - self.started

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                episode = info.get("episode")
                if episode is not None:
                    self.finished.append((time.perf_counter() - self.started, self.num_timesteps, float(episode["r"])))
            return True

    venv = make_vec_env(config.env.id, n_envs=setup.n_envs, seed=job.seed, vec_env_cls=DummyVecEnv)
    model = PPO(env=venv, seed=job.seed, verbose=0, **setup.ppo_kwargs)
    start = time.perf_counter()
    recorder = Episodes(start)
    model.learn(total_timesteps=setup.total_timesteps, callback=recorder)
    train_time = time.perf_counter() - start
    venv.close()
    solve_time, solve_step = (None, None) if job.kind.endswith("hopper") else first_solved(recorder.finished)
    return JobResult(job.kind, job.seed, model.num_timesteps, train_time, solve_time, solve_step,
                     startup_time=recorder.first_rollout, n_envs=setup.n_envs, import_rss_mib=import_rss,
                     peak_rss_mib=_maxrss_mib())  # fmt: skip


def run_jobs(jobs: Sequence[Job]) -> list[JobResult]:
    """One job at a time, each in a fresh spawned process."""
    results = []
    for i, job in enumerate(jobs, 1):
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            result = pool.submit(_run_job, job).result()
        results.append(result)
        solved = f", time to solve {_fmt_time(result.solve_time)}" if job.kind in SOLVING_KINDS else ""
        device = "" if job.device == "cpu" else f" ({job.device})"
        print(f"[{i}/{len(jobs)}] {job.kind}{device} seed {job.seed}: {result.sps:,.0f} steps/s{solved}, "
              f"peak RSS {result.peak_rss_mib:.0f} MiB", file=sys.stderr, flush=True)  # fmt: skip
    return results


# --- the table ---------------------------------------------------------------------------------

Getter = Callable[[JobResult], float | None]


def _median(values: Sequence[float | None]) -> float | None:
    """Median with None as infinity (not solved); None when the median is not solved or no values."""
    if not values:
        return None
    m = statistics.median(math.inf if v is None else v for v in values)
    return None if math.isinf(m) else m


def _fmt_time(t: float | None) -> str:
    return "not solved" if t is None else f"{t:.1f} s"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}"


def _pick(results: Sequence[JobResult], kind: str, device: str = "cpu") -> list[JobResult]:
    return sorted((r for r in results if r.kind == kind and r.device == device), key=lambda r: r.seed)


def _per_seed(rs: Sequence[JobResult], f: Getter, fmt: str) -> str:
    return ", ".join("-" if (v := f(r)) is None else format(v, fmt) for r in rs)


def _rows(name: str, a: Sequence[JobResult], b: Sequence[JobResult], f: Getter, fmt: str, unit: str = "",
          ratio: Callable[[float | None, float | None], str] = _ratio) -> list[str]:  # fmt: skip
    """A table row of the medians of a and b and their ratio, and a row of the per-seed values."""
    ma, mb = _median([f(r) for r in a]), _median([f(r) for r in b])

    def show(m: float | None) -> str:
        return "not solved" if m is None else format(m, fmt) + unit

    return [f"| {name} | {show(ma)} | {show(mb)} | {ratio(ma, mb)} |",
            f"| - per seed | {_per_seed(a, f, fmt)} | {_per_seed(b, f, fmt)} | |"]  # fmt: skip


def _no_ratio(a: float | None, b: float | None) -> str:
    return ""


def _solved(rs: Sequence[JobResult]) -> str:
    return f"{sum(r.solve_time is not None for r in rs)}/{len(rs)}"


def _loop_sps(rs: Sequence[JobResult]) -> float | None:
    values = [r.steps / r.loop_time for r in rs if r.loop_time]
    return statistics.median(values) if values else None


def _solve_label() -> str:
    return f"time to solve (last {WINDOW} episodes >= {SOLVED_AT:.0f})"


def cartpole_table(results: Sequence[JobResult], seeds: Sequence[int], steps: int) -> list[str]:
    p, s, raw = _pick(results, "ppokit"), _pick(results, "sb3"), _pick(results, "raw")
    pc = _pick(results, "ppokit", "cuda")
    raw_native = statistics.median(r.sps for r in raw)
    raw_dummy = statistics.median(r.raw_sb3_sps or math.nan for r in raw)
    mp_sps, ms_sps = statistics.median(r.sps for r in p), statistics.median(r.sps for r in s)
    lines = [
        f"{ENV_ID}, rl-zoo hyperparameters (ppokit preset; SB3 via to_sb3): {p[0].steps:,} env steps "
        f"(--steps {steps}), seeds {', '.join(map(str, seeds))}, medians over seeds, torch threads 1",
        "",
        "| | ppokit | SB3 | ppokit / SB3 |",
        "|---|---|---|---|",
        *_rows(_solve_label(), p, s, lambda r: r.solve_time, ".1f", " s"),
        f"| - seeds solved | {_solved(p)} | {_solved(s)} | |",
        *_rows("env steps to solve", p, s, lambda r: r.solve_step, ",.0f"),
        *_rows(
            "start-up inside that clock (call to first rollout)", p, s, lambda r: r.startup_time, ".3f", " s", _no_ratio
        ),
        *_throughput_rows(p, s),
        *_compiled_rows(_pick(results, "ppokit-compile"), p, s),
    ]
    if pc:
        lines += [
            *_rows(f"cuda: {_solve_label()}; ppokit / SB3 (CPU)", pc, s, lambda r: r.solve_time, ".1f", " s"),
            f"| - seeds solved | {_solved(pc)} | {_solved(s)} | |",
            *_rows("cuda: start-up inside that clock", pc, s, lambda r: r.startup_time, ".3f", " s", _no_ratio),
            *_rows("cuda: training steps/s; ppokit / SB3 (CPU)", pc, s, lambda r: r.sps, ",.0f"),
            *_rows("cuda: peak memory (max RSS); ppokit / SB3 (CPU)", pc, s, lambda r: r.peak_rss_mib, ".0f", " MiB"),
            f"| cuda: peak GPU memory (torch allocated) | {_per_seed(pc, lambda r: r.gpu_peak_mib, '.0f')} MiB | | |",
        ]
    lines += [
        "",
        f"raw env steps/s, Gymnasium native CartPole vector env, {raw[0].n_envs} envs, random actions: "
        f"{raw_native:,.0f} (per seed: {_per_seed(raw, lambda r: r.sps, ',.0f')})",
        f"raw env steps/s, SB3's env path (DummyVecEnv of {raw[0].n_envs} Monitor-wrapped envs): {raw_dummy:,.0f}",
        f"training / raw native: ppokit {mp_sps / raw_native:.3f}, SB3 {ms_sps / raw_native:.3f}",
    ]
    if pc:
        mc = statistics.median(r.sps for r in pc)
        lines.append(f"cuda: ppokit training / raw native {mc / raw_native:.3f}")
    return lines


def _compiled_rows(pk: Sequence[JobResult], p: Sequence[JobResult], s: Sequence[JobResult]) -> list[str]:
    """compile=True (the fused minibatch step, one compiled graph) against SB3, and the cost of
    its first update against eager ppokit's: cold for the first job (a fresh compile cache),
    warm for the others (the graph loaded from the cache)."""
    if not pk:
        return []
    first = [r.first_update_time for r in pk]
    eager_first = statistics.median(r.first_update_time or math.nan for r in p)
    return [
        *_rows(f"compile=True: {_solve_label()}", pk, s, lambda r: r.solve_time, ".1f", " s"),
        f"| - seeds solved | {_solved(pk)} | {_solved(s)} | |",
        *_rows("compile=True: training steps/s, whole run (compiling in it)", pk, s, lambda r: r.sps, ",.0f"),
        *_rows(
            "compile=True: training steps/s after the first update",
            pk,
            s,
            lambda r: r.later_sps if r.later_sps is not None else r.sps,
            ",.0f",
        ),
        *_rows("compile=True: peak memory (max RSS)", pk, s, lambda r: r.peak_rss_mib, ".0f", " MiB"),
        f"| compile=True: first rollout and update, cold cache (seed {pk[0].seed}) then warm | "
        f"{', '.join('-' if t is None else f'{t:.2f} s' for t in first)} | eager ppokit: {eager_first:.2f} s | |",
        *_rows(
            "ppokit eager: training steps/s after the first update",
            p,
            s,
            lambda r: r.later_sps if r.later_sps is not None else r.sps,
            ",.0f",
        ),
    ]


def _throughput_rows(p: Sequence[JobResult], s: Sequence[JobResult]) -> list[str]:
    """Steps/s, wall-clock and memory rows of a ppokit / SB3 table, and ppokit's whole-loop steps/s."""
    rows = [
        *_rows("training steps/s", p, s, lambda r: r.sps, ",.0f"),
        *_rows("training wall-clock, full run", p, s, lambda r: r.train_time, ".1f", " s"),
        *_rows("peak memory (max RSS)", p, s, lambda r: r.peak_rss_mib, ".0f", " MiB"),
        *_rows("max RSS after imports", p, s, lambda r: r.import_rss_mib, ".0f", " MiB"),
    ]
    if (m := _loop_sps(p)) is not None:
        ms_sps = statistics.median(r.sps for r in s)
        rows.append(f"| training steps/s, ppokit's whole loop (metrics, logging, checkpoints in) | {m:,.0f} | "
                    f"{ms_sps:,.0f} | {m / ms_sps:.2f} |")  # fmt: skip
    return rows


def hopper_table(results: Sequence[JobResult], seeds: Sequence[int], hopper_steps: int) -> list[str]:
    p, s, raw = _pick(results, "ppokit-hopper"), _pick(results, "sb3-hopper"), _pick(results, "raw-hopper")
    pk = _pick(results, "ppokit-compile-hopper")
    pc = _pick(results, "ppokit-hopper", "cuda")
    raw_sync = statistics.median(r.sps for r in raw)
    raw_plain = statistics.median(r.raw_plain_sps or math.nan for r in raw)
    raw_dummy = statistics.median(r.raw_sb3_sps or math.nan for r in raw)
    mp_sps, ms_sps = statistics.median(r.sps for r in p), statistics.median(r.sps for r in s)
    lines = [
        f"{HOPPER_ID}, SB3's PPO defaults on both sides (1 env x 2048 steps, 10 epochs, minibatch 64, lr 3e-4, "
        f"no normalization): {p[0].steps:,} env steps (--hopper-steps {hopper_steps}), "
        f"seeds {', '.join(map(str, seeds))}, medians over seeds, torch threads 1",
        "",
        "| | ppokit | SB3 | ppokit / SB3 |",
        "|---|---|---|---|",
        *_throughput_rows(p, s),
        *_rows(
            "training steps/s after the first update (ppokit; SB3: whole run)",
            p,
            s,
            lambda r: r.later_sps if r.later_sps is not None else r.sps,
            ",.0f",
        ),
    ]
    if pk:
        lines += [
            *_rows(
                "compile=True: training steps/s, whole run (compiling in the first update)",
                pk,
                s,
                lambda r: r.sps,
                ",.0f",
            ),
            *_rows(
                "compile=True: training steps/s after the first update; SB3: whole run",
                pk,
                s,
                lambda r: r.later_sps if r.later_sps is not None else r.sps,
                ",.0f",
            ),
            *_rows("compile=True: peak memory (max RSS)", pk, s, lambda r: r.peak_rss_mib, ".0f", " MiB"),
        ]
    if pc:
        lines += [
            *_rows("cuda: training steps/s; ppokit / SB3 (CPU)", pc, s, lambda r: r.sps, ",.0f"),
            *_rows("cuda: peak memory (max RSS); ppokit / SB3 (CPU)", pc, s, lambda r: r.peak_rss_mib, ".0f", " MiB"),
            f"| cuda: peak GPU memory (torch allocated) | {_per_seed(pc, lambda r: r.gpu_peak_mib, '.0f')} MiB | | |",
        ]
    lines += [
        "",
        f"raw env steps/s, 1 env, random actions: ppokit's path (SyncVectorEnv of 1, NEXT_STEP autoreset) "
        f"{raw_sync:,.0f} (per seed: {_per_seed(raw, lambda r: r.sps, ',.0f')}); plain gym.make env reset by hand "
        f"{raw_plain:,.0f}; SB3's path (DummyVecEnv of 1 Monitor-wrapped env) {raw_dummy:,.0f}",
        f"training steps/s as a percentage of raw: ppokit {100 * mp_sps / raw_sync:.1f}% of its path "
        f"({100 * mp_sps / raw_plain:.1f}% of the plain env); SB3 {100 * ms_sps / raw_dummy:.1f}% of its path "
        f"({100 * ms_sps / raw_plain:.1f}% of the plain env)",
    ]
    if pk:
        mk = statistics.median(r.later_sps or r.sps for r in pk)
        lines.append(f"compile=True, after the first update: ppokit {100 * mk / raw_sync:.1f}% of its raw path")
    if pc:
        mc = statistics.median(r.sps for r in pc)
        lines.append(f"cuda: ppokit {100 * mc / raw_sync:.1f}% of its raw path")
    return lines


def table(
    results: Sequence[JobResult],
    seeds: Sequence[int],
    steps: int,
    hopper_steps: int | None,
    notes: Sequence[str] = (),
) -> str:
    """Every section whose jobs ran, then the notes (sections skipped, and why)."""
    lines = cartpole_table(results, seeds, steps)
    if hopper_steps is not None and _pick(results, "ppokit-hopper"):
        lines += ["", *hopper_table(results, seeds, hopper_steps)]
    if notes:
        lines += ["", *(f"note: {n}" for n in notes)]
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------------


def _hopper_missing() -> str | None:
    """Why Hopper cannot run here, or None."""
    try:
        import mujoco  # noqa: F401
    except ImportError as e:
        return f"{HOPPER_ID} skipped: mujoco is not importable ({e}); pip install -e '.[mujoco]'"
    return None


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N (default 3)")
    parser.add_argument("--steps", type=int, default=100_000, help="CartPole env steps per run (default 100000)")
    parser.add_argument("--hopper-steps", type=int, default=20_480, help="Hopper-v5 env steps per run (default 20480)")
    parser.add_argument("--no-hopper", action="store_true", help="skip the Hopper-v5 section")
    parser.add_argument("--no-cuda", action="store_true", help="skip the cuda rows even with a CUDA device")
    quick = "smoke mode: 5000 CartPole steps, 2048 Hopper steps, 1 seed"
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--json", type=Path, help="also write every job's result here")
    args = parser.parse_args(argv)

    seeds = [1] if args.quick else list(range(1, args.seeds + 1))
    steps = 5_000 if args.quick else args.steps
    if not seeds or steps < 256:
        parser.error("--seeds must be >= 1 and --steps >= 256 (one rollout)")
    notes: list[str] = []

    hopper_steps: int | None = 2_048 if args.quick else args.hopper_steps
    if args.no_hopper:
        hopper_steps = None
        notes.append(f"{HOPPER_ID} skipped: --no-hopper")
    elif (why := _hopper_missing()) is not None:
        hopper_steps = None
        notes.append(why)
    elif hopper_steps is not None and hopper_steps < HOPPER_OVERRIDES["num_steps"]:
        parser.error(f"--hopper-steps must be >= {HOPPER_OVERRIDES['num_steps']} (one rollout)")

    cuda = not args.no_cuda and _cuda_available()
    if not cuda:
        notes.append("cuda rows skipped: " + ("--no-cuda" if args.no_cuda else "torch.cuda.is_available() is False"))
    for note in notes:
        print(f"note: {note}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="ppokit-speed-") as work:
        # A fresh compile cache: the first compiled job compiles (cold), the later ones load (warm).
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(work) / "compile-cache")
        jobs: list[Job] = []
        for seed in seeds:
            for kind in CARTPOLE_KINDS:
                jobs.append(Job(kind, seed, steps, work))
                if cuda and kind in CUDA_KINDS:
                    jobs.append(Job(kind, seed, steps, work, "cuda"))
        if hopper_steps is not None:
            for seed in seeds:
                for kind in HOPPER_KINDS:
                    jobs.append(Job(kind, seed, hopper_steps, work))
                    if cuda and kind in CUDA_KINDS:
                        jobs.append(Job(kind, seed, hopper_steps, work, "cuda"))
        results = run_jobs(jobs)
    print(table(results, seeds, steps, hopper_steps, notes))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"seeds": seeds, "steps": steps, "hopper_steps": hopper_steps, "hopper_overrides": HOPPER_OVERRIDES,
                   "cuda": cuda, "notes": notes,
                   "results": [asdict(r) | {"sps": r.sps} for r in results]}  # fmt: skip
        args.json.write_text(json.dumps(payload, indent=2, default=str))


if __name__ == "__main__":
    main()
