"""The policy update: epochs of shuffled minibatches over one flattened rollout.

One update serves every method; they differ only in the policy-loss function and whether a
value loss is trained (``policy_loss_for``). Every metric is averaged over all minibatch
steps actually taken (a target-KL stop ends the update early; ``minibatch_steps`` says how
many were taken).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ppokit.classic.policy import ActorCritic
from ppokit.classic.rollout import Rollout
from ppokit.config import CRITIC_FREE, AlgoConfig
from ppokit.core import losses
from ppokit.core.optim import FlatAdam

# Summed per minibatch step in this order, then averaged: the loss's metrics, then the
# gradient norm (known only after the backward pass).
_LOSS_METRICS = ("policy_loss", "value_loss", "entropy", "approx_kl", "approx_kl_k1", "clip_fraction", "loss")
_STEP_METRICS = (*_LOSS_METRICS, "grad_norm")


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
    def from_rollout(
        cls, r: Rollout, advantages: Tensor, returns: Tensor, mask: Tensor, reference: ActorCritic | None = None
    ) -> Batch:
        def flat(x: Tensor) -> Tensor:
            return x.reshape(-1, *x.shape[2:])

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
            advantages=flat(advantages * mask),
            returns=flat(returns),
            mask=flat(mask),
            ref_logprobs=ref_logprobs,
        )

    def __len__(self) -> int:
        return self.obs.shape[0]

    def select(self, index: Tensor | slice) -> Batch:
        """The samples at ``index``: a gather for a permutation, free views for a slice."""
        ref = None if self.ref_logprobs is None else self.ref_logprobs[index]
        return Batch(self.obs[index], self.actions[index], self.logprobs[index], self.values[index],
                     self.advantages[index], self.returns[index], self.mask[index], ref)  # fmt: skip


@dataclass(frozen=True)
class Coefs:
    """This update's values of the schedules and adaptive coefficients."""

    ent: float
    clip: float
    kl: float = 0.0  # ppo-kl's beta
    ref_kl: float = 0.0  # weight of the KL(pi || pi_initial) penalty


def policy_loss(
    method: str, logp: Tensor, logp_old: Tensor, adv: Tensor, coefs: Coefs, mask: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """The policy-loss function of each method (the one place where methods differ)."""
    if method in ("ppo", "grpo"):
        return losses.clipped_surrogate(logp, logp_old, adv, coefs.clip, mask)
    if method == "ppo-kl":
        return losses.kl_penalty_surrogate(logp, logp_old, adv, coefs.kl, mask)
    # a2c, reinforce: the plain policy gradient -E[r A] (beta = 0); at r = 1, one epoch of
    # one minibatch, its gradient is -E[A grad log pi] (Williams 1992; Mnih et al. 2016).
    return losses.kl_penalty_surrogate(logp, logp_old, adv, 0.0, mask)


LossFn = Callable[[ActorCritic, "Batch", AlgoConfig, Coefs], tuple[Tensor, Tensor]]


def minibatch_loss(policy: ActorCritic, mb: Batch, algo: AlgoConfig, coefs: Coefs) -> tuple[Tensor, Tensor]:
    """One minibatch's loss, and its detached metrics in ``_LOSS_METRICS`` order.

    Pure in its arguments (``torch.compile``-able: ``RunConfig.compile``)."""
    logp, entropy, value = policy.evaluate(mb.obs, mb.actions)
    adv = losses.normalize_advantages(mb.advantages, mb.mask) if algo.norm_adv else mb.advantages
    pg_loss, diag = policy_loss(algo.method, logp, mb.logprobs, adv, coefs, mb.mask)
    v_clip = coefs.clip if algo.clip_vloss else None
    v_loss = (
        losses.value_loss(value, mb.values, mb.returns, v_clip, mb.mask)
        if algo.method not in CRITIC_FREE
        else torch.zeros((), device=value.device)
    )
    ent = losses.entropy_bonus(entropy, mb.mask)
    loss = pg_loss + algo.vf_coef * v_loss - coefs.ent * ent
    if coefs.ref_kl > 0 and mb.ref_logprobs is not None:
        loss = loss + coefs.ref_kl * losses.reference_kl(logp, mb.ref_logprobs, mb.mask)
    values = (pg_loss, v_loss, ent, diag["approx_kl"], diag["approx_kl_k1"], diag["clip_fraction"], loss)
    return loss, torch.stack([v.detach() for v in values])


_APPROX_KL = _LOSS_METRICS.index("approx_kl")


def ppo_update(
    policy: ActorCritic,
    optimizer: FlatAdam,
    batch: Batch,
    algo: AlgoConfig,
    coefs: Coefs,
    epochs: int,
    minibatch_size: int,
    generator: torch.Generator,
    initial: ActorCritic | None = None,
    retarget: Callable[[ActorCritic], tuple[Tensor, Tensor]] | None = None,
    loss_fn: LossFn = minibatch_loss,
) -> dict[str, float]:
    """Run the epochs; return the metrics averaged over the minibatch steps taken, plus
    ``approx_kl_final``: KL(pi_old || pi_new) over the whole batch after the update (k3),
    and with ``initial`` (the frozen initial policy) ``kl_from_init``: the exact
    KL(pi_new || pi_initial) averaged over the batch's states. One forward pass each.

    ``retarget(policy)``, if given, returns fresh flat ``(advantages, returns)`` under the
    current critic; it is called before every epoch after the first (recomputed advantages,
    Andrychowicz et al. 2021). The stored values stay the old ones, for value clipping.
    ``loss_fn``: ``minibatch_loss`` or its compiled form."""
    size = len(batch)
    if not bool(batch.mask.any()):
        # Every step was an autoreset step (one-step episodes, T = 1): no data, no step,
        # since even a zero gradient would move Adam's parameters through its momentum.
        nothing = dict.fromkeys((*_STEP_METRICS, "approx_kl_final", "kl_from_init"), math.nan)
        return nothing | {"minibatch_steps": 0.0, "kl_early_stop": 0.0}
    totals = torch.zeros(len(_STEP_METRICS), dtype=torch.float64, device=batch.obs.device)
    steps, kl_stop = 0, False
    for epoch in range(epochs):
        if retarget is not None and epoch > 0:
            advantages, returns = retarget(policy)
            batch = replace(batch, advantages=advantages, returns=returns)
        # One gather per epoch into shuffled order; each minibatch is then a contiguous view.
        shuffled = batch.select(torch.randperm(size, generator=generator).to(batch.obs.device))
        for start in range(0, size, minibatch_size):
            loss, loss_values = loss_fn(policy, shuffled.select(slice(start, start + minibatch_size)), algo, coefs)
            if algo.target_kl is not None and float(loss_values[_APPROX_KL]) > algo.target_kl:
                kl_stop = True  # the policy left the trust region: stop before this step
                break
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]  # torch stub gap
            grad_norm = optimizer.clip_grad_norm(algo.max_grad_norm)
            optimizer.step()
            totals += torch.cat((loss_values, grad_norm.unsqueeze(0))).double()  # no autograd: norm of a .grad
            steps += 1
        if kl_stop:
            break
    means = (totals / max(steps, 1)).tolist()
    metrics = dict(zip(_STEP_METRICS, means, strict=True))
    metrics["minibatch_steps"] = float(steps)
    metrics["kl_early_stop"] = float(kl_stop)
    with torch.no_grad():
        params, _ = policy(batch.obs)
        log_ratio = policy.head.log_prob(params, batch.actions) - batch.logprobs
        metrics["approx_kl_final"] = float(losses.masked_mean(log_ratio.exp() - 1.0 - log_ratio, batch.mask))
        if initial is not None:
            initial_params, _ = initial(batch.obs)
            kl = policy.head.kl(params, initial.head, initial_params)
            metrics["kl_from_init"] = float(losses.masked_mean(kl, batch.mask))
    return metrics
