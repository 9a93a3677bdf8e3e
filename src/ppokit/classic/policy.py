"""Actor-critic networks: an observation normalizer, MLP trunks, an action head, a value head.

Composed from parts, no base class. The observation normalizer is a module with buffers, so
its statistics live in the same ``state_dict`` as the weights: a saved policy always carries
the normalization it was trained with.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ppokit.classic.distributions import ActionHead, make_head
from ppokit.config import PolicyConfig
from ppokit.errors import ConfigError


@dataclass
class MeanVar:
    """Running mean and variance as host (numpy float64) arrays: the per-step path.

    A rollout steps the normalizers of observations and returns once per env step on host
    data; numpy does that in a few microseconds where a dozen tiny torch ops take ~100.
    ``RunningNorm`` hands its statistics out with ``to_host`` and takes them back with
    ``load_host`` once per rollout, so its buffers stay the saved source of truth.
    """

    mean: np.ndarray
    var: np.ndarray
    count: float

    def update(self, x: np.ndarray) -> None:
        """Merge a batch ``[..., *shape]`` (Chan et al. parallel update)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, *self.mean.shape)
        n = x.shape[0]
        if n == 0:
            return
        b_mean = x.mean(0)
        b_var = x.var(0)
        total = self.count + n
        w = n / total  # the batch's weight in the merged statistics
        delta = b_mean - self.mean
        self.mean = self.mean + delta * w
        self.var = self.var * (1.0 - w) + b_var * w + delta * delta * (w * (1.0 - w))
        self.count = total

    def normalize(self, x: np.ndarray, clip: float) -> np.ndarray:
        """(x - mu) / sigma clipped to [-clip, clip], as float32 (``RunningNorm.forward``)."""
        out: np.ndarray = np.clip((x - self.mean) / np.sqrt(self.var + 1e-8), -clip, clip).astype(np.float32)
        return out

    def std(self) -> float:
        """sqrt(var + 1e-8) of a scalar statistic (the return normalizer)."""
        return float(np.sqrt(float(self.var) + 1e-8))


class RunningNorm(nn.Module):
    """Running mean and variance (Chan et al. parallel update), applied as (x - mu) / sigma.

    With ``enabled=False`` it is the identity and never updates.
    """

    mean: Tensor
    var: Tensor
    count: Tensor

    def __init__(self, shape: tuple[int, ...], enabled: bool, clip: float = 10.0) -> None:
        super().__init__()
        self.enabled = enabled
        self.clip = clip
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    def to_host(self) -> MeanVar:
        """A host copy of the statistics, for a rollout to update step by step."""
        return MeanVar(self.mean.cpu().numpy().copy(), self.var.cpu().numpy().copy(), float(self.count))

    @torch.no_grad()
    def load_host(self, stats: MeanVar) -> None:
        """Take back the statistics a rollout updated (one copy per buffer)."""
        self.mean.copy_(torch.as_tensor(stats.mean))
        self.var.copy_(torch.as_tensor(stats.var))
        self.count.fill_(stats.count)

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        if not self.enabled:
            return
        stats = self.to_host()
        stats.update(x.detach().cpu().numpy())
        self.load_host(stats)

    def forward(self, x: Tensor) -> Tensor:
        if not self.enabled:
            return x
        std = torch.sqrt(self.var + 1e-8)
        return ((x - self.mean) / std).clamp(-self.clip, self.clip).to(x.dtype)


def _layer(n_in: int, n_out: int, gain: float, ortho: bool) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    if ortho:  # orthogonal weights, zero bias (Engstrom et al. 2020, "implementation matters")
        nn.init.orthogonal_(layer.weight, gain)
        nn.init.zeros_(layer.bias)
    return layer


class MLP(nn.Module):
    """Linear layers, each followed by the activation.

    ``forward`` applies the layers' weights with ``F.linear`` rather than calling a module per
    layer (as ``nn.Sequential`` would): the rollout's forward at batch 1 takes 0.74-0.90x the
    time (``benchmarks/forward.py``).
    """

    def __init__(self, n_in: int, hidden: tuple[int, ...], activation: str, ortho: bool) -> None:
        super().__init__()
        self.activation = torch.tanh if activation == "tanh" else torch.relu
        sizes = (n_in, *hidden)
        self.layers = nn.ModuleList(_layer(a, b, math.sqrt(2), ortho) for a, b in itertools.pairwise(sizes))

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = self.activation(F.linear(x, layer.weight, layer.bias))  # type: ignore[arg-type]  # items typed Module
        return x


class ActorCritic(nn.Module):
    """pi(a|s) and V(s) over (normalized) Box observations.

    ``forward`` returns the head's distribution parameters and the value in one pass.
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
        if not isinstance(obs_space, gym.spaces.Box):
            raise ConfigError("observation_space", f"{obs_space} is not supported; allowed: Box observations")
        obs_dim = int(np.prod(obs_space.shape))
        self.obs_shape = tuple(obs_space.shape)
        self.obs_norm = RunningNorm(self.obs_shape, norm_obs, clip_obs)
        self.head: ActionHead = make_head(action_space, config.init_log_std)  # type: ignore[assignment]  # nn.Module satisfying the protocol
        hidden, width = config.hidden_sizes, config.hidden_sizes[-1]
        ortho = config.ortho_init
        self.actor_trunk = MLP(obs_dim, hidden, config.activation, ortho)
        self.critic_trunk = self.actor_trunk if config.shared_trunk else MLP(obs_dim, hidden, config.activation, ortho)
        self.shared = config.shared_trunk
        self.actor_out = _layer(width, self.head.num_params, 0.01, ortho)
        self.critic_out = _layer(width, 1, 1.0, ortho)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Distribution parameters and values for *normalized* observations ``x``."""
        x = x.flatten(1)
        actor_features = self.actor_trunk(x)
        critic_features = actor_features if self.shared else self.critic_trunk(x)
        params = F.linear(actor_features, self.actor_out.weight, self.actor_out.bias)
        return params, F.linear(critic_features, self.critic_out.weight, self.critic_out.bias).squeeze(-1)

    def normalize(self, obs: Tensor) -> Tensor:
        """Raw observations -> the network's input (running normalization, frozen here)."""
        x: Tensor = self.obs_norm(obs.float())
        return x

    def evaluate(self, x: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Log-probabilities and entropies of stored actions, and values, for normalized ``x``."""
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
