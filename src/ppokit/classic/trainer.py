"""The training loop: schedule, collect, advantages, update, metrics, log, checkpoint."""

from __future__ import annotations

import copy
import json
import math
import random
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import Tensor

from ppokit.classic.envs import EnvFactory, VecEnv, make_vec_env, restore, snapshot
from ppokit.classic.evaluation import EvalResult, episode_summary, evaluate
from ppokit.classic.policy import ActorCritic, RunningNorm
from ppokit.classic.rollout import Episodes, Rollout, RolloutState, collect, collect_episodes
from ppokit.config import CRITIC_FREE, AlgoConfig, EnvConfig, RunConfig, from_dict, to_dict
from ppokit.core.advantages import discounted_returns, gae, group_relative_advantages
from ppokit.core.losses import adapt_clip_coef, adapt_kl_coef, explained_variance, masked_mean
from ppokit.core.optim import FlatAdam
from ppokit.core.update import Batch, Coefs, LossFn, minibatch_loss, ppo_update
from ppokit.diagnostics import Diagnostics, in_annealing_tail
from ppokit.errors import CheckpointError, ConfigError, NonFiniteError
from ppokit.io import checkpoint as ckpt
from ppokit.io.loggers import JsonlLogger, Logger, Loggers, ProgressLogger, TensorBoardLogger

_console = Console(stderr=True)


@dataclass
class TrainState:
    """Everything that changes during training; a checkpoint is this plus the config."""

    policy: ActorCritic
    optimizer: FlatAdam
    rollout: RolloutState
    return_norm: RunningNorm
    shuffle: torch.Generator
    diagnostics: Diagnostics
    initial_policy: ActorCritic  # frozen copy of the policy at update 0 (KL from initial)
    kl_coef: float = 0.0  # ppo-kl's adaptive beta
    clip_coef: float = 0.0  # the adaptive clip range's current value
    global_step: int = 0
    update: int = 0
    train_time: float = 0.0  # wall-clock seconds spent training, over all sessions of the run
    best_eval: float | None = None  # best periodic evaluation mean so far (best.pt)


@dataclass
class TrainResult:
    run_dir: Path
    config: RunConfig
    global_step: int
    updates: int
    metrics: dict[str, float] = field(default_factory=dict)  # the last update's metrics
    evaluation: EvalResult | None = None
    interrupted: bool = False


def train(
    config: RunConfig | None = None,
    env_factory: EnvFactory | None = None,
    resume: str | Path | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train PPO with ``config`` (default: the defaults, CartPole-v1).

    ``resume``: a run folder or checkpoint to continue; its saved config is used and
    ``config`` must be None. ``stop_after``: stop with a checkpoint after this many updates
    in this call (time-sliced jobs)."""
    saved = ckpt.load(resume) if resume is not None else None
    if saved is not None and resume is not None:
        if config is not None:
            raise ConfigError("resume", "a resumed run uses its saved config; pass config=None")
        folder = Path(resume) if Path(resume).is_dir() else Path(resume).parent.parent
        config = replace(from_dict(saved["config"]), run_dir=str(folder))
    config = config or RunConfig()
    config.validate()
    run_dir = _run_dir(config, resuming=saved is not None)
    _seed_everything(config.seed)
    if config.torch_threads > 0:
        torch.set_num_threads(config.torch_threads)  # process-wide, as torch has it
    device = torch.device(config.device)
    vec = make_vec_env(_env_config(config), env_factory=env_factory)
    try:
        state = _initial_state(config, vec, device)  # checks the spaces before anything is written
        if config.algo.method == "grpo":
            _check_shared_start(vec, config)
        if saved is not None:
            _load_state(state, saved, vec, config)
        else:
            (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
            ckpt.atomic_write_text(run_dir / "config.toml", _toml(to_dict(config)))
        buf = Rollout.allocate(config.algo.num_steps, vec, state.policy, device)
        loggers = _make_loggers(config, run_dir, state)
        try:
            loss_fn: LossFn = torch.compile(minibatch_loss) if config.compile else minibatch_loss
            metrics, interrupted = _loop(config, vec, state, buf, loggers, run_dir, stop_after, env_factory, loss_fn)
        finally:
            loggers.close()
    finally:
        vec.close()
    result = TrainResult(run_dir, config, state.global_step, state.update, metrics, None, interrupted)
    if state.update >= config.num_updates:
        result.evaluation = evaluate(
            state.policy,
            config.env,
            config.eval_episodes,
            config.eval_deterministic,
            config.seed,
            env_factory,
        )
        ckpt.atomic_write_text(run_dir / "eval.json", json.dumps(result.evaluation.to_dict(), indent=2))
    return result


def _loop(
    config: RunConfig,
    vec: VecEnv,
    state: TrainState,
    buf: Rollout,
    loggers: Loggers,
    run_dir: Path,
    stop_after: int | None,
    env_factory: EnvFactory | None,
    loss_fn: LossFn,
) -> tuple[dict[str, float], bool]:
    algo, metrics = config.algo, {}
    first_update = state.update
    with _GracefulInterrupt() as interrupt:
        while state.update < config.num_updates:
            progress = state.update / config.num_updates
            lr, coefs = _schedules(config, state, progress)
            for group in state.optimizer.param_groups:
                group["lr"] = lr

            start = time.perf_counter()
            previous_step = state.global_step
            episodes, batch = _collect_batch(config, state, vec, buf)
            retarget = partial(_gae_targets, buf, algo) if algo.recompute_advantages else None
            metrics = ppo_update(state.policy, state.optimizer, batch, algo, coefs, config.epochs,
                                 config.minibatch_size, state.shuffle, state.initial_policy, retarget,
                                 loss_fn)  # fmt: skip
            elapsed = time.perf_counter() - start
            _adapt_coefficients(config, state, metrics)
            state.update += 1
            state.global_step += episodes.env_steps  # = batch size, except GRPO's early-ending rollouts
            state.train_time += elapsed

            metrics |= _episode_metrics(episodes) | _update_metrics(config, state, batch)
            metrics |= {"learning_rate": lr, "ent_coef": coefs.ent, "clip_coef": coefs.clip, "kl_coef": coefs.kl,
                        "sps": episodes.env_steps / elapsed}  # fmt: skip
            in_tail = in_annealing_tail(lr, algo.learning_rate, coefs.clip, algo.clip_coef)
            for warning in state.diagnostics.observe(state.update, metrics, progress, in_tail):
                _console.print(f"[yellow]ppokit health:[/yellow] {warning}", highlight=False, soft_wrap=True)
            _check_finite(metrics, state)
            loggers.log(state.global_step, metrics)
            if config.eval_every and state.global_step // config.eval_every > previous_step // config.eval_every:
                _periodic_eval(config, state, run_dir, vec, env_factory)

            stop = interrupt.requested or (stop_after is not None and state.update - first_update >= stop_after)
            if stop or state.update % config.checkpoint_every == 0 or state.update == config.num_updates:
                _save(run_dir / "checkpoints" / "last.pt", config, state, vec)
                ckpt.atomic_write_text(run_dir / "diagnostics.json", json.dumps(state.diagnostics.summary(), indent=2))
            if stop:
                return metrics, True
    return metrics, False


def _schedules(config: RunConfig, state: TrainState, progress: float) -> tuple[float, Coefs]:
    """This update's learning rate and coefficients: linear schedules, or adaptive values."""
    algo = config.algo
    lr = algo.learning_rate * (1.0 - progress if algo.anneal_lr else 1.0)
    ent_coef = _linear(algo.ent_coef, algo.ent_coef_final, progress)
    clip_coef = algo.clip_coef * (1.0 - progress if algo.anneal_clip else 1.0)
    if algo.adaptive_clip:
        clip_coef = state.clip_coef
    return lr, Coefs(ent_coef, clip_coef, state.kl_coef, algo.ref_kl_coef)


def _adapt_coefficients(config: RunConfig, state: TrainState, metrics: dict[str, float]) -> None:
    """ppo-kl's beta and the adaptive clip range react to the KL this update caused."""
    algo, kl = config.algo, metrics["approx_kl_final"]
    if metrics["minibatch_steps"] == 0:  # no update, nothing to react to
        return
    if algo.method == "ppo-kl" and algo.kl_adaptive:
        state.kl_coef = adapt_kl_coef(state.kl_coef, kl, algo.kl_target)
    if algo.adaptive_clip:
        state.clip_coef = adapt_clip_coef(state.clip_coef, kl, algo.clip_kl_target, algo.clip_min, algo.clip_max)


def _update_metrics(config: RunConfig, state: TrainState, batch: Batch) -> dict[str, float]:
    """Per-update metrics of the rollout: the critic's fit and the value targets' scale."""
    critic = config.algo.method not in CRITIC_FREE
    targets = batch.returns[batch.mask.bool()].double()
    return {
        "explained_variance": explained_variance(batch.values, batch.returns, batch.mask) if critic else math.nan,
        "value_target_mean": float(targets.mean()) if critic and targets.numel() else math.nan,
        "value_target_std": float(targets.std(unbiased=False)) if critic and targets.numel() else math.nan,
        "time_elapsed": state.train_time,
        "update": float(state.update),
    }


def _periodic_eval(
    config: RunConfig, state: TrainState, run_dir: Path, vec: VecEnv, env_factory: EnvFactory | None
) -> None:
    """Evaluate on separate envs (normalization frozen); keep the best policy as best.pt."""
    result = evaluate(state.policy, config.env, config.eval_episodes, config.eval_deterministic,
                      config.seed + state.update, env_factory)  # fmt: skip
    record = {"global_step": state.global_step, "update": state.update, "time_elapsed": state.train_time,
              "deterministic": result.deterministic, **result.summary()}  # fmt: skip
    with (run_dir / "evals.jsonl").open("a") as f:
        f.write(json.dumps(record) + "\n")
    if state.best_eval is None or result.mean > state.best_eval:
        state.best_eval = result.mean
        _save(run_dir / "checkpoints" / "best.pt", config, state, vec)


def _collect_batch(config: RunConfig, state: TrainState, vec: VecEnv, buf: Rollout) -> tuple[Episodes, Batch]:
    """Collect a rollout and turn it into a batch with the method's advantages:
    GAE with a critic (ppo, ppo-kl, a2c), Monte-Carlo returns (reinforce), group-relative
    episode returns (grpo)."""
    algo = config.algo
    reference = state.initial_policy if algo.ref_kl_coef > 0 else None
    if algo.method == "grpo":
        groups = vec.num_envs // algo.group_size
        seeds = [_group_seed(config, state.update, g) for g in range(groups) for _ in range(algo.group_size)]
        episodes, returns = collect_episodes(state.policy, vec, buf, seeds, config.env.info_metrics)
        per_env = group_relative_advantages(returns.view(groups, algo.group_size), algo.group_scale_std)
        advantages = per_env.view(1, -1).expand_as(buf.rewards)
        return episodes, Batch.from_rollout(buf, advantages, buf.values, buf.valid, reference)
    episodes = collect(state.policy, vec, buf, state.rollout, state.return_norm, algo.gamma,
                       config.env.clip_reward, config.env.info_metrics)  # fmt: skip
    if algo.method == "reinforce":
        returns, complete = discounted_returns(buf.rewards, torch.maximum(buf.terminated, buf.truncated), algo.gamma)
        mask = buf.valid * complete
        baseline = masked_mean(returns, mask) if algo.reinforce_baseline else 0.0
        return episodes, Batch.from_rollout(buf, returns - baseline, returns, mask, reference)
    advantages = _gae(buf, buf.values, buf.next_values, algo)
    return episodes, Batch.from_rollout(buf, advantages, advantages + buf.values, buf.valid, reference)


def _gae(buf: Rollout, values: Tensor, next_values: Tensor, algo: AlgoConfig) -> Tensor:
    """GAE over the rollout for the given values ``[T, N]``."""
    dones = torch.maximum(buf.terminated, buf.truncated)
    # Off, a time-limit truncation counts as a termination (the ablation of what bootstrapping buys).
    cuts_bootstrap = buf.terminated if algo.bootstrap_truncation else dones
    return gae(buf.rewards, values, next_values, cuts_bootstrap, dones, algo.gamma, algo.gae_lambda)


def _gae_targets(buf: Rollout, algo: AlgoConfig, policy: ActorCritic) -> tuple[Tensor, Tensor]:
    """Flat ``(advantages, returns)`` recomputed with ``policy``'s current critic, as
    ``_collect_batch`` makes them (``algo.recompute_advantages``)."""
    values, next_values = buf.values_under(policy)
    advantages = _gae(buf, values, next_values, algo)
    batch = Batch.from_rollout(buf, advantages, advantages + values, buf.valid)
    return batch.advantages, batch.returns


def _env_config(config: RunConfig) -> EnvConfig:
    """GRPO resets each env with its group's seed: that needs envs seeded one by one (sync)."""
    if config.algo.method == "grpo" and config.env.vectorization == "auto":
        return replace(config.env, vectorization="sync")
    return config.env


def _check_shared_start(vec: VecEnv, config: RunConfig) -> None:
    """GRPO compares episodes from one start state: envs reset with one seed must agree."""
    obs, _ = vec.env.reset(seed=[config.seed] * vec.num_envs)  # type: ignore[arg-type]  # one seed per env
    if not np.allclose(obs, obs[:1]):
        raise ConfigError(
            "algo",
            f"grpo needs envs that reset(seed) to one start state; {config.env.id} started from "
            "different observations with the same seed",
        )


def _group_seed(config: RunConfig, update: int, group: int) -> int:
    """The reset seed shared by the envs of one GRPO group: new every update, reproducible."""
    return (config.seed * 1_000_003 + update * 10_007 + group) % 2**31


def _episode_metrics(episodes: Episodes) -> dict[str, float]:
    info = {f"info_{k}": episodes.info_sums[k] / max(1, n) for k, n in episodes.info_counts.items()}
    return info | episode_summary("episode", episodes.returns, episodes.lengths)


def _check_finite(metrics: dict[str, float], state: TrainState) -> None:
    """Stop on NaN/inf in a loss or gradient, or in any parameter, naming the first one."""
    if metrics["minibatch_steps"] == 0:  # no valid sample, no update: the losses are undefined
        return
    for name in ("loss", "policy_loss", "value_loss", "entropy", "grad_norm", "approx_kl"):
        if not math.isfinite(metrics[name]):
            raise NonFiniteError(name, state.update)
    for name, p in state.policy.named_parameters():
        if not torch.isfinite(p).all():
            raise NonFiniteError(f"parameter {name}", state.update)


def _linear(start: float, end: float | None, progress: float) -> float:
    return start if end is None else start + (end - start) * progress


# --- State, checkpoints ------------------------------------------------------------------


def _initial_state(config: RunConfig, vec: VecEnv, device: torch.device) -> TrainState:
    policy = ActorCritic(vec.obs_space, vec.action_space, config.policy,
                         config.env.norm_obs, config.env.clip_obs).to(device)  # fmt: skip
    optimizer = FlatAdam(policy, config.algo.learning_rate, config.algo.adam_eps)  # after .to(device)
    obs, _ = vec.env.reset(seed=config.seed)
    shuffle = torch.Generator().manual_seed(config.seed)
    initial = copy.deepcopy(policy).requires_grad_(False)
    return TrainState(policy, optimizer, RolloutState.start(obs), RunningNorm((), config.env.norm_reward), shuffle,
                      Diagnostics(config.diagnostics), initial, config.algo.kl_coef, config.algo.clip_coef)  # fmt: skip


def _save(path: Path, config: RunConfig, state: TrainState, vec: VecEnv) -> None:
    r = state.rollout
    payload: dict[str, Any] = {
        "config": to_dict(config),
        "policy": state.policy.state_dict(),
        "initial_policy": state.initial_policy.state_dict(),
        "kl_coef": state.kl_coef,
        "clip_coef": state.clip_coef,
        "optimizer": state.optimizer.state_dict(),
        "return_norm": state.return_norm.state_dict(),
        "rng": ckpt.rng_states(state.shuffle),
        "global_step": state.global_step,
        "update": state.update,
        "train_time": state.train_time,
        "best_eval": state.best_eval,
        "diagnostics": state.diagnostics.state(),
        "rollout": {k: torch.from_numpy(np.array(getattr(r, k))) for k in vars(r)},
        "env_state": snapshot(vec),
        "spaces": {"observation": str(vec.obs_space), "action": str(vec.action_space)},
    }
    ckpt.save(path, payload)


def _load_state(state: TrainState, saved: dict[str, Any], vec: VecEnv, config: RunConfig) -> None:
    spaces = {"observation": str(vec.obs_space), "action": str(vec.action_space)}
    if saved.get("spaces") != spaces:
        raise CheckpointError(f"checkpoint: spaces {saved.get('spaces')} do not match the env's {spaces}")
    try:
        state.policy.load_state_dict(saved["policy"])
        state.initial_policy.load_state_dict(saved["initial_policy"])
        state.kl_coef, state.clip_coef = float(saved["kl_coef"]), float(saved["clip_coef"])
        state.optimizer.load_state_dict(saved["optimizer"])
        state.return_norm.load_state_dict(saved["return_norm"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise CheckpointError(f"checkpoint: weights do not fit this config ({str(e).splitlines()[0]})") from None
    state.global_step, state.update = int(saved["global_step"]), int(saved["update"])
    state.train_time, state.best_eval = float(saved["train_time"]), saved["best_eval"]
    state.diagnostics.load_state(saved["diagnostics"])
    ckpt.set_rng_states(saved["rng"], state.shuffle)
    env_state = saved.get("env_state")
    if env_state is not None and restore(vec, env_state):
        state.rollout = RolloutState(**{k: v.numpy().copy() for k, v in saved["rollout"].items()})
    else:
        warnings.warn(
            f"{config.env.id}: the env's state is not plain data and cannot be restored; "
            "the episodes in flight at the checkpoint restart from new resets",
            stacklevel=2,
        )
        obs, _ = vec.env.reset(seed=config.seed + state.update)
        state.rollout = RolloutState.start(obs)


# --- Run folder, loggers, seeding ----------------------------------------------------------


def _run_dir(config: RunConfig, resuming: bool) -> Path:
    if config.run_dir is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path("runs") / f"{config.env.id.replace('/', '_')}__{config.seed}__{stamp}"
    else:
        run_dir = Path(config.run_dir)
    if not resuming and (run_dir / "checkpoints" / "last.pt").exists():
        raise ConfigError("run_dir", f"{run_dir} already holds a run; resume it with --resume or pick another")
    return run_dir


def _make_loggers(config: RunConfig, run_dir: Path, state: TrainState) -> Loggers:
    keep = state.update if state.update > 0 else None
    if keep is not None and (run_dir / "evals.jsonl").exists():
        JsonlLogger(run_dir / "evals.jsonl", keep_until_update=keep).close()  # drop evals after the checkpoint
    loggers: list[Logger] = [JsonlLogger(run_dir / "metrics.jsonl", keep_until_update=keep)]
    if config.tensorboard:
        loggers.append(TensorBoardLogger(run_dir / "tensorboard"))
    if config.progress:
        loggers.append(ProgressLogger(config.num_updates * config.batch_size, state.global_step))
    return Loggers(loggers)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _toml(data: dict[str, Any]) -> str:
    import tomli_w

    return tomli_w.dumps(data)


class _GracefulInterrupt:
    """First Ctrl-C: finish the update, checkpoint, stop. Second Ctrl-C: abort at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nppokit: stopping after this update and writing a checkpoint (Ctrl-C again to abort)")

    def __enter__(self) -> _GracefulInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
