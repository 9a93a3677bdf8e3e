"""A rollout flattened into the batch an update trains on, with the method's targets."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ppokit.classic.policy import ActorCritic
from ppokit.classic.rollout import Rollout
from ppokit.core.advantages import AdvantageSettings, Targets, Trajectories, vtrace
from ppokit.methods import Method


@dataclass
class Batch:
    """A rollout flattened to ``[B = T * N, ...]`` with its advantages and returns.

    ``ref_logprobs``: log-probabilities of the actions under the frozen initial policy, for
    the optional penalty towards it (None without a reference: no forward pass spent)."""

    obs: Tensor
    actions: Tensor
    logprobs: Tensor
    values: Tensor
    advantages: Tensor
    returns: Tensor
    mask: Tensor
    ref_logprobs: Tensor | None = None

    @classmethod
    def from_rollout(cls, r: Rollout, targets: Targets, reference: ActorCritic | None = None) -> Batch:
        obs, actions = flat(r.obs), flat(r.actions)
        ref_logprobs = None
        if reference is not None:
            with torch.no_grad():
                ref_logprobs, _, _ = reference.evaluate(obs, actions)
        return cls(
            obs=obs,
            actions=actions,
            logprobs=flat(r.logprobs),
            values=flat(r.values),
            advantages=flat(targets.advantages * targets.mask),
            returns=flat(targets.returns),
            mask=flat(targets.mask),
            ref_logprobs=ref_logprobs,
        )

    @property
    def device(self) -> torch.device:
        return self.obs.device

    def __len__(self) -> int:
        return self.obs.shape[0]

    def select(self, index: Tensor | slice) -> Batch:
        """The samples at ``index``: a gather for a permutation, free views for a slice."""
        ref = None if self.ref_logprobs is None else self.ref_logprobs[index]
        return Batch(self.obs[index], self.actions[index], self.logprobs[index], self.values[index],
                     self.advantages[index], self.returns[index], self.mask[index], ref)  # fmt: skip


def flat(x: Tensor) -> Tensor:
    """``[T, N, ...]`` -> ``[T * N, ...]``."""
    return x.reshape(-1, *x.shape[2:])


def trajectories(r: Rollout, episode_returns: Tensor | None = None) -> Trajectories:
    """The rollout as an advantage estimator reads it (values as collected)."""
    return Trajectories(r.rewards, r.values, r.next_values, r.terminated, r.truncated, r.valid, episode_returns)


def recomputed_targets(
    r: Rollout, method: Method, settings: AdvantageSettings, policy: ActorCritic
) -> tuple[Tensor, Tensor]:
    """Flat ``(advantages, returns)`` under ``policy``'s current critic, masked as
    ``Batch.from_rollout`` masks them (``algo.recompute_advantages``; Andrychowicz et al. 2021).
    The stored values stay the old ones, for value clipping."""
    values, next_values = r.values_under(policy)
    traj = Trajectories(r.rewards, values, next_values, r.terminated, r.truncated, r.valid)
    targets = method.advantages(traj, settings)
    return flat(targets.advantages * targets.mask), flat(targets.returns)


def vtrace_batch(
    r: Rollout, policy: ActorCritic, s: AdvantageSettings, clip: float, reference: ActorCritic | None = None
) -> tuple[Batch, dict[str, float]]:
    """An async worker's rollout as a batch with V-trace targets (Espeholt et al. 2018) under the
    learner's ``policy``, which may be several updates past the worker's: advantages and value
    targets from the learner's values, corrected by the truncated ratios pi/mu of the learner's
    and the worker's log-probs. The PPO ratio stays against the worker's log-probs (the behaviour
    policy), and value clipping is around the learner's values. Also the ratios' mean and the
    fraction that ``clip`` truncated, over the steps that carry a sample."""
    t, n = r.values.shape
    with torch.no_grad():
        logprobs = policy.evaluate(flat(r.obs), flat(r.actions))[0].view(t, n)
    values, next_values = r.values_under(policy)
    log_rhos = (logprobs - r.logprobs) * r.valid  # no sample on a reset step: its ratio is 1
    dones = torch.maximum(r.terminated, r.truncated)
    cuts_bootstrap = r.terminated if s.bootstrap_truncation else dones
    advantages, returns = vtrace(r.rewards, values, next_values, cuts_bootstrap, dones, log_rhos, s.gamma,
                                 s.gae_lambda, clip, clip)  # fmt: skip
    batch = Batch.from_rollout(r, Targets(advantages, returns, r.valid), reference)
    batch.values = flat(values)
    ratios = log_rhos.exp()[r.valid > 0]
    return batch, {"vtrace_rho_mean": float(ratios.mean()), "vtrace_rho_clipped": float((ratios > clip).float().mean())}
