"""Vectorized Gymnasium environments with one explicit autoreset mode, and env snapshots.

ppokit steps every vector env in Gymnasium's ``NEXT_STEP`` autoreset mode, the only mode
Gymnasium's native vector envs (CartPole's, for one) implement: the step that ends an episode
returns that episode's *final* observation, and the following step resets the sub-env,
ignoring its action and returning reward 0. The rollout marks that reset step invalid and
leaves it out of the losses; in exchange the value of the final observation, which a truncated
episode bootstraps from, is simply the value of the next stored observation.

An env snapshot is the env's state as plain data (arrays, numbers, RNG states), so that a
checkpoint can hold it and be loaded without unpickling code. Envs whose state is not plain
data (Box2D worlds, simulators) cannot be snapshotted; resuming them restarts the episodes in
flight (the trainer says so).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv

from ppokit.config import EnvConfig
from ppokit.errors import ConfigError

EnvFactory = Callable[[], gym.Env]


@dataclass
class VecEnv:
    """A vector env plus what the rollout needs to talk to it."""

    env: VectorEnv
    obs_space: gym.Space[Any]  # one env's observation space
    action_space: gym.Space[Any]  # one env's action space
    num_envs: int

    def to_env_actions(self, actions: np.ndarray) -> np.ndarray:
        """Map stored (sampled) actions to what the env accepts: clipped Box, offset Discrete."""
        space = self.action_space
        if isinstance(space, gym.spaces.Box):
            clipped: np.ndarray = np.clip(actions, space.low, space.high).astype(space.dtype, copy=False)
            return clipped
        if isinstance(space, gym.spaces.Discrete) and int(space.start) != 0:
            return actions + int(space.start)
        if isinstance(space, gym.spaces.MultiDiscrete) and np.any(space.start != 0):
            return actions + space.start
        return actions

    def close(self) -> None:
        self.env.close()


def make_vec_env(config: EnvConfig, num_envs: int | None = None, env_factory: EnvFactory | None = None) -> VecEnv:
    """Build ``num_envs`` (default ``config.num_envs``) copies of the env, NEXT_STEP autoreset."""
    n = num_envs or config.num_envs
    try:
        return _checked(_build(config, n, env_factory), n)
    except gym.error.DependencyNotInstalled as e:
        raise ConfigError("env.id", f"{config.id} needs a package that is not installed ({e})") from None


def _build(config: EnvConfig, n: int, env_factory: EnvFactory | None) -> VectorEnv:
    mode = config.vectorization
    if env_factory is not None:
        if mode == "native":
            raise ConfigError("vectorization", "native needs a registered env id, not a factory")
        cls = gym.vector.AsyncVectorEnv if mode == "async" else gym.vector.SyncVectorEnv
        env: VectorEnv = cls([env_factory] * n, autoreset_mode=AutoresetMode.NEXT_STEP)
    else:
        spec = gym.spec(config.id)
        has_native = spec.vector_entry_point is not None
        if mode == "native" and not has_native:
            raise ConfigError("vectorization", f"{config.id} has no native vector env; allowed: auto, sync, async")
        if mode in ("native", "auto") and has_native:
            env = gym.make_vec(config.id, num_envs=n, vectorization_mode="vector_entry_point")
        else:
            env = gym.make_vec(
                config.id,
                num_envs=n,
                vectorization_mode="async" if mode == "async" else "sync",
                vector_kwargs={"autoreset_mode": AutoresetMode.NEXT_STEP},
            )
    return env


def _checked(env: VectorEnv, n: int) -> VecEnv:
    autoreset = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if autoreset != AutoresetMode.NEXT_STEP:
        env.close()
        raise ConfigError("vectorization", f"the env autoresets in {autoreset}; ppokit needs NEXT_STEP")
    return VecEnv(env, env.single_observation_space, env.single_action_space, n)


# --- Snapshots: env state as plain data ----------------------------------------------------


class NotSnapshottable(Exception):
    """The env holds state that is not plain data."""


# Attributes that are configuration, not state, and are rebuilt with the env.
_STATIC_NAMES = frozenset({"metadata", "spec", "_saved_kwargs", "env_fns", "_previous_data", "_cached_spec"})
_STATIC_TYPES = (gym.Space, enum.Enum, type(None))


def _capture(obj: Any) -> Any:
    if isinstance(obj, np.generic):  # before the Python types: np.float64 is a float
        return obj.item()
    if isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise NotSnapshottable("object array")
        return torch.from_numpy(obj.copy())
    if isinstance(obj, np.random.Generator):
        return {"__rng__": obj.bit_generator.state}
    if isinstance(obj, (list, tuple)):
        return [_capture(x) for x in obj]
    if isinstance(obj, (gym.Env, VectorEnv)):
        return {
            k: _capture(v)
            for k, v in vars(obj).items()
            if k not in _STATIC_NAMES and not isinstance(v, _STATIC_TYPES) and not callable(v)
        }
    raise NotSnapshottable(type(obj).__name__)


def _restore(obj: Any, saved: Any) -> Any:
    """Return the restored value for ``obj``; envs and generators are restored in place."""
    if isinstance(obj, np.random.Generator):
        obj.bit_generator.state = saved["__rng__"]
        return obj
    if isinstance(obj, (gym.Env, VectorEnv)):
        attrs = vars(obj)
        for k, value in saved.items():
            if k not in attrs:
                raise NotSnapshottable(f"attribute {k} missing")
            attrs[k] = _restore(attrs[k], value)
        return obj
    if isinstance(obj, (list, tuple)):
        restored = [_restore(o, s) for o, s in zip(obj, saved, strict=True)]
        return type(obj)(restored) if isinstance(obj, tuple) else restored
    if isinstance(saved, torch.Tensor):
        return saved.numpy().copy()
    return saved


def snapshot(vec: VecEnv) -> dict[str, Any] | None:
    """The env's whole state as plain data, or None when it holds other objects."""
    try:
        return {"env": _capture(vec.env)}
    except NotSnapshottable:
        return None


def restore(vec: VecEnv, state: dict[str, Any]) -> bool:
    """Put a snapshot back into a freshly built env of the same config; False if it does not fit."""
    try:
        _restore(vec.env, state["env"])
        return True
    except (NotSnapshottable, KeyError, ValueError, TypeError):
        return False
