"""Stable-Baselines3's PPO from a ppokit config: the mapping, and one training run of it.

:func:`to_sb3` maps a :class:`~ppokit.config.RunConfig` field by field onto SB3's ``PPO(...)``
arguments (the mapping and every difference that cannot be matched: ``docs/compare.md``).
:func:`train_sb3` trains it and evaluates the final policy with ppokit's protocol
(:func:`ppokit.classic.evaluation.evaluate`), writing an SB3 run folder::

    config.toml (the ppokit config mapped), sb3_kwargs.json, metrics.jsonl (per rollout:
    global_step, episode_return_mean, time_elapsed), eval.json, model.zip
    (+ vecnormalize.pkl when it normalizes)
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize
from torch import Tensor, nn

from ppokit.classic.encoders import MLP
from ppokit.classic.evaluation import evaluate
from ppokit.classic.policy import ActorCritic
from ppokit.config import PolicyConfig, RunConfig, to_dict
from ppokit.errors import ConfigError
from ppokit.io import checkpoint as ckpt
from ppokit.io.run_dir import SB3_KWARGS, SB3_MODEL, SB3_VECNORMALIZE, RunDir

# --- the mapping -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinearSchedule:
    """ppokit's linear annealing ``start * (1 - u / U)`` (update ``u`` of ``U``, 0-based) as an
    SB3 schedule of ``progress_remaining``.

    SB3 evaluates schedules after the rollout, at ``p = 1 - num_timesteps / total_timesteps =
    1 - (u + 1) / U``, and once at setup with ``p = 1``; so ppokit's factor is ``p + 1 / U``.
    """

    start: float
    updates: int

    def __call__(self, progress_remaining: float) -> float:
        return self.start * min(1.0, progress_remaining + 1.0 / self.updates)


class SharedTrunk(BaseFeaturesExtractor):
    """ppokit's shared actor-critic trunk as SB3's (shared) features extractor."""

    def __init__(self, observation_space: gym.spaces.Box, hidden_sizes: tuple[int, ...], activation: str) -> None:
        super().__init__(observation_space, features_dim=hidden_sizes[-1])
        self.trunk = MLP(int(np.prod(observation_space.shape)), hidden_sizes, activation, ortho=False)

    def forward(self, observations: Tensor) -> Tensor:
        out: Tensor = self.trunk(observations.flatten(1))
        return out


@dataclass(frozen=True)
class SB3Setup:
    """What SB3 needs to run ``config``: ``PPO(env, **ppo_kwargs)`` on ``n_envs`` envs (wrapped in
    ``VecNormalize(**vec_normalize)`` unless None), ``learn(total_timesteps)``, and the entropy
    weight moved from ``ent_coef`` to ``ent_coef_final`` by a callback (SB3 has no schedule)."""

    n_envs: int
    ppo_kwargs: dict[str, Any]
    vec_normalize: dict[str, Any] | None
    total_timesteps: int
    ent_coef_final: float | None


def to_sb3(config: RunConfig) -> SB3Setup:
    """Map a ppokit config onto SB3's PPO, field by field (table: ``docs/compare.md``).

    ConfigError for what SB3's PPO has no counterpart of: a method other than ``ppo``, a KL
    penalty towards the initial policy, an adaptive, asymmetric or dual clip range, truncations treated as
    terminations (SB3 bootstraps them, as ppokit does by default)."""
    algo, env = config.algo, config.env
    for name, value, plain in (("method", algo.method, "ppo"), ("ref_kl_coef", algo.ref_kl_coef, 0.0),
                               ("adaptive_clip", algo.adaptive_clip.enabled, False),
                               ("clip_high", algo.clip_high, None), ("dual_clip", algo.dual_clip, None),
                               ("bootstrap_truncation", algo.bootstrap_truncation, True),
                               ("recompute_advantages", algo.recompute_advantages, False)):  # fmt: skip
        if value != plain:
            raise ConfigError(name, f"{value!r} has no counterpart in SB3's PPO; allowed for compare: {plain!r}")
    updates = config.num_updates

    def schedule(value: float, anneal: bool) -> float | LinearSchedule:
        return LinearSchedule(value, updates) if anneal else value

    clip = schedule(algo.clip_coef, algo.anneal_clip)
    ppo_kwargs: dict[str, Any] = {
        "policy": "MlpPolicy",
        "n_steps": algo.num_steps,
        "batch_size": algo.minibatch_size,
        "n_epochs": algo.update_epochs,
        "learning_rate": schedule(algo.learning_rate, algo.anneal_lr),
        "gamma": algo.gamma,
        "gae_lambda": algo.gae_lambda,
        "clip_range": clip,
        "clip_range_vf": clip if algo.clip_vloss else None,
        "normalize_advantage": algo.norm_adv,
        "ent_coef": algo.ent_coef,
        "vf_coef": algo.vf_coef,
        "max_grad_norm": algo.max_grad_norm,
        # SB3 stops an update when the minibatch's KL (k3, as ppokit) exceeds 1.5 * target_kl.
        "target_kl": None if algo.target_kl is None else algo.target_kl / 1.5,
        "policy_kwargs": _policy_kwargs(config.policy, algo.adam_eps),
        "device": config.device,
    }
    vec_normalize = None
    if env.norm_obs or env.norm_reward:
        vec_normalize = {"norm_obs": env.norm_obs, "norm_reward": env.norm_reward, "clip_obs": env.clip_obs,
                         "clip_reward": env.clip_reward, "gamma": algo.gamma}  # fmt: skip
    return SB3Setup(env.num_envs, ppo_kwargs, vec_normalize, updates * config.batch_size, algo.ent_coef_final)


def _policy_kwargs(pol: PolicyConfig, adam_eps: float) -> dict[str, Any]:
    """SB3's ``policy_kwargs`` for ppokit's network: separate actor and critic MLPs, or one
    shared trunk (:class:`SharedTrunk`) with nothing after it but the two heads."""
    activation = nn.Tanh if pol.activation == "tanh" else nn.ReLU
    policy_kwargs: dict[str, Any] = {
        "activation_fn": activation,
        "ortho_init": pol.ortho_init,
        "log_std_init": pol.init_log_std,
        "optimizer_kwargs": {"eps": adam_eps},
    }
    if pol.shared_trunk:
        policy_kwargs |= {
            "net_arch": [],
            "share_features_extractor": True,
            "features_extractor_class": SharedTrunk,
            "features_extractor_kwargs": {"hidden_sizes": pol.hidden_sizes, "activation": pol.activation},
        }
    else:
        policy_kwargs["net_arch"] = {"pi": list(pol.hidden_sizes), "vf": list(pol.hidden_sizes)}
    return policy_kwargs


def describe(value: Any) -> Any:
    """JSON stand-in for what json cannot write (classes, schedules)."""
    return value.__name__ if isinstance(value, type) else repr(value)


# --- one SB3 run -------------------------------------------------------------------------------


def train_sb3(config: RunConfig) -> tuple[list[float], float, int]:
    """Train SB3's PPO on ``config`` into its run folder; (final eval returns, train time, env steps)."""
    import tomli_w

    assert config.run_dir is not None
    run_dir = RunDir(Path(config.run_dir))
    run_dir.root.mkdir(parents=True, exist_ok=True)
    setup = to_sb3(config)
    ckpt.atomic_write_text(run_dir.config, tomli_w.dumps(to_dict(config)))
    ckpt.atomic_write_text(run_dir.root / SB3_KWARGS, json.dumps(asdict(setup), indent=2, default=describe))
    venv: VecEnv = make_vec_env(config.env.id, n_envs=setup.n_envs, seed=config.seed, vec_env_cls=DummyVecEnv)
    norm = VecNormalize(venv, **setup.vec_normalize) if setup.vec_normalize is not None else None
    model = PPO(env=norm or venv, seed=config.seed, verbose=0, **setup.ppo_kwargs)
    log = _RolloutLog(run_dir.metrics, config.batch_size, config.num_updates,
                      config.algo.ent_coef, setup.ent_coef_final)  # fmt: skip
    model.learn(total_timesteps=setup.total_timesteps, callback=log)
    model.save(run_dir.root / SB3_MODEL)
    if norm is not None:
        norm.save(str(run_dir.root / SB3_VECNORMALIZE))
    (norm or venv).close()
    # evaluate() uses only a policy's parameters() and act(); the adapter provides both.
    actor = cast(ActorCritic, _SB3Actor(model, norm))
    evaluation = evaluate(actor, config.env, config.eval_episodes, True, config.seed)
    ckpt.atomic_write_text(run_dir.final_eval, json.dumps(evaluation.to_dict(), indent=2))
    return evaluation.returns, log.train_time, model.num_timesteps


class _RolloutLog(BaseCallback):
    """Per rollout, a metrics.jsonl line like ppokit's (global_step, episode_return_mean of the
    episodes finished in the rollout, time_elapsed); also applies ppokit's entropy schedule.

    An update's time runs from its rollout's start to the next rollout's start (or the end of
    training), so it holds SB3's ``train()``; the JSONL write is outside it.
    """

    def __init__(self, path: Path, batch_size: int, updates: int, ent_coef: float, ent_coef_final: float | None):
        super().__init__()
        self.path, self.batch_size, self.updates = path, batch_size, updates
        self.ent_coef, self.ent_coef_final = ent_coef, ent_coef_final
        self.train_time, self._started = 0.0, 0.0
        self._pending: dict[str, float] = {}
        self._seen: list[int] = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        self._finish_update()
        self._started = time.perf_counter()

    def _on_rollout_end(self) -> None:
        per_env: list[list[float]] = self.training_env.env_method("get_episode_rewards")
        self._seen = self._seen or [0] * len(per_env)
        finished = [r for i, rs in enumerate(per_env) for r in rs[self._seen[i] :]]
        self._seen = [len(rs) for rs in per_env]
        update = self.num_timesteps // self.batch_size  # 1-based: this rollout's update
        self._pending = {"global_step": float(self.num_timesteps), "update": float(update),
                         "episode_return_mean": float(np.mean(finished)) if finished else float("nan"),
                         "episodes": float(len(finished))}  # fmt: skip
        if self.ent_coef_final is not None:
            assert isinstance(self.model, PPO)
            progress = (update - 1) / self.updates
            self.model.ent_coef = self.ent_coef + (self.ent_coef_final - self.ent_coef) * progress

    def _on_training_end(self) -> None:
        self._finish_update()

    def _finish_update(self) -> None:
        if not self._pending:
            return
        elapsed = time.perf_counter() - self._started
        self.train_time += elapsed
        record = self._pending | {"sps": self.batch_size / elapsed, "time_elapsed": self.train_time}
        with self.path.open("a") as f:
            f.write(json.dumps({k: (None if v != v else v) for k, v in record.items()}) + "\n")  # NaN -> null
        self._pending = {}


class _SB3Actor(nn.Module):
    """An SB3 model behind the interface ``evaluate`` uses: ``parameters()`` and ``act(obs)``,
    with the VecNormalize observation statistics (frozen) applied as ppokit applies its own."""

    def __init__(self, model: PPO, norm: VecNormalize | None) -> None:
        super().__init__()
        self.policy = model.policy
        self.model, self.norm = model, norm

    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        x: np.ndarray | dict[str, np.ndarray] = obs.cpu().numpy()
        if self.norm is not None:
            x = self.norm.normalize_obs(x)
        action, _ = self.model.predict(x, deterministic=deterministic)
        return torch.as_tensor(action)
