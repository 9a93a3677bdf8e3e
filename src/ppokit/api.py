"""Loading a trained policy for use outside training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from ppokit.classic.envs import EnvFactory, make_vec_env, obs_dtype
from ppokit.classic.policy import ActorCritic
from ppokit.config import RunConfig
from ppokit.errors import CheckpointError
from ppokit.io import checkpoint as ckpt


@dataclass
class Policy:
    """A trained policy: raw observations in, env-ready actions out (normalization applied)."""

    model: ActorCritic
    config: RunConfig
    action_space: gym.Space[Any]
    observation_space: gym.Space[Any]

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for one observation or a batch; Box actions are clipped to the bounds."""
        # Observations in the dtype the rollout stored them in: float32, or the space's integers (pixels).
        x = torch.as_tensor(np.asarray(obs), dtype=obs_dtype(self.observation_space))
        single = tuple(x.shape) == self.observation_space.shape
        batch = x[None] if single else x
        actions = self.model.act(batch, deterministic).cpu().numpy()
        space = self.action_space
        if isinstance(space, gym.spaces.Box):
            actions = np.clip(actions, space.low, space.high)
        elif isinstance(space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete)):
            actions = actions + space.start
        return actions[0] if single else actions


def load(path: str | Path, env_factory: EnvFactory | None = None, device: str = "cpu") -> Policy:
    """Load the policy of a checkpoint (or of a run folder's last checkpoint)."""
    data = ckpt.load(path, map_location=device)
    config = ckpt.saved_config(data)
    if not isinstance(data["state"], dict) or not isinstance(data["state"].get("policy"), dict):
        raise CheckpointError("checkpoint: its state holds no policy weights")
    ckpt.check_finite(data["state"]["policy"], "policy weight")
    vec = make_vec_env(config.env, num_envs=1, env_factory=env_factory)
    vec.close()
    model = ActorCritic(vec.obs_space, vec.action_space, config.policy, config.env.norm_obs, config.env.clip_obs)
    try:
        model.load_state_dict(data["state"]["policy"])
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(f"checkpoint: weights do not fit the env ({str(e).splitlines()[0]})") from None
    model.to(device).eval()
    return Policy(model, config, vec.action_space, vec.obs_space)
