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


def discounted_returns(rewards: Tensor, dones: Tensor, gamma: float) -> tuple[Tensor, Tensor]:
    """Monte-Carlo returns-to-go, time-major ``[T, N]``, for critic-free methods (REINFORCE).

        G_t = r_t + gamma * (1 - done_t) * G_{t+1}

    Returns ``(G, complete)``: ``complete`` is 1 where the step's episode ended inside the
    rollout, so G_t is its true return-to-go; 0 on the unfinished tail of each env, whose
    returns are cut at the rollout's end and would bias the gradient (callers mask them).
    """
    if rewards.shape != dones.shape:
        raise ValueError(f"discounted_returns: rewards {tuple(rewards.shape)} != dones {tuple(dones.shape)}")
    not_done = 1.0 - dones.to(rewards.dtype)
    returns = torch.empty_like(rewards)
    complete = torch.empty_like(rewards)
    carry = torch.zeros_like(rewards[0])
    ended = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        carry = rewards[t] + gamma * not_done[t] * carry
        ended = torch.maximum(ended, 1.0 - not_done[t])
        returns[t] = carry
        complete[t] = ended
    return returns, complete


def group_relative_advantages(returns: Tensor, scale_by_std: bool = True, eps: float = 1e-8) -> Tensor:
    """GRPO's advantages (Shao et al. 2024, DeepSeekMath, eq. 3): each episode's return
    relative to the other episodes of its group, shape ``[groups, G]``.

        A_i = (R_i - mean_g(R)) / (std_g(R) + eps)       (GRPO)
        A_i =  R_i - mean_g(R)                            (Dr. GRPO, Liu et al. 2025: no std)
    """
    if returns.ndim != 2 or returns.shape[1] < 2:
        raise ValueError(f"group_relative_advantages: need [groups, G >= 2], got {tuple(returns.shape)}")
    centred = returns - returns.mean(dim=1, keepdim=True)
    if not scale_by_std:
        return centred
    return centred / (returns.std(dim=1, unbiased=False, keepdim=True) + eps)
