"""The classic trainer's objective: one minibatch's loss with its named metrics, and the KL
an update caused, measured over the whole batch afterwards.

``make_minibatch_loss`` composes the method's policy loss (``ppokit.methods``) with the value
loss (methods with a critic), the entropy bonus and the optional penalty towards the initial
policy. Each term is computed per step and reduced with the valid-step mask. The returned
function is pure in its arguments, so ``torch.compile`` can take it (``RunConfig.compile``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ppokit.classic.batch import Batch
from ppokit.classic.policy import ActorCritic
from ppokit.config import AlgoConfig
from ppokit.core import kl, losses
from ppokit.core.losses import Coefs
from ppokit.core.reduce import masked_mean, masked_whiten
from ppokit.methods import Method

MinibatchLoss = Callable[[ActorCritic, Batch, Coefs], tuple[Tensor, dict[str, Tensor]]]


def make_minibatch_loss(method: Method, algo: AlgoConfig) -> MinibatchLoss:
    """The loss of one minibatch and its metrics: policy_loss, value_loss (with a critic),
    entropy, approx_kl (k3), approx_kl_k1, clip_fraction (methods that clip), ref_kl (with
    a reference penalty), loss. Metrics that do not apply to the method are absent."""
    value_clip_on = algo.clip_vloss

    def minibatch_loss(policy: ActorCritic, mb: Batch, coefs: Coefs) -> tuple[Tensor, dict[str, Tensor]]:
        logp, entropy, value = policy.evaluate(mb.obs, mb.actions)
        adv = masked_whiten(mb.advantages, mb.mask) if algo.norm_adv else mb.advantages
        terms = method.policy_loss(logp, mb.logprobs, adv, coefs)
        pg_loss = -masked_mean(terms.objective, mb.mask)
        ent = masked_mean(entropy, mb.mask)
        metrics: dict[str, Tensor] = {"policy_loss": pg_loss}
        if method.critic:
            v_clip = coefs.clip_low if value_clip_on else None
            v_loss = masked_mean(losses.value_loss(value, mb.values, mb.returns, v_clip), mb.mask)
            loss = pg_loss + algo.vf_coef * v_loss - coefs.ent * ent
            metrics["value_loss"] = v_loss
        else:
            loss = pg_loss - coefs.ent * ent
        if coefs.ref_kl > 0 and mb.ref_logprobs is not None:
            ref = masked_mean(losses.reference_kl(logp, mb.ref_logprobs), mb.mask)
            loss = loss + coefs.ref_kl * ref
            metrics["ref_kl"] = ref
        metrics |= {"entropy": ent, **losses.policy_diagnostics(terms, mb.mask), "loss": loss}
        return loss, metrics  # the accumulator detaches what it keeps

    return minibatch_loss


CHUNK_BYTES = 8 << 20  # the observations of one no-grad forward pass over a batch, at most


def batch_forward(policy: ActorCritic, obs: Tensor) -> tuple[Tensor, Tensor]:
    """The head's parameters and the values for a whole batch, in chunks of at most
    ``CHUNK_BYTES`` of observations: one pass for vector observations (the whole batch fits), a
    few for frames, whose float copies and activations would otherwise be the run's peak memory."""
    rows = max(1, CHUNK_BYTES // max(1, obs[0].numel() * obs.element_size())) if len(obs) else 1
    if rows >= len(obs):
        whole: tuple[Tensor, Tensor] = policy(obs)
        return whole
    chunks = [policy(obs[i : i + rows]) for i in range(0, len(obs), rows)]
    return torch.cat([p for p, _ in chunks]), torch.cat([v for _, v in chunks])


@torch.no_grad()
def kl_after_update(policy: ActorCritic, batch: Batch, initial: ActorCritic | None,
                    critic: bool = True) -> dict[str, float]:  # fmt: skip
    """``approx_kl_final``: KL(pi_old || pi_new) over the whole batch after the update (k3);
    with ``initial`` (the frozen initial policy) ``kl_from_init``: the exact
    KL(pi_new || pi_initial) averaged over the batch's states; for a method with a critic
    ``value_step``: how far the update moved the values, RMS(V_new - V_old) over the value
    targets' standard deviation (0: a critic that does not learn). One forward pass each
    (chunked for frames: ``batch_forward``)."""
    params, values = batch_forward(policy, batch.obs)
    log_ratio = policy.head.log_prob(params, batch.actions) - batch.logprobs
    metrics = {"approx_kl_final": float(masked_mean(kl.k3(log_ratio), batch.mask))}
    if initial is not None:
        initial_params = batch_forward(initial, batch.obs)[0]
        metrics["kl_from_init"] = float(masked_mean(policy.head.kl(params, initial.head, initial_params), batch.mask))
    if critic:
        metrics["value_step"] = value_step(values, batch.values, batch.returns, batch.mask)
    return metrics


def value_step(new: Tensor, old: Tensor, targets: Tensor, mask: Tensor) -> float:
    """RMS(new - old) / std(targets) over the masked samples; NaN when the targets are constant."""
    m = mask.bool()
    spread = targets[m].double().std(unbiased=False)
    if not spread > 0:
        return math.nan
    return float((new[m].double() - old[m].double()).square().mean().sqrt() / spread)
