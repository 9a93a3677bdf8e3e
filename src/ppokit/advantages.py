"""Advantage estimation as pure functions over time-major tensors ``[T, N]``."""

from __future__ import annotations

import torch
from torch import Tensor


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    dones: Tensor,
    gamma: float,
    gae_lambda: float,
) -> Tensor:
    """Generalized Advantage Estimation (Schulman et al. 2016, eq. 16), time-major ``[T, N]``.

        delta_t = r_t + gamma * (1 - terminated_t) * V(s_{t+1}) - V(s_t)
        A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1},   A_T = 0

    ``terminated`` alone cuts the bootstrap: a truncated step still bootstraps from
    V(s_{t+1}), the value of its final observation. ``dones`` (terminated or truncated) cuts
    the recursion, so no advantage flows across an episode boundary.
    """
    if not (rewards.shape == values.shape == next_values.shape == terminated.shape == dones.shape):
        raise ValueError(
            f"gae: shapes differ: rewards {tuple(rewards.shape)}, values {tuple(values.shape)}, "
            f"next_values {tuple(next_values.shape)}, terminated {tuple(terminated.shape)}, "
            f"dones {tuple(dones.shape)}"
        )
    not_terminated = 1.0 - terminated.to(values.dtype)
    not_done = 1.0 - dones.to(values.dtype)
    deltas = rewards + gamma * not_terminated * next_values - values
    advantages = torch.empty_like(values)
    carry = torch.zeros_like(values[0])
    for t in range(values.shape[0] - 1, -1, -1):
        carry = deltas[t] + gamma * gae_lambda * not_done[t] * carry
        advantages[t] = carry
    return advantages
