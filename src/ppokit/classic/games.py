"""Pixel games: Atari through ale-py's own vector env, MinAtar through its Gymnasium envs.

**Atari** ids (``ALE/Pong-v5``, ``PongNoFrameskip-v4``, any id whose entry point is ale-py's
``AtariEnv``) are built as ``ale_py.AtariVectorEnv`` with the standard preprocessing of Mnih et
al. 2015 and Machado et al. 2018, done in ale-py's C++ threads: no-op reset (up to 30), frame
skip 4 with the max over the last two frames, fire on reset, 84x84 grayscale, a stack of the
last 4 frames (``(4, 84, 84)`` uint8). It steps 1.18x as many env steps/s as Gymnasium's
``AtariPreprocessing`` and ``FrameStackObservation`` wrappers here (median of 3 repeats,
``benchmarks/atari.py``; docs/benchmarks.md), and needs no wrapper of ours. The id keeps its own sticky-action
probability (0.25 for v5, 0 for v4), action set and episode limit (108k frames); the
preprocessing replaces its frame skip.

Reward clipping and episodic life are *not* done by the env: they are the learner's view of
the game (``env.sign_reward``, ``env.episodic_life``). The env reports real games, so episode
returns and evaluations are game scores; ``EpisodicLife`` adds ``info["life_lost"]``, which
the rollout stores as a termination for the learner's bootstrapping only.

**MinAtar** ids (``MinAtar/Breakout-v1``, ...) are registered here on first use (the package
registers them only when asked). Their observations are ``(10, 10, C)`` bool grids.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv, VectorWrapper

from ppokit.errors import ConfigError

ALE_ENTRY_POINT = "ale_py.env:AtariEnv"
ATARI_FRAME_SKIP = 4
ATARI_STACK = 4
ATARI_NOOP_MAX = 30

# Namespace (or id marker) -> (module to import, extra that installs it).
_PACKAGES = {"ALE/": ("ale_py", "atari"), "NoFrameskip": ("ale_py", "atari"), "MinAtar/": ("minatar", "minatar")}


def register_namespace(env_id: str) -> None:
    """Import and register the package that provides ``env_id``'s namespace (ale-py for ALE
    ids, MinAtar for its ids); ConfigError naming the extra when that package is missing."""
    for marker, (module, extra) in _PACKAGES.items():
        if marker not in env_id:
            continue
        try:
            package = importlib.import_module(module)
        except ImportError:
            raise ConfigError("env.id", f"{env_id} needs the {module} package, which is not installed; allowed: "
                                        f"pip install 'ppokit[{extra}]'") from None  # fmt: skip
        if module == "ale_py":
            gym.register_envs(package)
        elif not any(k.startswith("MinAtar/") for k in gym.registry):
            importlib.import_module("minatar.gym").register_envs()
        return


def is_atari(spec: gym.envs.registration.EnvSpec) -> bool:
    return spec.entry_point == ALE_ENTRY_POINT


def make_atari(spec: gym.envs.registration.EnvSpec, num_envs: int) -> VectorEnv:
    """``num_envs`` games of ``spec`` in ale-py's vector env with the standard preprocessing.

    ``num_threads=1``: the envs step in one C++ thread beside the learner, which owns the
    other cores (ale-py's default, one thread per core, competes with torch's threads).
    """
    from ale_py import AtariVectorEnv

    kwargs = spec.kwargs
    return AtariVectorEnv(
        kwargs["game"],
        num_envs,
        num_threads=1,
        max_num_frames_per_episode=int(kwargs.get("max_num_frames_per_episode", 108_000)),
        repeat_action_probability=float(kwargs.get("repeat_action_probability", 0.25)),
        full_action_space=bool(kwargs.get("full_action_space", False)),
        frameskip=ATARI_FRAME_SKIP,
        stack_num=ATARI_STACK,
        noop_max=ATARI_NOOP_MAX,
        maxpool=True,
        grayscale=True,
        img_height=84,
        img_width=84,
        use_fire_reset=True,
        episodic_life=False,  # the learner's view (env.episodic_life): the env plays whole games
        reward_clipping=False,  # the learner's view (env.sign_reward): episode returns stay scores
    )


class EpisodicLife(VectorWrapper):
    """Adds ``info["life_lost"]`` ``[N]`` bool: the step lost a life and the game goes on.

    The learner treats such a step as terminal (no value bootstrapped across a lost life: Mnih
    et al. 2015's episodic life) while the game, the episode bookkeeping and the evaluation go
    on to the real end. ``info["lives"]`` is the count after the step; an env's count is reset
    on the step that follows a game's end (NEXT_STEP autoreset), so no life is lost there.
    """

    def __init__(self, env: VectorEnv) -> None:
        super().__init__(env)
        self.lives = np.zeros(env.num_envs, np.int64)
        self.after_end = np.zeros(env.num_envs, bool)

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.lives = _lives(info, self.num_envs)
        self.after_end[:] = False
        return obs, info

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        lives = _lives(info, self.num_envs)
        done = np.logical_or(terminated, truncated)
        info["life_lost"] = (lives < self.lives) & ~done & ~self.after_end
        self.lives, self.after_end = lives, done
        return obs, reward, terminated, truncated, info


def _lives(info: dict[str, Any], n: int) -> np.ndarray:
    if "lives" not in info:
        raise ConfigError("episodic_life", "got true for an env whose step info has no 'lives'; allowed: false, "
                                           "or an Atari env")  # fmt: skip
    return np.asarray(info["lives"], np.int64).reshape(n)
