"""``TrainState``: everything that changes during training, and the one list of what persists.

Every field of ``TrainState`` goes into a checkpoint and comes back on resume: objects with a
``state_dict`` (the policy, the optimizer, the normalizer, the RNGs, the diagnostics) through
it, the rollout's carry-over as tensors, numbers as numbers. A field added here is saved and
restored with nothing else to edit, and a checkpoint lacking one is refused before any work.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppokit.classic.envs import VecEnv, restore, snapshot
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
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"checkpoint: weights do not fit this config ({str(e).splitlines()[0]})") from None


def check_keys(saved: dict[str, Any]) -> None:
    """CheckpointError naming what a checkpoint's state lacks."""
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
    initial = copy.deepcopy(policy).requires_grad_(False)
    diagnostics = Diagnostics(config.diagnostics, METHODS[config.algo.method])
    return TrainState(policy, optimizer, RolloutState.start(obs), RunningNorm((), config.env.norm_reward), Rngs(seed),
                      diagnostics, initial, config.algo.ppo_kl.coef, config.algo.clip_coef)  # fmt: skip


def spaces(vec: VecEnv) -> dict[str, str]:
    return {"observation": str(vec.obs_space), "action": str(vec.action_space)}


def save_checkpoint(path: Path, config: RunConfig, state: TrainState, vec: VecEnv) -> None:
    payload = {
        "config": to_dict(config),
        "state": state.state_dict(),
        "env_state": snapshot(vec),
        "spaces": spaces(vec),
    }
    ckpt.save(path, payload)


def resume_state(state: TrainState, saved: dict[str, Any], vec: VecEnv, config: RunConfig, seed: int) -> None:
    """Load a checkpoint into a fresh state and put the envs back where they were; envs whose
    state is not plain data restart the episodes that were in flight (with a warning)."""
    if saved.get("spaces") != spaces(vec):
        raise CheckpointError(f"checkpoint: spaces {saved.get('spaces')} do not match the env's {spaces(vec)}")
    state.load_state_dict(saved["state"])
    env_state = saved.get("env_state")
    if env_state is None or not restore(vec, env_state):
        warnings.warn(
            f"{config.env.id}: the env's state is not plain data and cannot be restored; "
            "the episodes in flight at the checkpoint restart from new resets",
            stacklevel=2,
        )
        obs, _ = vec.env.reset(seed=seed + state.update)
        state.rollout = RolloutState.start(obs)
