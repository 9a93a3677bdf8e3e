"""Per-env hyperparameters known to work, each with the source of its numbers.

A preset is a set of flat ``field=value`` overrides on the defaults; flags and config files
override a preset in turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ppokit.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    env_id: str
    source: str
    overrides: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    "CartPole-v1": Preset(
        "CartPole-v1",
        "rl-baselines3-zoo hyperparams/ppo.yml (CartPole-v1): lr and clip range both annealed linearly",
        {"num_envs": 8, "num_steps": 32, "minibatch_size": 256, "update_epochs": 20,
         "gae_lambda": 0.8, "gamma": 0.98, "learning_rate": 1e-3, "anneal_clip": True,
         "ent_coef": 0.0, "total_steps": 100_000},
    ),
    "Pendulum-v1": Preset(
        "Pendulum-v1",
        "rl-baselines3-zoo hyperparams/ppo.yml (Pendulum-v1) retuned for no gSDE by ppokit: "
        "8 x 256 steps, minibatch 256, gamma 0.95, reward scaling, no value clipping "
        "(8/8 seeds reach -130 to -184 at 100k steps; docs/learning.md)",
        {"num_envs": 8, "num_steps": 256, "minibatch_size": 256, "update_epochs": 10,
         "gae_lambda": 0.95, "gamma": 0.95, "learning_rate": 1e-3, "ent_coef": 0.0,
         "norm_obs": True, "norm_reward": True, "clip_vloss": False, "total_steps": 100_000},
    ),
    "LunarLander-v3": Preset(
        "LunarLander-v3",
        "rl-baselines3-zoo hyperparams/ppo.yml (LunarLander-v2, same dynamics)",
        {"num_envs": 16, "num_steps": 1024, "minibatch_size": 64, "update_epochs": 4,
         "gae_lambda": 0.98, "gamma": 0.999, "ent_coef": 0.01, "learning_rate": 3e-4,
         "total_steps": 1_000_000},
    ),
}  # fmt: skip


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ConfigError("preset", f"unknown preset {name!r}; allowed: {', '.join(PRESETS)}")
    return PRESETS[name]
