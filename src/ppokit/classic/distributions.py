"""Action distributions for Gymnasium spaces, as small heads over raw network outputs.

Each head turns the actor's output ``params`` into samples, log-probabilities, entropies and
modes with plain tensor math (no ``torch.distributions`` objects, whose argument validation
costs more than the math on the per-step path). The equations are the textbook ones; the
unit tests check them against ``torch.distributions``.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import gymnasium as gym
import torch
from torch import Tensor, nn

from ppokit.core.kl import categorical_kl, diag_gaussian_kl
from ppokit.errors import ConfigError

_LOG_2PI = math.log(2.0 * math.pi)


class ActionHead(Protocol):
    """What the policy needs from a distribution head."""

    num_params: int  # width of the actor output feeding the head
    action_shape: tuple[int, ...]  # shape of one action as stored in the rollout
    action_dtype: torch.dtype

    def sample(self, params: Tensor) -> Tensor: ...
    def mode(self, params: Tensor) -> Tensor: ...
    def log_prob(self, params: Tensor, actions: Tensor) -> Tensor: ...
    def entropy(self, params: Tensor) -> Tensor: ...
    def kl(self, params: Tensor, other: ActionHead, other_params: Tensor) -> Tensor: ...


def _sample_categorical(logits: Tensor) -> Tensor:
    # Gumbel-max: argmax(logits + G), G ~ Gumbel(0, 1), is an exact categorical sample.
    u = torch.rand_like(logits).clamp_(min=1e-20)
    return torch.argmax(logits - torch.log(-torch.log(u)), dim=-1)


def _categorical_entropy(logits: Tensor) -> Tensor:
    """H = -sum_a p(a) log p(a)."""
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


class CategoricalHead(nn.Module):
    """Discrete(n): ``params`` are n unnormalized logits."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.num_params = n
        self.action_shape: tuple[int, ...] = ()
        self.action_dtype = torch.long

    def sample(self, params: Tensor) -> Tensor:
        return _sample_categorical(params)

    def mode(self, params: Tensor) -> Tensor:
        return params.argmax(-1)

    def log_prob(self, params: Tensor, actions: Tensor) -> Tensor:
        logp = torch.log_softmax(params, dim=-1)
        return logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self, params: Tensor) -> Tensor:
        return _categorical_entropy(params)

    def kl(self, params: Tensor, other: ActionHead, other_params: Tensor) -> Tensor:
        return categorical_kl(params, other_params)


class MultiCategoricalHead(nn.Module):
    """MultiDiscrete(nvec): independent categoricals; log-probs and entropies add up."""

    def __init__(self, nvec: list[int]) -> None:
        super().__init__()
        self.nvec = list(nvec)
        self.num_params = int(sum(nvec))
        self.action_shape = (len(nvec),)
        self.action_dtype = torch.long

    def _split(self, params: Tensor) -> tuple[Tensor, ...]:
        return torch.split(params, self.nvec, dim=-1)

    def sample(self, params: Tensor) -> Tensor:
        return torch.stack([_sample_categorical(lg) for lg in self._split(params)], dim=-1)

    def mode(self, params: Tensor) -> Tensor:
        return torch.stack([lg.argmax(-1) for lg in self._split(params)], dim=-1)

    def log_prob(self, params: Tensor, actions: Tensor) -> Tensor:
        parts = [
            torch.log_softmax(lg, -1).gather(-1, actions[..., i : i + 1].long()).squeeze(-1)
            for i, lg in enumerate(self._split(params))
        ]
        return torch.stack(parts, dim=-1).sum(-1)

    def entropy(self, params: Tensor) -> Tensor:
        return torch.stack([_categorical_entropy(lg) for lg in self._split(params)], -1).sum(-1)

    def kl(self, params: Tensor, other: ActionHead, other_params: Tensor) -> Tensor:
        pairs = zip(self._split(params), self._split(other_params), strict=True)
        return torch.stack([categorical_kl(p, q) for p, q in pairs], -1).sum(-1)


class DiagGaussianHead(nn.Module):
    """Box(d): ``params`` are the mean; the log std is a learned, state-independent vector.

    log N(a; mu, sigma) = -sum_i [ (a_i - mu_i)^2 / (2 sigma_i^2) + log sigma_i + log(2 pi)/2 ]
    H = sum_i [ log sigma_i + (1 + log 2 pi) / 2 ]
    """

    def __init__(self, dim: int, init_log_std: float = 0.0) -> None:
        super().__init__()
        self.num_params = dim
        self.action_shape = (dim,)
        self.action_dtype = torch.float32
        self.log_std = nn.Parameter(torch.full((dim,), float(init_log_std)))

    def sample(self, params: Tensor) -> Tensor:
        return params + torch.randn_like(params) * self.log_std.exp()

    def mode(self, params: Tensor) -> Tensor:
        return params

    def log_prob(self, params: Tensor, actions: Tensor) -> Tensor:
        z = (actions - params) * torch.exp(-self.log_std)
        return -(0.5 * z.pow(2) + self.log_std + 0.5 * _LOG_2PI).sum(-1)

    def entropy(self, params: Tensor) -> Tensor:
        per_dim = self.log_std + 0.5 * (1.0 + _LOG_2PI)
        return per_dim.sum().expand(params.shape[:-1])

    def kl(self, params: Tensor, other: ActionHead, other_params: Tensor) -> Tensor:
        """KL(N(mu_p, s_p) || N(mu_q, s_q)) = sum_i log(s_q/s_p) + (s_p^2 + (mu_p - mu_q)^2) / (2 s_q^2) - 1/2."""
        assert isinstance(other, DiagGaussianHead)
        return diag_gaussian_kl(params, self.log_std, other_params, other.log_std)


def make_head(space: gym.Space[Any], init_log_std: float = 0.0) -> nn.Module:
    """The head for an action space; a clear error for any space ppokit does not support."""
    if isinstance(space, gym.spaces.Discrete):
        return CategoricalHead(int(space.n))
    if isinstance(space, gym.spaces.MultiDiscrete) and space.nvec.ndim == 1:
        return MultiCategoricalHead([int(n) for n in space.nvec])
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return DiagGaussianHead(int(space.shape[0]), init_log_std)
    raise ConfigError(
        "action_space",
        f"{space} is not supported; allowed: Discrete, MultiDiscrete (1-D), Box (1-D)",
    )
