"""``TrainState``: everything that changes during training, and the one list of what persists.

Every field of ``TrainState`` goes into a checkpoint and comes back on resume: objects with a
``state_dict`` (the policy, the optimizer, the normalizer, the RNGs, the diagnostics) through
it, the rollout's carry-over as tensors, numbers as numbers. A field added here is saved and
restored with nothing else to edit, and a checkpoint lacking one is refused before any work.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppokit.classic.envs import VecEnv, check_observations, restore, snapshot
from ppokit.classic.policy import ActorCritic
from ppokit.classic.rollout import RolloutState
from ppokit.config import RunConfig, to_dict
from ppokit.core.normalize import RunningNorm
from ppokit.core.optim import FlatAdam
from ppokit.diagnostics import Diagnostics
from ppokit.errors import CheckpointError
from ppokit.io import checkpoint as ckpt
from ppokit.methods import METHODS


class Rngs:
    """The minibatch shuffle's generator, and with it every global RNG the trainer draws from
    (torch, numpy, Python, CUDA): saved and restored together."""

    def __init__(self, seed: int) -> None:
        self.shuffle = torch.Generator().manual_seed(seed)

    def state_dict(self) -> dict[str, Any]:
        return ckpt.rng_states(self.shuffle)

    def load_state_dict(self, states: dict[str, Any]) -> None:
        ckpt.set_rng_states(states, self.shuffle)


@dataclass
class TrainState:
    """Everything that changes during training; a checkpoint is this plus the config."""

    policy: ActorCritic
    optimizer: FlatAdam
    rollout: RolloutState
    return_norm: RunningNorm
    rng: Rngs
    diagnostics: Diagnostics
    initial_policy: ActorCritic  # frozen copy of the policy at update 0 (KL from initial)
    kl_coef: float = 0.0  # ppo-kl's adaptive beta
    clip_coef: float = 0.0  # the adaptive clip range's current value
    global_step: int = 0
    update: int = 0
    train_time: float = 0.0  # wall-clock seconds spent training, over all sessions of the run
    best_eval: float | None = None  # best periodic evaluation mean so far (best.pt)

    @classmethod
    def persisted(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def state_dict(self) -> dict[str, Any]:
        return {name: _save(getattr(self, name)) for name in self.persisted()}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Load in place (parameters keep their storage: FlatAdam's views stay valid)."""
        check_keys(saved)
        try:
            for name in self.persisted():
                current, value = getattr(self, name), saved[name]
                if hasattr(current, "load_state_dict"):
                    current.load_state_dict(value)
                elif isinstance(current, RolloutState):
                    self.rollout = RolloutState(**{k: v.numpy().copy() for k, v in value.items()})
                else:  # a number, or best_eval's None
                    setattr(self, name, value if value is None or current is None else type(current)(value))
        except CheckpointError:
            raise
        except Exception as e:  # a part damaged in a way the checks before missed, in any way
            raise CheckpointError(
                f"checkpoint: weights do not fit this config ({type(e).__name__}: {_first_line(e)})"
            ) from None


# Parts whose keys and lengths grow during training (a fresh state's are empty): only their kinds are checked.
_GROWING = ("state.diagnostics", "state.optimizer")


def conform(saved: Any, fresh: Any, path: str) -> None:
    """CheckpointError naming the first part of a saved state that differs in kind from a fresh
    state built from the same config (``fresh``): a missing or extra key, a tensor of another
    shape or dtype or with NaN or inf, a list of another length, a value of another type."""

    def wrong(expected: str) -> CheckpointError:
        got = f"a tensor {tuple(saved.shape)} {saved.dtype}" if isinstance(saved, torch.Tensor) else repr(saved)[:40]
        return CheckpointError(f"checkpoint: {path} is {got}; expected {expected}")

    if isinstance(fresh, torch.Tensor):
        if not (isinstance(saved, torch.Tensor) and saved.shape == fresh.shape and saved.dtype == fresh.dtype):
            raise wrong(f"a tensor {tuple(fresh.shape)} {fresh.dtype}")
        if saved.is_floating_point() and not bool(torch.isfinite(saved).all()):
            raise CheckpointError(f"checkpoint: {path} holds NaN or inf")
    elif isinstance(fresh, dict):
        if not isinstance(saved, dict):
            raise wrong("a table")
        if path.startswith(_GROWING):
            return  # its entries are checked as they load
        if set(saved) != set(fresh):
            raise CheckpointError(f"checkpoint: {path} has keys {sorted(map(str, saved))}; expected "
                                  f"{sorted(map(str, fresh))}")  # fmt: skip
        for key, value in fresh.items():
            conform(saved[key], value, f"{path}.{key}")
    elif isinstance(fresh, list | tuple):
        if not isinstance(saved, list | tuple) or (len(saved) != len(fresh) and not path.startswith(_GROWING)):
            raise wrong(f"a list of {len(fresh)}")
        for i, (a, b) in enumerate(zip(saved, fresh, strict=False)):
            conform(a, b, f"{path}[{i}]")
    elif fresh is None:
        if saved is not None and not (isinstance(saved, int | float) and not isinstance(saved, bool)):
            raise wrong("none or a number")
    elif isinstance(fresh, bool) or isinstance(saved, bool):
        if type(saved) is not type(fresh):
            raise wrong(type(fresh).__name__)
    elif isinstance(fresh, int | float):
        if not isinstance(saved, type(fresh) if isinstance(fresh, int) else int | float):
            raise wrong(type(fresh).__name__)
        if isinstance(saved, float) and not math.isfinite(saved):
            raise CheckpointError(f"checkpoint: {path} is {saved}; expected a finite number")
    elif type(saved) is not type(fresh):
        raise wrong(type(fresh).__name__)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, str):
        return "text"
    if value is None:
        return "none"
    return "numbers"  # a number, a tensor, a list or tuple of numbers: envs switch between these as they run


def _same_kinds(saved: Any, fresh: Any, path: str) -> None:
    """CheckpointError where an env snapshot holds another kind of value than a fresh one of the
    same env (text for numbers, a table for a list...). Loose on purpose: envs grow attributes
    and change dtypes, shapes and containers as they run (MountainCar's state turns from an
    array into a list), and may hold infinite bounds."""
    if fresh is None or saved is None:
        return
    if _kind(saved) != _kind(fresh):
        raise CheckpointError(f"checkpoint: {path} holds {_kind(saved)}; expected {_kind(fresh)}")
    if isinstance(fresh, dict):
        for key in set(saved) & set(fresh):
            _same_kinds(saved[key], fresh[key], f"{path}.{key}")


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _check_counters(saved: dict[str, Any], config: RunConfig, world_size: int) -> None:
    """The step counters agree with each other and with the run's length (``world_size``
    processes take ``batch_size`` steps each per update); the adaptive coefficients are in range."""
    update, step = saved.get("update"), saved.get("global_step")
    if not (isinstance(update, int) and isinstance(step, int)) or isinstance(update, bool) or isinstance(step, bool):
        raise CheckpointError(f"checkpoint: update {update!r} and global_step {step!r}; allowed: integers")
    updates, batch = max(1, config.total_steps // (config.batch_size * world_size)), config.batch_size * world_size
    if not (0 <= update <= updates and 0 <= step <= update * batch):
        raise CheckpointError(f"checkpoint: update {update}, global_step {step}; allowed: 0..{updates} "
                              f"updates of at most {batch} steps each")  # fmt: skip
    if not (saved["kl_coef"] >= 0 and saved["clip_coef"] > 0 and saved["train_time"] >= 0):
        raise CheckpointError(f"checkpoint: kl_coef {saved['kl_coef']}, clip_coef {saved['clip_coef']}, train_time "
                              f"{saved['train_time']}; allowed: >= 0, > 0, >= 0")  # fmt: skip


def check_keys(saved: dict[str, Any]) -> None:
    """CheckpointError naming what a checkpoint's state lacks."""
    if not isinstance(saved, dict):
        raise CheckpointError(f"checkpoint: its state is {type(saved).__name__}; expected a table")
    missing = [k for k in TrainState.persisted() if k not in saved]
    if missing:
        raise CheckpointError(f"checkpoint: lacks {', '.join(missing)}")


def _save(value: Any) -> Any:
    if hasattr(value, "state_dict"):
        return value.state_dict()
    if isinstance(value, RolloutState):
        return {k: torch.from_numpy(np.array(v)) for k, v in vars(value).items()}
    return value


def initial_state(config: RunConfig, vec: VecEnv, device: torch.device, seed: int) -> TrainState:
    """A fresh state: policy, optimizer, the envs reset with ``seed``, coefficients at their start."""
    policy = ActorCritic(vec.obs_space, vec.action_space, config.policy,
                         config.env.norm_obs, config.env.clip_obs).to(device)  # fmt: skip
    optimizer = FlatAdam(policy, config.algo.learning_rate, config.algo.adam_eps)  # after .to(device)
    obs, _ = vec.env.reset(seed=seed)
    check_observations(vec, obs)
    initial = copy.deepcopy(policy).requires_grad_(False)
    diagnostics = Diagnostics(config.diagnostics, METHODS[config.algo.method])
    return TrainState(policy, optimizer, RolloutState.start(obs), RunningNorm((), config.env.norm_reward), Rngs(seed),
                      diagnostics, initial, config.algo.ppo_kl.coef, config.algo.clip_coef)  # fmt: skip


def spaces(vec: VecEnv) -> dict[str, str]:
    return {"observation": str(vec.obs_space), "action": str(vec.action_space)}


def save_checkpoint(path: Path, config: RunConfig, state: TrainState, vec: VecEnv,
                    ranks: list[dict[str, Any]] | None = None) -> None:  # fmt: skip
    """The config, the state and the envs' state; ``ranks``: every rank's own part of a
    data-parallel run (``classic.ranks``)."""
    payload: dict[str, Any] = {
        "config": to_dict(config),
        "state": state.state_dict(),
        "env_state": snapshot(vec),
        "spaces": spaces(vec),
    }
    if ranks is not None:
        payload["ranks"] = ranks
    ckpt.save(path, payload)


def resume_state(state: TrainState, saved: dict[str, Any], vec: VecEnv, config: RunConfig, seed: int,
                 world_size: int = 1) -> None:  # fmt: skip
    """Load a checkpoint into a fresh state and put the envs back where they were; envs whose
    state is not plain data restart the episodes that were in flight (with a warning)."""
    if saved.get("spaces") != spaces(vec):
        raise CheckpointError(f"checkpoint: spaces {saved.get('spaces')} do not match the env's {spaces(vec)}")
    conform(saved["state"], state.state_dict(), "state")
    _check_counters(saved["state"], config, world_size)
    state.load_state_dict(saved["state"])
    env_state, fresh_env = saved.get("env_state"), snapshot(vec)
    if env_state is not None and fresh_env is not None:
        _same_kinds(env_state, fresh_env, "env_state")  # the same env's snapshot: numbers where it holds numbers
    try:
        restored = env_state is not None and restore(vec, env_state)
    except Exception as e:  # an env snapshot damaged in any way
        raise CheckpointError(f"checkpoint: env_state is damaged ({type(e).__name__}: {_first_line(e)})") from None
    if not restored:
        warnings.warn(
            f"{config.env.id}: the env's state is not plain data and cannot be restored; "
            "the episodes in flight at the checkpoint restart from new resets",
            stacklevel=2,
        )
        obs, _ = vec.env.reset(seed=seed + state.update)
        state.rollout = RolloutState.start(obs)
