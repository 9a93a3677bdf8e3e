"""Observation encoders: a batch of observations ``[B, *obs_shape]`` to features ``[B, F]``.

The policy composes an encoder for the actor and one for the critic (or one shared) with its
action and value heads; ``make_encoder`` picks the encoder for an observation space. A new
encoder (a CNN for images is next) is one class here and one case in ``make_encoder``.

Encoders take observations in the dtype the rollout stores them in (``envs.obs_dtype``):
float observations as float32, already normalized, integer ones raw (uint8 pixels). Each
encoder converts to float itself, because how to scale raw integers is its own business (a
CNN divides pixels by 255; the MLP takes integer vectors as they are, as SB3 does).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ppokit.config import PolicyConfig
from ppokit.errors import ConfigError


class Encoder(Protocol):
    """What the policy needs of an encoder. It must also be an ``nn.Module``, so that the
    policy registers its weights (and saves them in its ``state_dict``)."""

    out_features: int  # F, the width of the features

    def __call__(self, obs: Tensor) -> Tensor:
        """``[B, *obs_shape]`` observations, in their stored dtype -> ``[B, F]`` float features."""
        ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...


def linear_layer(n_in: int, n_out: int, gain: float, ortho: bool) -> nn.Linear:
    """An ``nn.Linear``; with ``ortho``, orthogonal weights of ``gain`` and zero bias
    (Engstrom et al. 2020, "Implementation matters in deep policy gradients")."""
    layer = nn.Linear(n_in, n_out)
    if ortho:
        nn.init.orthogonal_(layer.weight, gain)
        nn.init.zeros_(layer.bias)
    return layer


class MLP(nn.Module):
    """Linear layers over the flattened observation, each followed by the activation.

    ``forward`` applies the layers' weights with ``F.linear`` rather than calling a module per
    layer (as ``nn.Sequential`` would): the rollout's forward at batch 1 takes 0.74-0.90x the
    time (``benchmarks/forward.py``).
    """

    def __init__(self, n_in: int, hidden: tuple[int, ...], activation: str, ortho: bool) -> None:
        super().__init__()
        self.activation = torch.tanh if activation == "tanh" else torch.relu
        sizes = (n_in, *hidden)
        self.out_features = sizes[-1]
        self.layers = nn.ModuleList(linear_layer(a, b, math.sqrt(2), ortho) for a, b in itertools.pairwise(sizes))

    def forward(self, obs: Tensor) -> Tensor:
        # Flatten and convert only when needed: two dispatcher calls per forward cost more than
        # these checks on the rollout's per-step path (batch 1 to N).
        x = obs if obs.dim() == 2 else obs.flatten(1)
        x = x if x.is_floating_point() else x.float()
        for layer in self.layers:
            x = self.activation(F.linear(x, layer.weight, layer.bias))  # type: ignore[arg-type]  # items typed Module
        return x


def make_encoder(obs_space: gym.Space[Any], config: PolicyConfig) -> Encoder:
    """The encoder for an observation space (a new one each call: the actor's and the
    critic's are separate unless ``config.shared_trunk``); ConfigError for a space that no
    encoder takes."""
    if isinstance(obs_space, gym.spaces.Box):
        n_in = int(np.prod(obs_space.shape))
        return MLP(n_in, config.hidden_sizes, config.activation, config.ortho_init)
    raise ConfigError("observation_space", f"{obs_space} is not supported; allowed: Box observations")
