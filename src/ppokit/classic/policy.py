"""Actor-critic networks: an observation normalizer, two encoders (or one shared), an action
head and a value head.

Composed from parts, no base class: the encoders come from ``encoders.make_encoder`` (the MLP
for vectors today), the heads from ``distributions.make_head``. The observation normalizer is
a module with buffers, so its statistics live in the same ``state_dict`` as the weights: a
saved policy always carries the normalization it was trained with.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ppokit.classic.distributions import ActionHead, make_head
from ppokit.classic.encoders import Encoder, linear_layer, make_encoder
from ppokit.classic.envs import is_raw
from ppokit.config import PolicyConfig
from ppokit.core.normalize import RunningNorm
from ppokit.errors import ConfigError


class ActorCritic(nn.Module):
    """pi(a|s) and V(s): actor encoder -> action head, critic encoder -> value head.

    ``forward`` returns the head's distribution parameters and the value in one pass. The
    encoders keep the names ``actor_trunk`` / ``critic_trunk`` (the same module when shared),
    so checkpoints of the MLP-only policy load unchanged (``actor_trunk.layers.N.weight``).
    """

    def __init__(
        self,
        obs_space: gym.Space[Any],
        action_space: gym.Space[Any],
        config: PolicyConfig,
        norm_obs: bool = False,
        clip_obs: float = 10.0,
    ) -> None:
        super().__init__()
        # Built before anything is registered, and in this order: the random init draws (actor
        # encoder, critic encoder, actor_out, critic_out) and the parameter order (FlatAdam's
        # flat buffer, the state_dict) stay those of the checkpoints written so far.
        actor = make_encoder(obs_space, config)  # ConfigError for a space no encoder takes
        critic = actor if config.shared_trunk else make_encoder(obs_space, config)
        if norm_obs and is_raw(obs_space.dtype):
            raise ConfigError(
                "norm_obs",
                f"got true for {obs_space.dtype} observations; allowed: false (integer and bool observations "
                "such as pixels are converted by the encoder, never running-normalized)",
            )
        self.obs_shape: tuple[int, ...] = tuple(obs_space.shape or ())
        self.obs_norm = RunningNorm(self.obs_shape, norm_obs, clip_obs)
        self.head: ActionHead = make_head(action_space, config.init_log_std)  # type: ignore[assignment]  # nn.Module satisfying the protocol
        self.actor_trunk: Encoder = _registered(actor)
        self.critic_trunk: Encoder = _registered(critic)
        self.shared = config.shared_trunk
        self.actor_out = linear_layer(actor.out_features, self.head.num_params, 0.01, config.ortho_init)
        self.critic_out = linear_layer(critic.out_features, 1, 1.0, config.ortho_init)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Distribution parameters and values for observations ``x`` as stored (``normalize``)."""
        actor_features = self.actor_trunk(x)
        critic_features = actor_features if self.shared else self.critic_trunk(x)
        params = F.linear(actor_features, self.actor_out.weight, self.actor_out.bias)
        return params, F.linear(critic_features, self.critic_out.weight, self.critic_out.bias).squeeze(-1)

    def normalize(self, obs: Tensor) -> Tensor:
        """Raw observations -> the network's input: float observations as float32, running-
        normalized (statistics frozen here); integer ones (uint8 pixels) as they are, for the
        encoder to convert, so that they are stored in their own dtype."""
        if not obs.is_floating_point():
            return obs
        x: Tensor = self.obs_norm(obs.float())
        return x

    def evaluate(self, x: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Log-probabilities and entropies of stored actions, and values, for stored ``x``."""
        params, value = self(x)
        return self.head.log_prob(params, actions), self.head.entropy(params), value

    def value(self, obs: Tensor) -> Tensor:
        """V(s) for raw observations."""
        value: Tensor = self(self.normalize(obs))[1]
        return value

    @torch.inference_mode()
    def act(self, obs: Tensor | np.ndarray, deterministic: bool = False) -> Tensor:
        """Actions for a batch of raw observations, with the saved normalization applied."""
        x = torch.as_tensor(obs, device=self.critic_out.weight.device)
        params, _ = self(self.normalize(x))
        action: Tensor = self.head.mode(params) if deterministic else self.head.sample(params)
        return action


def _registered(encoder: Encoder) -> Encoder:
    """The encoder, checked to be an ``nn.Module``: a plain callable would not be registered,
    and its weights would be neither trained nor saved."""
    if not isinstance(encoder, nn.Module):
        raise TypeError(f"an encoder must be an nn.Module, got {type(encoder).__name__}")
    return encoder
