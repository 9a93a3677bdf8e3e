"""The training loop: schedule, collect, advantages, update, metrics, log, checkpoint.

``train`` sets up a ``Run`` (envs, state, buffers, loggers) and ``_loop`` reads top to bottom
as one update does. What differs between methods comes from the method table
(``ppokit.methods``); what persists lives in ``TrainState`` (``ppokit.classic.state``); what
a caller wants to watch it gets through ``Hooks`` (``ppokit.classic.hooks``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from ppokit.classic import ranks
from ppokit.classic.batch import Batch, recomputed_targets, trajectories, vtrace_batch
from ppokit.classic.envs import EnvFactory, VecEnv, make_vec_env
from ppokit.classic.evaluation import EvalResult, evaluate
from ppokit.classic.fused import FusedStep, compile_unavailable, use_compile_cache
from ppokit.classic.hooks import EvalEvent, Hooks, RolloutEvent, UpdateEvent
from ppokit.classic.measures import check_finite, episode_metrics, update_metrics
from ppokit.classic.objective import MinibatchLoss, make_minibatch_loss
from ppokit.classic.rollout import Episodes, Rollout, collect, collect_episodes, storage_line
from ppokit.classic.schedule import adapt_coefficients, advantage_settings, group_seed, schedules, update_plan
from ppokit.classic.state import TrainState, check_keys, initial_state, resume_state, save_checkpoint
from ppokit.classic.update import update_policy
from ppokit.classic.workers import WorkerPool, fill
from ppokit.config import EnvConfig, RunConfig, to_dict
from ppokit.core.advantages import AdvantageSettings
from ppokit.diagnostics import in_annealing_tail
from ppokit.errors import ConfigError, NonFiniteEnvError
from ppokit.io import checkpoint as ckpt
from ppokit.io.loggers import JsonlLogger, Logger, Loggers, ProgressLogger, TensorBoardLogger, WandbLogger
from ppokit.io.run_dir import RunDir, check_writable, run_folder_of
from ppokit.methods import METHODS, Method
from ppokit.parallel import (
    AveragedGradients,
    Comm,
    Solo,
    agreed_mean,
    any_rank,
    check_same_weights,
    rank_share,
    reduced_metrics,
    sync_normalizer,
)
from ppokit.runtime import GracefulInterrupt, Process, seed_everything, torch_threads

_console = Console(stderr=True)


@dataclass
class TrainResult:
    run_dir: Path
    config: RunConfig
    global_step: int
    updates: int
    metrics: dict[str, float] = field(default_factory=dict)  # the last update's metrics
    evaluation: EvalResult | None = None
    interrupted: bool = False


@dataclass
class Run:
    """What one call of ``train`` works with."""

    config: RunConfig
    method: Method
    vec: VecEnv
    state: TrainState
    buf: Rollout
    loggers: Loggers
    paths: RunDir
    process: Process
    seed: int  # this process's seed (``process.seed(config.seed)``)
    hooks: Hooks
    loss_fn: MinibatchLoss
    env_factory: EnvFactory | None
    comm: Comm  # the other ranks (Solo: none)
    pool: WorkerPool | None = None  # asynchronous rollout workers (classic.workers)
    fused: FusedStep | None = None  # the compiled minibatch step (``compile``; classic.fused)

    @property
    def num_updates(self) -> int:
        return ranks.num_updates(self.config, self.process.world_size)


def train(
    config: RunConfig | None = None,
    env_factory: EnvFactory | None = None,
    resume: str | Path | None = None,
    stop_after: int | None = None,
    hooks: Hooks | None = None,
    process: Process | None = None,
    comm: Comm | None = None,
) -> TrainResult:
    """Train with ``config`` (default: the defaults, CartPole-v1).

    ``resume``: a run folder or checkpoint to continue; its saved config is used and
    ``config`` must be None. ``stop_after``: stop with a checkpoint after this many updates
    in this call (time-sliced jobs). ``hooks``: callbacks after each rollout and update.
    ``comm``: the other processes of a data-parallel run (``ppokit.parallel``; the caller
    set up the process group); ``process`` alone: run as that rank without talking to the others
    (seeds differ per rank; only rank 0 writes files)."""
    comm = comm or Solo(process)
    process = comm.process
    saved = ckpt.load(resume) if resume is not None else None
    if saved is not None:
        saved = ranks.for_rank(saved, process.rank, process.world_size)
    if saved is not None and resume is not None:
        if config is not None:
            raise ConfigError("resume", "a resumed run uses its saved config; pass config=None")
        check_keys(saved["state"])
        folder = Path(resume) if Path(resume).is_dir() else run_folder_of(Path(resume))
        config = replace(ckpt.saved_config(saved), run_dir=str(folder))
    config = (config or RunConfig()).validate()
    ranks.check_world_size(config, process.world_size)
    if config.async_workers and process.world_size > 1:
        raise ConfigError("async_workers", f"{config.async_workers} with {process.world_size} processes; allowed: "
                                           "asynchronous workers or data-parallel processes, not both")  # fmt: skip
    paths = RunDir(run_dir_of(config, resuming=saved is not None))
    seed = process.seed(config.seed)
    with torch_threads(config.torch_threads):
        seed_everything(seed)
        vec = make_vec_env(_env_config(config), env_factory=env_factory)
        try:
            run = _start(config, vec, saved, paths, comm, seed, hooks or Hooks(), env_factory)
            try:
                metrics, interrupted = _loop(run, stop_after)
                result = TrainResult(paths.root, config, run.state.global_step, run.state.update, metrics,
                                     interrupted=interrupted)  # fmt: skip
                if run.state.update >= run.num_updates:
                    result.evaluation = _final_evaluation(run)
            finally:
                run.loggers.close()
                if run.pool is not None:
                    run.pool.close()
        finally:
            vec.close()
    return result


def _final_evaluation(run: Run) -> EvalResult:
    """The final evaluation on separate envs: written to eval.json and the loggers' summaries."""
    evaluation = _evaluate(run, run.seed)
    if run.process.writes:
        ckpt.atomic_write_text(run.paths.final_eval, json.dumps(evaluation.to_dict(), indent=2))
        run.loggers.summary(evaluation.summary())
    return evaluation


def _start(
    config: RunConfig,
    vec: VecEnv,
    saved: dict[str, Any] | None,
    paths: RunDir,
    comm: Comm,
    seed: int,
    hooks: Hooks,
    env_factory: EnvFactory | None,
) -> Run:
    """The state (fresh or resumed; rank 0's initial weights on every rank), the rollout buffer,
    the loggers and the loss."""
    method, process = METHODS[config.algo.method], comm.process
    device = torch.device(config.device)
    state = initial_state(config, vec, device, seed)  # checks the spaces before anything is written
    comm.broadcast_(state.policy)
    comm.broadcast_(state.initial_policy)
    if method.collects == "episodes":
        _check_shared_start(vec, config, seed)
    pool = WorkerPool(config, seed, env_factory) if config.async_workers else None  # before anything is written
    if saved is not None:
        resume_state(state, saved, vec, config, seed, process.world_size)
    elif process.writes:
        paths.checkpoints.mkdir(parents=True, exist_ok=True)
        ckpt.atomic_write_text(paths.config, _toml(to_dict(config)))
    buf = Rollout.allocate(config.algo.num_steps, vec, state.policy, device)
    if config.progress and process.writes and not buf.obs.is_floating_point():  # pixels: what they cost
        _console.print(f"ppokit: {storage_line(buf)}", highlight=False)
    loss_fn = make_minibatch_loss(method, config.algo)
    fused = None
    compiling = config.compile and (why_not := compile_unavailable(device)) is None
    if config.compile and not compiling and process.writes:  # a preset's default, or a machine without a compiler
        _console.print(f"ppokit: compile off, the eager step runs: {why_not}", highlight=False, soft_wrap=True)
    if compiling and process.world_size == 1 and config.algo.target_kl is None:
        fused = FusedStep(state.policy, state.optimizer, loss_fn)  # the whole step, one graph
    elif compiling:  # a step that must all-reduce or stop on the KL first: the loss alone
        use_compile_cache()
        loss_fn = torch.compile(loss_fn)
    loggers = _make_loggers(config, paths, state, process)
    return Run(config, method, vec, state, buf, loggers, paths, process, seed, hooks, loss_fn, env_factory, comm,
               pool, fused)  # fmt: skip


def _loop(run: Run, stop_after: int | None) -> tuple[dict[str, float], bool]:
    config, state, algo, comm = run.config, run.state, run.config.algo, run.comm
    num_updates, plan, settings = run.num_updates, update_plan(config), advantage_settings(config)
    several = comm.process.world_size > 1
    optimizer = AveragedGradients(state.optimizer, comm) if several else state.optimizer
    agree = partial(agreed_mean, comm) if several else None
    metrics: dict[str, float] = {}
    first_update = state.update
    run.hooks.start(state)
    with GracefulInterrupt() as interrupt:
        while state.update < num_updates:
            progress = state.update / num_updates
            lr, coefs = schedules(config, state, progress)
            for group in state.optimizer.param_groups:
                group["lr"] = lr

            start = time.perf_counter()
            previous_step = state.global_step
            try:
                episodes, batch, off_policy = _collect_batch(run, settings)
            except NonFiniteEnvError as e:  # name the env and when, then stop as for a NaN loss
                where = f"{config.env.id} during update {state.update + 1} (after {state.global_step:,} env steps): "
                raise NonFiniteEnvError(e.what, where) from None
            episodes = ranks.shared_episodes(comm, episodes)
            run.hooks.rollout(RolloutEvent(state, run.buf, episodes, batch, run.loss_fn))
            retarget = partial(recomputed_targets, run.buf, run.method, settings) if algo.recompute_advantages else None
            metrics = update_policy(state.policy, optimizer, batch, loss_fn=run.loss_fn, coefs=coefs, plan=plan,
                                    generator=state.rng.shuffle, initial=state.initial_policy, retarget=retarget,
                                    critic=run.method.critic, agree=agree, fused=run.fused)  # fmt: skip
            metrics = reduced_metrics(comm, metrics)  # every rank adapts and checks the same numbers
            elapsed = time.perf_counter() - start
            adapt_coefficients(config, run.method, state, metrics)
            state.update += 1
            state.global_step += episodes.env_steps  # = batch size, except when episodes end early
            state.train_time += elapsed

            metrics |= episode_metrics(episodes) | reduced_metrics(comm, update_metrics(run.method, state, batch))
            metrics |= (run.pool.metrics() | off_policy) if run.pool is not None else {}
            metrics |= {"learning_rate": lr, "ent_coef": coefs.ent, "clip_coef": coefs.clip_low, "kl_coef": coefs.kl,
                        "sps": episodes.env_steps / elapsed}  # fmt: skip
            in_tail = in_annealing_tail(lr, algo.learning_rate, coefs.clip_low, algo.clip_coef)
            for warning in state.diagnostics.observe(state.update, metrics, progress, in_tail):
                if run.process.writes:
                    _console.print(f"[yellow]ppokit health:[/yellow] {warning}", highlight=False, soft_wrap=True)
            check_finite(metrics, state)
            run.loggers.log(state.global_step, metrics)
            run.hooks.updated(UpdateEvent(state, metrics))
            if config.eval_every and state.global_step // config.eval_every > previous_step // config.eval_every:
                _periodic_eval(run)
            if config.video_every and state.update % config.video_every == 0 and run.process.writes:
                _video(run)

            requested = any_rank(comm, interrupt.requested) if several else interrupt.requested
            stop = requested or (stop_after is not None and state.update - first_update >= stop_after)
            if stop or state.update % config.checkpoint_every == 0 or state.update == num_updates:
                _checkpoint(run, run.paths.last)
            if stop:
                return metrics, True
    return metrics, False


def _collect_batch(run: Run, settings: AdvantageSettings) -> tuple[Episodes, Batch, dict[str, float]]:
    """Collect a rollout and turn it into a batch with the method's advantages (V-trace's for an
    async worker's with ``vtrace``, and the importance ratios' metrics)."""
    config, state, buf, vec = run.config, run.state, run.buf, run.vec
    algo = config.algo
    reference = state.initial_policy if algo.ref_kl_coef > 0 else None
    if run.method.collects == "episodes":
        groups = vec.num_envs // algo.group.size
        seeds = [group_seed(run.seed, state.update, g) for g in range(groups) for _ in range(algo.group.size)]
        episodes, returns = collect_episodes(state.policy, vec, buf, seeds, config.env.info_metrics)
        traj = trajectories(buf, returns)
    elif run.pool is not None:  # a worker's rollout, collected while the learner updated
        got = run.pool.next_rollout(state.policy, state.update)
        fill(buf, got)
        if config.vtrace:  # corrected for the updates since the worker's policy
            return got.episodes, *vtrace_batch(buf, state.policy, settings, config.vtrace_clip, reference)
        episodes, traj = got.episodes, trajectories(buf)
    else:
        several = run.process.world_size > 1
        before = (state.policy.obs_norm.to_host(), state.return_norm.to_host()) if several else None
        episodes = collect(state.policy, vec, buf, state.rollout, state.return_norm, algo.gamma,
                           config.env.clip_reward, config.env.info_metrics)  # fmt: skip
        if before is not None:  # every rank normalizes the next rollout with the same statistics
            sync_normalizer(run.comm, state.policy.obs_norm, before[0])
            sync_normalizer(run.comm, state.return_norm, before[1])
        traj = trajectories(buf)
    return episodes, Batch.from_rollout(buf, run.method.advantages(traj, settings), reference), {}


def _periodic_eval(run: Run) -> None:
    """Evaluate on separate envs (normalization frozen); keep the best policy as best.pt."""
    state = run.state
    result = _evaluate(run, run.seed + state.update)
    record = {"global_step": state.global_step, "update": state.update, "time_elapsed": state.train_time,
              "deterministic": result.deterministic, **result.summary()}  # fmt: skip
    if run.process.writes:
        with run.paths.evals.open("a") as f:
            f.write(json.dumps(record) + "\n")
    if state.best_eval is None or result.mean > state.best_eval:
        state.best_eval = result.mean
        _checkpoint(run, run.paths.best, diagnostics=False)
    run.hooks.evaluated(EvalEvent(state, record))


def _evaluate(run: Run, seed: int) -> EvalResult:
    """``eval_episodes`` episodes on separate envs, dealt out over the ranks (each with its own
    seed), every rank getting all of them."""
    config = run.config
    share = rank_share(config.eval_episodes, run.process)
    mine = (
        evaluate(run.state.policy, config.env, share, config.eval_deterministic, seed, run.env_factory)
        if share
        else None
    )
    return ranks.shared_evaluation(run.comm, mine, config.eval_deterministic)


def _video(run: Run) -> None:
    """One episode of the deterministic policy to ``videos/update-NNNNNN.mp4`` (``video_every``)."""
    from ppokit.classic.video import record_policy

    path = run.paths.root / "videos" / f"update-{run.state.update:06d}.mp4"
    record_policy(run.state.policy, run.vec, run.config.env, path, seed=run.seed + run.state.update)


def _checkpoint(run: Run, path: Path, diagnostics: bool = True) -> None:
    """Rank 0 writes the checkpoint (and with it the diagnostics summary), with every rank's own
    part when there are several (each rank calls this)."""
    check_same_weights(run.comm, run.state.policy)
    parts = ranks.rank_parts(run.comm, run.state, run.vec)
    if not run.process.writes:
        return
    save_checkpoint(path, run.config, run.state, run.vec, parts)
    if diagnostics:
        ckpt.atomic_write_text(run.paths.diagnostics, json.dumps(run.state.diagnostics.summary(), indent=2))


def _env_config(config: RunConfig) -> EnvConfig:
    """Group methods reset each env with its group's seed: that needs envs seeded one by one (sync)."""
    if METHODS[config.algo.method].collects == "episodes" and config.env.vectorization == "auto":
        return replace(config.env, vectorization="sync")
    return config.env


def _check_shared_start(vec: VecEnv, config: RunConfig, seed: int) -> None:
    """Group methods compare episodes from one start state: envs reset with one seed must agree."""
    obs, _ = vec.env.reset(seed=[seed] * vec.num_envs)  # type: ignore[arg-type]  # one seed per env
    if not np.allclose(obs, obs[:1]):
        raise ConfigError(
            "algo",
            f"{config.algo.method} needs envs that reset(seed) to one start state; {config.env.id} started from "
            "different observations with the same seed",
        )


def run_dir_of(config: RunConfig, resuming: bool) -> Path:
    if config.run_dir is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path("runs") / f"{config.env.id.replace('/', '_')}__{config.seed}__{stamp}"
    else:
        run_dir = Path(config.run_dir)
    check_writable(run_dir, "run_dir")
    if not resuming and RunDir(run_dir).last.exists():
        raise ConfigError("run_dir", f"{run_dir} already holds a run; resume it with --resume or pick another")
    return run_dir


def _make_loggers(config: RunConfig, paths: RunDir, state: TrainState, process: Process) -> Loggers:
    """Rank 0 logs to files (and shows progress); other ranks log nothing."""
    if not process.writes:
        return Loggers([])
    keep = state.update  # a fresh run (0) drops what a run killed before its first checkpoint logged
    if paths.evals.exists():
        JsonlLogger(paths.evals, keep_until_update=keep).close()  # drop evals after the checkpoint
    loggers: list[Logger] = [JsonlLogger(paths.metrics, keep_until_update=keep)]
    if config.tensorboard:
        loggers.append(TensorBoardLogger(paths.tensorboard))
    if config.wandb:
        loggers.append(WandbLogger(paths.root, to_dict(config), config.wandb_project, config.wandb_entity,
                                   config.wandb_group, config.wandb_tags, config.wandb_mode))  # fmt: skip
    if config.progress:
        total = ranks.num_updates(config, process.world_size) * config.batch_size * process.world_size
        loggers.append(ProgressLogger(total, state.global_step))
    return Loggers(loggers)


def _toml(data: dict[str, Any]) -> str:
    import tomli_w

    return tomli_w.dumps(data)
