"""Vectorized Gymnasium environments with one explicit autoreset mode, and env snapshots.

ppokit steps every vector env in Gymnasium's ``NEXT_STEP`` autoreset mode, the only mode
Gymnasium's native vector envs (CartPole's, for one) implement: the step that ends an episode
returns that episode's *final* observation, and the following step resets the sub-env,
ignoring its action and returning reward 0. The rollout marks that reset step invalid and
leaves it out of the losses; in exchange the value of the final observation, which a truncated
episode bootstraps from, is simply the value of the next stored observation.

An env snapshot is the env's state as plain data (arrays, numbers, RNG states), so that a
checkpoint can hold it and be loaded without unpickling code. Gymnasium's MuJoCo envs are
captured through MuJoCo's own state functions (``mj_getState``), which makes their resume
exact. Envs whose state is other objects (Box2D worlds, envs in worker processes) cannot be
snapshotted; resuming them restarts the episodes in flight (the trainer says so).
"""

from __future__ import annotations

import enum
import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv

from ppokit.classic import games
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
    sign_reward: bool = False  # the learner trains on sign(reward) (env.sign_reward)
    episodic_life: bool = False  # info["life_lost"] is a termination for the learner (env.episodic_life)

    @functools.cached_property
    def obs_batch_shape(self) -> tuple[int, ...]:
        """``(num_envs, *obs_space.shape)``: what every step's observations must be."""
        return (self.num_envs, *(self.obs_space.shape or ()))

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

    @property
    def obs_dtype(self) -> torch.dtype:
        """The dtype the rollout stores this env's observations in (``obs_dtype``)."""
        return obs_dtype(self.obs_space)

    def close(self) -> None:
        self.env.close()


def obs_dtype(space: gym.Space[Any]) -> torch.dtype:
    """How observations are stored and handed to the policy: integer observations (uint8
    pixels) and bool ones (MinAtar's grids) in their own dtype, a quarter of float32's memory,
    converted to float by the policy's encoder; every other observation as float32."""
    dtype = np.dtype(space.dtype) if space.dtype is not None else np.dtype(np.float32)
    if is_raw(dtype):
        return torch.from_numpy(np.zeros(0, dtype)).dtype
    return torch.float32


def is_raw(dtype: Any) -> bool:
    """Integer or bool observations: stored as they are, never running-normalized."""
    return bool(np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.bool_))


def make_vec_env(config: EnvConfig, num_envs: int | None = None, env_factory: EnvFactory | None = None) -> VecEnv:
    """Build ``num_envs`` (default ``config.num_envs``) copies of the env, NEXT_STEP autoreset."""
    n = num_envs or config.num_envs
    try:
        env = _build(config, n, env_factory)
        vec = _checked(games.EpisodicLife(env) if config.episodic_life else env, n)
        vec.sign_reward, vec.episodic_life = config.sign_reward, config.episodic_life
        return vec
    except gym.error.DependencyNotInstalled as e:
        raise ConfigError("env.id", f"{config.id} needs a package that is not installed ({e})") from None
    except ImportError as e:  # an entry point whose module is missing
        missing = f"module {e.name!r}" if e.name else str(e)
        raise ConfigError("env.id", f"{config.id} needs {missing}, which is not installed; allowed: an env whose "
                                    "package is installed (pip install it)") from None  # fmt: skip


def _build(config: EnvConfig, n: int, env_factory: EnvFactory | None) -> VectorEnv:
    mode = config.vectorization
    if env_factory is not None:
        if mode == "native":
            raise ConfigError("vectorization", "native needs a registered env id, not a factory")
        cls = gym.vector.AsyncVectorEnv if mode == "async" else gym.vector.SyncVectorEnv
        env: VectorEnv = cls([env_factory] * n, autoreset_mode=AutoresetMode.NEXT_STEP)
    else:
        games.register_namespace(config.id)
        spec = gym.spec(config.id)
        if games.is_atari(spec):
            if mode in ("sync", "async"):
                raise ConfigError("vectorization", f"got {mode} for {config.id}; allowed: auto, native (Atari games "
                                                   "step in ale-py's vector env, with its preprocessing)")  # fmt: skip
            return games.make_atari(spec, n)
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
    space = env.single_observation_space
    if isinstance(space, gym.spaces.Box) and space.shape == ():
        env.close()
        hint = "gymnasium.wrappers.ReshapeObservation(env, (1,))"
        raise ConfigError("observation_space", f"{space} is a scalar; allowed: Box observations of shape (n,) "
                                               f"or more ({hint})")  # fmt: skip
    return VecEnv(env, space, env.single_action_space, n)


def check_observations(vec: VecEnv, obs: np.ndarray) -> None:
    """ConfigError unless ``obs`` has the shape the observation space declares, for every env."""
    expected = vec.obs_batch_shape
    if tuple(np.shape(obs)) != expected:
        got = tuple(np.shape(obs))[1:]
        raise ConfigError("observation_space", f"the env returned observations of shape {got}; its observation "
                                               f"space {vec.obs_space} declares {expected[1:]}")  # fmt: skip


# --- Snapshots: env state as plain data ----------------------------------------------------


class NotSnapshottable(Exception):
    """The env holds state that is not plain data."""


# Attributes that are configuration, not state, and are rebuilt with the env.
_STATIC_NAMES = frozenset({"metadata", "spec", "_saved_kwargs", "env_fns", "_previous_data", "_cached_spec",
                           "_ezpickle_args", "_ezpickle_kwargs"})  # fmt: skip
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
    if isinstance(obj, np.random.RandomState):  # MinAtar's games draw from the legacy RNG
        kind, key, pos, has_gauss, gauss = obj.get_state(legacy=True)
        key = np.asarray(key, np.int64)  # torch has no uint32 tensors to save
        return {"__random_state__": [kind, torch.from_numpy(key), pos, has_gauss, gauss]}
    if isinstance(obj, (list, tuple)):
        return [_capture(x) for x in obj]
    if isinstance(obj, dict) and all(isinstance(k, str) for k in obj):  # a game's tables (MinAtar's channels)
        return {"__table__": {k: _capture(v) for k, v in obj.items()}}
    if isinstance(obj, (gym.Env, VectorEnv)) or _plain_object(obj):
        mujoco_env = _is_mujoco_env(obj)
        state = {
            k: _capture(v)
            for k, v in vars(obj).items()
            if k not in _STATIC_NAMES
            and not isinstance(v, _STATIC_TYPES)
            and not callable(v)
            and not (mujoco_env and k in _MUJOCO_NAMES)
        }
        if mujoco_env:
            state["data"] = _capture_mujoco(obj)
        return state
    raise NotSnapshottable(type(obj).__name__)


def _restore(obj: Any, saved: Any) -> Any:
    """Return the restored value for ``obj``; envs and generators are restored in place."""
    if isinstance(obj, np.random.Generator):
        obj.bit_generator.state = saved["__rng__"]
        return obj
    if isinstance(obj, np.random.RandomState):
        kind, key, pos, has_gauss, gauss = saved["__random_state__"]
        obj.set_state((kind, key.numpy().astype(np.uint32), pos, has_gauss, gauss))
        return obj
    if isinstance(obj, dict) and isinstance(saved, dict) and "__table__" in saved:
        return {k: _restore(obj.get(k), v) for k, v in saved["__table__"].items()}
    if isinstance(obj, (gym.Env, VectorEnv)) or _plain_object(obj):
        attrs = vars(obj)
        mujoco_env = _is_mujoco_env(obj)
        for k, value in saved.items():
            if k not in attrs:
                raise NotSnapshottable(f"attribute {k} missing")
            if mujoco_env and k == "data":
                _restore_mujoco(obj, value)
            else:
                attrs[k] = _restore(attrs[k], value)
        return obj
    if isinstance(obj, (list, tuple)):
        restored = [_restore(o, s) for o, s in zip(obj, saved, strict=True)]
        return type(obj)(restored) if isinstance(obj, tuple) else restored
    if isinstance(saved, torch.Tensor):
        return saved.numpy().copy()
    return saved


def _plain_object(obj: object) -> bool:
    """An instance of a Python class that keeps its state in ``__dict__`` (the game objects of
    MinAtar, for one), captured attribute by attribute like an env. Objects of extension types
    (Box2D's worlds, ale-py's emulators) have no ``__dict__`` of their state and stay refused."""
    return (
        hasattr(obj, "__dict__")
        and not isinstance(obj, type)
        and not callable(obj)
        and (type(obj).__module__ != "builtins")
    )


# --- MuJoCo: the simulator state of Gymnasium's MujocoEnv --------------------------------------

# Rebuilt with the env: the compiled model, the renderer, the observation layout. ``data`` (the
# MjData) is captured by _capture_mujoco instead.
_MUJOCO_NAMES = frozenset({"model", "data", "mujoco_renderer", "observation_structure"})
# Outputs of the last forward pass that an env may read before its next step. mj_step runs the
# forward pass and then integrates, so after a step these lag the state by one substep (MuJoCo
# issue #889); Ant-v5 and Humanoid-v5 compute their forward reward from the lagging body
# positions, so a restore that recomputed them from the restored state would change that reward.
_MUJOCO_LAGGING = ("xpos", "xquat", "xmat", "xipos", "ximat", "geom_xpos", "geom_xmat", "site_xpos", "site_xmat",
                   "sensordata")  # fmt: skip


def _is_mujoco_env(obj: object) -> bool:
    # A MujocoEnv exists only once its module is imported; this never imports mujoco itself.
    module = sys.modules.get("gymnasium.envs.mujoco.mujoco_env")
    return module is not None and isinstance(obj, module.MujocoEnv)


def _capture_mujoco(env: Any) -> dict[str, Any]:
    """MuJoCo's integration state, the lagging forward outputs and the model they belong to.

    ``mjSTATE_INTEGRATION`` is MuJoCo's own list of everything ``mj_step`` reads: time, qpos,
    qvel, act, history and plastic state, plugin state, ctrl, applied forces, active equality
    constraints, mocap poses, userdata and qacc_warmstart (the constraint solver's start).
    """
    import mujoco

    spec = int(mujoco.mjtState.mjSTATE_INTEGRATION)
    state = np.empty(mujoco.mj_stateSize(env.model, spec))
    mujoco.mj_getState(env.model, env.data, state, spec)
    lagging = {name: _capture(getattr(env.data, name)) for name in _MUJOCO_LAGGING}
    return {"signature": int(env.model.signature), "spec": spec, "state": _capture(state), **lagging}


def _restore_mujoco(env: Any, saved: dict[str, Any]) -> None:
    import mujoco

    if saved["signature"] != int(env.model.signature):
        raise NotSnapshottable("the snapshot belongs to another MuJoCo model")
    mujoco.mj_setState(env.model, env.data, saved["state"].numpy(), saved["spec"])
    mujoco.mj_forward(env.model, env.data)  # contacts, forces, ... of the restored state
    for name in _MUJOCO_LAGGING:
        getattr(env.data, name)[...] = saved[name].numpy()


def snapshot(vec: VecEnv) -> dict[str, Any] | None:
    """The env's whole state as plain data, or None when it holds other objects."""
    try:
        return {"env": _capture(vec.env)}
    except (NotSnapshottable, RecursionError):  # RecursionError: objects that refer to each other
        return None


def restore(vec: VecEnv, state: dict[str, Any]) -> bool:
    """Put a snapshot back into a freshly built env of the same config; False if it does not fit."""
    try:
        _restore(vec.env, state["env"])
        return True
    except (NotSnapshottable, KeyError, ValueError, TypeError):
        return False
