"""Advantage estimation as pure functions over time-major tensors ``[T, N]``.

The estimators (``gae``, ``vtrace``, ``discounted_returns``, ``group_relative_advantages``,
``rloo_advantages``) are plain tensor math. The ``*_targets`` functions adapt them to one
signature, ``(Trajectories, AdvantageSettings) -> Targets``, which is what the method table
(``ppokit.methods``) names for each method; a trainer builds ``Trajectories`` from its own
storage (the classic rollout, or completions whose last real token ends the episode).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ppokit.core.reduce import masked_mean

GroupScale = Literal["group", "batch", "none"]
GROUP_SCALES: tuple[GroupScale, ...] = ("group", "batch", "none")


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


def vtrace(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    dones: Tensor,
    log_rhos: Tensor,
    gamma: float,
    lam: float = 1.0,
    rho_clip: float = 1.0,
    c_clip: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """V-trace (Espeholt et al. 2018, eq. 1 and section 4.2), time-major ``[T, N]``:
    off-policy value targets and policy-gradient advantages for data that a behaviour policy
    mu collected, under the target policy pi (``log_rhos`` = log pi(a_t|x_t) - log mu(a_t|x_t)).

        rho_t   = min(rho_clip, pi/mu),   c_t = lam * min(c_clip, pi/mu)
        delta_t = rho_t * (r_t + gamma * (1 - terminated_t) * V(x_{t+1}) - V(x_t))
        v_t     = V(x_t) + delta_t + gamma * c_t * (1 - done_t) * (v_{t+1} - V(x_{t+1}))
        A_t     = rho_t * (r_t + gamma * (1 - terminated_t) * v_{t+1} - V(x_t))

    ``values``/``next_values``/``terminated``/``dones`` as ``gae`` reads them; the target after
    the last step of the rollout, or after a truncation, is the value there (nothing follows).
    With pi = mu the targets are GAE(lam)'s returns, and with lam = 1 the advantages GAE(1)'s.
    Returns ``(advantages, targets)``."""
    if not (rewards.shape == values.shape == next_values.shape == terminated.shape == dones.shape == log_rhos.shape):
        raise ValueError(f"vtrace: shapes differ: rewards {tuple(rewards.shape)}, values {tuple(values.shape)}, "
                         f"log_rhos {tuple(log_rhos.shape)}")  # fmt: skip
    ratios = log_rhos.exp()
    rhos, cs = ratios.clamp(max=rho_clip), lam * ratios.clamp(max=c_clip)
    not_terminated = 1.0 - terminated.to(values.dtype)
    not_done = 1.0 - dones.to(values.dtype)
    deltas = rhos * (rewards + gamma * not_terminated * next_values - values)
    corrections = torch.empty_like(values)  # v_t - V(x_t)
    next_targets = torch.empty_like(values)  # v_{t+1}, the target of the state after step t
    carry = torch.zeros_like(values[0])
    for t in range(values.shape[0] - 1, -1, -1):
        next_targets[t] = next_values[t] + not_done[t] * carry
        carry = deltas[t] + gamma * cs[t] * not_done[t] * carry
        corrections[t] = carry
    advantages = rhos * (rewards + gamma * not_terminated * next_targets - values)
    return advantages, values + corrections


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


def group_relative_advantages(returns: Tensor, scale: GroupScale = "group", eps: float = 1e-8) -> Tensor:
    """GRPO's advantages (Shao et al. 2024, DeepSeekMath, eq. 3): each episode's return
    relative to the other episodes of its group, shape ``[groups, G]``.

        A_i = (R_i - mean_g(R)) / (std_g(R) + eps)       scale "group" (GRPO)
        A_i = (R_i - mean_g(R)) / (std(R) + eps)         scale "batch" (std over all groups)
        A_i =  R_i - mean_g(R)                            scale "none" (Dr. GRPO, Liu et al. 2025)

    "batch" keeps the group baseline but does not blow up groups whose returns barely differ
    (the difficulty bias Dr. GRPO points out in the per-group std).
    """
    _check_groups("group_relative_advantages", returns)
    centred = returns - returns.mean(dim=1, keepdim=True)
    if scale == "none":
        return centred
    if scale == "batch":
        return centred / (returns.std(unbiased=False) + eps)
    if scale == "group":
        return centred / (returns.std(dim=1, unbiased=False, keepdim=True) + eps)
    raise ValueError(f"group_relative_advantages: unknown scale {scale!r}; allowed: {', '.join(GROUP_SCALES)}")


def rloo_advantages(returns: Tensor) -> Tensor:
    """REINFORCE leave-one-out (Kool et al. 2019; Ahmadian et al. 2024), ``[groups, G]``: each
    episode's return minus the mean of the *other* episodes of its group,

        A_i = R_i - (sum_g(R) - R_i) / (G - 1)  =  G / (G - 1) * (R_i - mean_g(R))

    an unbiased baseline, since it does not depend on episode i itself.
    """
    _check_groups("rloo_advantages", returns)
    g = returns.shape[1]
    others = (returns.sum(dim=1, keepdim=True) - returns) / (g - 1)
    return returns - others


def _check_groups(name: str, returns: Tensor) -> None:
    if returns.ndim != 2 or returns.shape[1] < 2:
        raise ValueError(f"{name}: need [groups, G >= 2], got {tuple(returns.shape)}")


# --- One signature for the method table --------------------------------------------------


@dataclass(frozen=True)
class Trajectories:
    """What an advantage estimator reads, time-major ``[T, N]`` (``valid`` is 0 on steps that
    carry no sample: autoreset steps, steps after a group episode ended)."""

    rewards: Tensor
    values: Tensor  # V(s_t)
    next_values: Tensor  # V(s_{t+1}); a truncated step's is V(final observation)
    terminated: Tensor
    truncated: Tensor
    valid: Tensor
    episode_returns: Tensor | None = None  # [N]: each env's one whole episode (group methods)


@dataclass(frozen=True)
class AdvantageSettings:
    gamma: float
    gae_lambda: float
    bootstrap_truncation: bool = True  # off: a time-limit truncation cuts the bootstrap too
    return_baseline: bool = True  # return_targets: subtract the batch's mean return
    group_size: int = 2
    group_scale: GroupScale = "group"


@dataclass(frozen=True)
class Targets:
    """Advantages and value targets ``[T, N]`` and the mask of steps that carry a sample."""

    advantages: Tensor
    returns: Tensor
    mask: Tensor


def gae_targets(traj: Trajectories, s: AdvantageSettings) -> Targets:
    """GAE advantages; value targets A + V (the lambda-return)."""
    dones = torch.maximum(traj.terminated, traj.truncated)
    # Off, a time-limit truncation counts as a termination (the ablation of what bootstrapping buys).
    cuts_bootstrap = traj.terminated if s.bootstrap_truncation else dones
    advantages = gae(traj.rewards, traj.values, traj.next_values, cuts_bootstrap, dones, s.gamma, s.gae_lambda)
    return Targets(advantages, advantages + traj.values, traj.valid)


def return_targets(traj: Trajectories, s: AdvantageSettings) -> Targets:
    """Monte-Carlo returns-to-go (REINFORCE), less the batch's mean return as a baseline;
    steps whose episode did not end inside the rollout are masked out."""
    returns, complete = discounted_returns(traj.rewards, torch.maximum(traj.terminated, traj.truncated), s.gamma)
    mask = traj.valid * complete
    baseline = masked_mean(returns, mask) if s.return_baseline else 0.0
    return Targets(returns - baseline, returns, mask)


def group_targets(traj: Trajectories, s: AdvantageSettings) -> Targets:
    """GRPO: every step of an episode gets its episode's group-relative advantage."""
    return _per_episode(traj, s, group_relative_advantages(_grouped(traj, s), s.group_scale))


def rloo_targets(traj: Trajectories, s: AdvantageSettings) -> Targets:
    """RLOO: every step of an episode gets its episode's leave-one-out advantage."""
    return _per_episode(traj, s, rloo_advantages(_grouped(traj, s)))


def _grouped(traj: Trajectories, s: AdvantageSettings) -> Tensor:
    if traj.episode_returns is None:
        raise ValueError("group advantages need Trajectories.episode_returns (one episode per env)")
    return traj.episode_returns.view(-1, s.group_size)


def _per_episode(traj: Trajectories, s: AdvantageSettings, per_env: Tensor) -> Targets:
    # No critic: the value targets are the stored values, so a value loss would be zero.
    return Targets(per_env.view(1, -1).expand_as(traj.rewards), traj.values, traj.valid)
