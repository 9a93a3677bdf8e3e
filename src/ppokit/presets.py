"""Per-env hyperparameters known to work, each with the source of its numbers.

A preset is a set of flat ``field=value`` overrides on the defaults; flags and config files
override a preset in turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ppokit.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    env_id: str  # the env the preset is for (a family's default game)
    source: str
    overrides: dict[str, Any] = field(default_factory=dict)
    family: str | None = None  # a regular expression: the preset is also every matching id's own

    def covers(self, env_id: str) -> bool:
        return env_id == self.env_id or (self.family is not None and re.fullmatch(self.family, env_id) is not None)


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
        "rl-baselines3-zoo hyperparams/ppo.yml (LunarLander-v2, same dynamics), with SB3's defaults for the "
        "rest: lr 3e-4 constant, no value clipping",
        {"num_envs": 16, "num_steps": 1024, "minibatch_size": 64, "update_epochs": 4,
         "gae_lambda": 0.98, "gamma": 0.999, "ent_coef": 0.01, "learning_rate": 3e-4,
         "anneal_lr": False, "clip_vloss": False, "total_steps": 1_000_000, "compile": True},
    ),
}  # fmt: skip

# Continuous control (MuJoCo): the standard details of CleanRL's ppo_continuous_action.py and
# Engstrom et al. 2020 (obs normalization, reward scaling by the return std, both clipped at 10;
# state-independent log std; orthogonal init with 0.01 policy-head gain; actions clipped to the
# bounds; LR annealed), plus ppokit's truncation bootstrapping. The batch is CleanRL's 2048
# steps, 10 epochs, minibatch 64; 4 envs x 512 steps instead of 1 x 2048 for wall-clock.
# ``compile`` is on in the presets of long runs (these and LunarLander's): their step compiled
# makes an update 1.5-1.75x faster and pays its compiling back within 3-16 updates (84 with a
# cold cache) of their 61-488 (benchmarks/compile_presets.py, docs/benchmarks.md). Not on
# CartPole's (break-even 358 of its 390 updates warm) or Pendulum's (60 of 48).
MUJOCO_OVERRIDES: dict[str, Any] = {
    "num_envs": 4, "num_steps": 512, "minibatch_size": 64, "update_epochs": 10, "learning_rate": 3e-4,
    "gamma": 0.99, "gae_lambda": 0.95, "clip_coef": 0.2, "ent_coef": 0.0, "vf_coef": 0.5,
    "max_grad_norm": 0.5, "norm_obs": True, "norm_reward": True, "init_log_std": 0.0,
    "total_steps": 1_000_000, "compile": True,
}  # fmt: skip
_MUJOCO_SOURCE = ("CleanRL ppo_continuous_action.py defaults (its 1M-step MuJoCo benchmark), "
                  "as 4 envs x 512 steps; docs/benchmarks.md")  # fmt: skip
for _env in ("Hopper-v5", "HalfCheetah-v5", "Ant-v5", "Humanoid-v5", "InvertedPendulum-v5"):
    PRESETS[_env] = Preset(_env, _MUJOCO_SOURCE, dict(MUJOCO_OVERRIDES))
# Walker2d: with the common preset, 3 of 5 seeds settled near 1,500 (IQM 0.76x CleanRL's mean).
# Two changes that Andrychowicz et al. 2021 ("What matters in on-policy RL") recommend, as Tianshou's
# MuJoCo PPO also has them: a smaller initial action std and no value-loss clipping.
PRESETS["Walker2d-v5"] = Preset(
    "Walker2d-v5",
    "the MuJoCo preset with initial log std -0.5 (std 0.61, not 1) and no value clipping "
    "(Andrychowicz et al. 2021); docs/benchmarks.md",
    MUJOCO_OVERRIDES | {"init_log_std": -0.5, "clip_vloss": False},
)


# Pixels. Atari: CleanRL's ppo_atari.py (the PPO paper's Atari settings, Schulman et al. 2017,
# table 5, with clip 0.1 fixed): 8 envs x 128 steps, 4 epochs of 4 minibatches, lr 2.5e-4
# annealed, clip 0.1, entropy 0.01, one Nature CNN for actor and critic, rewards clipped to their
# sign and a lost life terminal for the learner, 10M steps.
PRESETS["atari"] = Preset(
    "ALE/Pong-v5",
    "CleanRL ppo_atari.py (Schulman et al. 2017, table 5); every ALE id (ALE/*, *NoFrameskip-v4)",
    {
        "num_envs": 8,
        "num_steps": 128,
        "minibatch_size": 256,
        "update_epochs": 4,
        "learning_rate": 2.5e-4,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "clip_coef": 0.1,
        "ent_coef": 0.01,
        "vf_coef": 0.5,
        "max_grad_norm": 0.5,
        "shared_trunk": True,
        "sign_reward": True,
        "episodic_life": True,
        "total_steps": 10_000_000,
    },
    family=r"ALE/.+|.+NoFrameskip-v4",
)
# MinAtar: the Atari settings on 10x10 grids with MinAtar's small CNN (Young & Tian 2019), 16 envs
# and clip 0.2; no reward clipping (MinAtar's rewards are already 0/1) and no lives.
PRESETS["minatar"] = Preset(
    "MinAtar/Breakout-v1",
    "CleanRL ppo_atari.py's settings with 16 envs and clip 0.2, MinAtar's small CNN; every MinAtar id",
    {
        "num_envs": 16,
        "num_steps": 128,
        "minibatch_size": 512,
        "update_epochs": 4,
        "learning_rate": 2.5e-4,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "clip_coef": 0.2,
        "ent_coef": 0.01,
        "shared_trunk": True,
        "total_steps": 5_000_000,
    },
    family=r"MinAtar/.+",
)


def preset_for(env_id: str) -> str:
    """The name of ``env_id``'s own preset (its id, or its family's), or "none"."""
    if env_id in PRESETS:
        return env_id
    return next((name for name, p in PRESETS.items() if p.covers(env_id)), "none")


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ConfigError("preset", f"unknown preset {name!r}; allowed: {', '.join(PRESETS)}")
    return PRESETS[name]
