"""The training loop: schedule, collect, advantages, update, metrics, log, checkpoint."""

from __future__ import annotations

import json
import math
import random
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch
from rich.console import Console

from ppokit import checkpoint as ckpt
from ppokit.advantages import gae
from ppokit.config import RunConfig, from_dict, to_dict
from ppokit.diagnostics import Diagnostics, in_annealing_tail
from ppokit.envs import EnvFactory, VecEnv, make_vec_env, restore, snapshot
from ppokit.errors import CheckpointError, ConfigError, NonFiniteError
from ppokit.evaluation import EvalResult, evaluate
from ppokit.loggers import JsonlLogger, Logger, Loggers, ProgressLogger, TensorBoardLogger
from ppokit.losses import explained_variance
from ppokit.policy import ActorCritic, RunningNorm
from ppokit.rollout import Episodes, Rollout, RolloutState, collect
from ppokit.update import Batch, ppo_update

_console = Console(stderr=True)


@dataclass
class TrainState:
    """Everything that changes during training; a checkpoint is this plus the config."""

    policy: ActorCritic
    optimizer: torch.optim.Adam
    rollout: RolloutState
    return_norm: RunningNorm
    shuffle: torch.Generator
    diagnostics: Diagnostics
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
    device = torch.device(config.device)
    vec = make_vec_env(config.env, env_factory=env_factory)
    try:
        state = _initial_state(config, vec, device)  # checks the spaces before anything is written
        if saved is not None:
            _load_state(state, saved, vec, config)
        else:
            (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
            ckpt.atomic_write_text(run_dir / "config.toml", _toml(to_dict(config)))
        buf = Rollout.allocate(config.algo.num_steps, vec, state.policy, device)
        loggers = _make_loggers(config, run_dir, state)
        try:
            metrics, interrupted = _loop(config, vec, state, buf, loggers, run_dir, stop_after, env_factory)
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
) -> tuple[dict[str, float], bool]:
    algo, metrics = config.algo, {}
    first_update = state.update
    with _GracefulInterrupt() as interrupt:
        while state.update < config.num_updates:
            progress = state.update / config.num_updates
            lr = algo.learning_rate * (1.0 - progress if algo.anneal_lr else 1.0)
            ent_coef = _linear(algo.ent_coef, algo.ent_coef_final, progress)
            clip_coef = algo.clip_coef * (1.0 - progress if algo.anneal_clip else 1.0)
            for group in state.optimizer.param_groups:
                group["lr"] = lr

            start = time.perf_counter()
            previous_step = state.global_step
            episodes = collect(state.policy, vec, buf, state.rollout, state.return_norm,
                               algo.gamma, config.env.clip_reward)  # fmt: skip
            dones = torch.maximum(buf.terminated, buf.truncated)
            advantages = gae(buf.rewards, buf.values, buf.next_values, buf.terminated, dones,
                             algo.gamma, algo.gae_lambda)  # fmt: skip
            batch = Batch.from_rollout(buf, advantages)
            metrics = ppo_update(state.policy, state.optimizer, batch, algo, ent_coef, clip_coef, state.shuffle)
            elapsed = time.perf_counter() - start
            state.update += 1
            state.global_step += config.batch_size
            state.train_time += elapsed

            metrics |= _episode_metrics(episodes)
            metrics |= {
                "explained_variance": explained_variance(batch.values, batch.returns, batch.mask),
                "learning_rate": lr,
                "ent_coef": ent_coef,
                "clip_coef": clip_coef,
                "sps": config.batch_size / elapsed,
                "time_elapsed": state.train_time,
                "update": float(state.update),
            }
            in_tail = in_annealing_tail(lr, algo.learning_rate, clip_coef, algo.clip_coef)
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


def _episode_metrics(episodes: Episodes) -> dict[str, float]:
    if not episodes.returns:
        nan = math.nan
        return dict.fromkeys(
            ("episode_return_mean", "episode_return_std", "episode_return_min", "episode_return_max",
             "episode_length_mean"), nan) | {"episodes": 0.0}  # fmt: skip
    r = np.asarray(episodes.returns)
    return {
        "episode_return_mean": float(r.mean()),
        "episode_return_std": float(r.std()),
        "episode_return_min": float(r.min()),
        "episode_return_max": float(r.max()),
        "episode_length_mean": float(np.mean(episodes.lengths)),
        "episodes": float(len(r)),
    }


def _check_finite(metrics: dict[str, float], state: TrainState) -> None:
    """Stop on NaN/inf in a loss or gradient, or in any parameter, naming the first one."""
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
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.algo.learning_rate, eps=config.algo.adam_eps)
    obs, _ = vec.env.reset(seed=config.seed)
    shuffle = torch.Generator().manual_seed(config.seed)
    return TrainState(policy, optimizer, RolloutState.start(obs), RunningNorm((), config.env.norm_reward), shuffle,
                      Diagnostics(config.diagnostics))  # fmt: skip


def _save(path: Path, config: RunConfig, state: TrainState, vec: VecEnv) -> None:
    r = state.rollout
    payload: dict[str, Any] = {
        "config": to_dict(config),
        "policy": state.policy.state_dict(),
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
