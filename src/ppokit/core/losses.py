"""Loss terms as pure functions returning *per-element* values; the caller reduces them.

Policy terms are objectives (to maximize: the surrogates of the PPO paper), value and KL terms
losses (to minimize); the caller negates the reduced objective.

Per element means per sample of the batch: a step for the classic trainer, a token for a
language model. Reducing is a separate choice (``ppokit.core.reduce``: masked mean,
token-mean, sequence-mean, a constant normalizer), so one loss serves every aggregation.

A method's policy loss is a ``PolicyLossFn``: ``(logp, logp_old, adv, coefs) -> PolicyTerms``.
``ppokit.methods`` names one per method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ppokit.core import kl
from ppokit.core.reduce import masked_mean


@dataclass(frozen=True)
class Coefs:
    """This update's values of the schedules and adaptive coefficients."""

    ent: float  # entropy bonus weight
    clip_low: float  # the ratio may fall to 1 - clip_low ...
    clip_high: float  # ... and rise to 1 + clip_high (DAPO's clip-higher when above clip_low)
    kl: float = 0.0  # ppo-kl's beta
    ref_kl: float = 0.0  # weight of the KL(pi || pi_reference) penalty
    dual_clip: float | None = None  # c > 1: bound the loss of negative advantages at c |A|


@dataclass(frozen=True)
class PolicyTerms:
    """A policy objective per element, and what its diagnostics need. The loss is minus the
    reduced objective (``-masked_mean(terms.objective, mask)``): negating one scalar rather
    than every element keeps the minibatch step as cheap as it was."""

    objective: Tensor  # to maximize, per element
    log_ratio: Tensor  # log pi(a|s) - log pi_old(a|s), per element (KL diagnostics)
    ratio: Tensor  # exp(log_ratio), shared with the diagnostics' k3
    clipped: Tensor | None  # 1.0 where the ratio left the clip range; None for methods that never clip


PolicyLossFn = Callable[[Tensor, Tensor, Tensor, Coefs], PolicyTerms]


def clipped_surrogate(
    logp: Tensor, logp_old: Tensor, adv: Tensor, eps_low: float, eps_high: float, dual_clip: float | None = None
) -> PolicyTerms:
    """PPO-Clip's surrogate objective (Schulman et al. 2017, eq. 7), per element:

        r = pi(a|s) / pi_old(a|s)
        L = min(r A, clip(r, 1 - eps_low, 1 + eps_high) A)

    ``eps_high > eps_low`` is DAPO's clip-higher (Yu et al. 2025). With ``dual_clip`` c > 1
    the objective of a negative advantage is bounded below, L = max(L, c A) for A < 0 (Ye et
    al. 2020, "Mastering complex control in MOBA games"): a huge ratio cannot make one sample
    dominate. ``clipped``: 1 where r < 1 - eps_low or r > 1 + eps_high.
    """
    log_ratio = logp - logp_old
    ratio = log_ratio.exp()
    unclipped = ratio * adv
    clipped = ratio.clamp(1.0 - eps_low, 1.0 + eps_high) * adv
    objective = torch.min(unclipped, clipped)
    if dual_clip is not None:
        objective = torch.where(adv < 0, torch.maximum(objective, dual_clip * adv), objective)
    with torch.no_grad():
        moved = ratio - 1.0
        outside = (moved > eps_high) | (moved < -eps_low)  # = |r - 1| > eps when the two are equal, exactly
    return PolicyTerms(objective, log_ratio, ratio, outside.float())


def kl_penalty_surrogate(logp: Tensor, logp_old: Tensor, adv: Tensor, beta: float) -> PolicyTerms:
    """PPO's adaptive-KL objective (Schulman et al. 2017, eq. 8), per element:

        L = r A - beta * KL(pi_old || pi)

    with the KL estimated per sample by k3 (samples come from pi_old)."""
    log_ratio = logp - logp_old
    ratio = log_ratio.exp()
    return PolicyTerms(ratio * adv - beta * kl.k3(log_ratio, ratio), log_ratio, ratio, None)


def policy_gradient(logp: Tensor, logp_old: Tensor, adv: Tensor) -> PolicyTerms:
    """The plain policy-gradient objective, r A per element: at r = 1 (one epoch of one
    minibatch) its gradient is A grad log pi (Williams 1992; Mnih et al. 2016)."""
    log_ratio = logp - logp_old
    ratio = log_ratio.exp()
    return PolicyTerms(ratio * adv, log_ratio, ratio, None)


def value_loss(values: Tensor, values_old: Tensor, returns: Tensor, clip: float | None) -> Tensor:
    """0.5 (V - R)^2 per element, or with clipping 0.5 max((V - R)^2, (V_clip - R)^2),
    V_clip = V_old + clip(V - V_old, -eps, eps) (the PPO2 baselines form)."""
    unclipped = (values - returns).pow(2)
    if clip is None:
        return 0.5 * unclipped
    v_clipped = values_old + (values - values_old).clamp(-clip, clip)
    return 0.5 * torch.max(unclipped, (v_clipped - returns).pow(2))


def reference_kl(logp: Tensor, logp_ref: Tensor) -> Tensor:
    """KL(pi || pi_ref) per element with k3 on samples of pi, as GRPO puts it in its loss
    (Shao et al. 2024, eq. 4): pi_ref/pi - log(pi_ref/pi) - 1 >= 0. Differentiated, this is
    the gradient of the forward KL(pi_ref || pi) (see ``ppokit.core.kl``)."""
    return kl.k3(logp_ref - logp)


@torch.no_grad()
def policy_diagnostics(
    terms: PolicyTerms, mask: Tensor, clip_range: tuple[float, float] | None = None
) -> dict[str, Tensor]:
    """What is logged of a policy loss, over the unmasked elements: ``approx_kl`` (k3) and
    ``approx_kl_k1`` of KL(pi_old || pi), and ``clip_fraction`` for losses that clip. With
    ``clip_range`` = (eps_low, eps_high) also the two sides apart: ``clip_fraction_low``
    (r < 1 - eps_low) and ``clip_fraction_high`` (r > 1 + eps_high), which sum to
    ``clip_fraction`` (clip-higher tunes the second)."""
    metrics = {
        "approx_kl": masked_mean(kl.k3(terms.log_ratio, terms.ratio), mask),
        "approx_kl_k1": masked_mean(kl.k1(terms.log_ratio), mask),
    }
    if terms.clipped is not None:
        metrics["clip_fraction"] = masked_mean(terms.clipped, mask)
        if clip_range is not None:
            with torch.no_grad():
                moved = terms.ratio - 1.0
                metrics["clip_fraction_low"] = masked_mean((moved < -clip_range[0]).float(), mask)
                metrics["clip_fraction_high"] = masked_mean((moved > clip_range[1]).float(), mask)
    return metrics


# --- The method table's policy losses: one signature ---------------------------------------


def clipped_loss(logp: Tensor, logp_old: Tensor, adv: Tensor, coefs: Coefs) -> PolicyTerms:
    return clipped_surrogate(logp, logp_old, adv, coefs.clip_low, coefs.clip_high, coefs.dual_clip)


def kl_penalty_loss(logp: Tensor, logp_old: Tensor, adv: Tensor, coefs: Coefs) -> PolicyTerms:
    return kl_penalty_surrogate(logp, logp_old, adv, coefs.kl)


def pg_loss(logp: Tensor, logp_old: Tensor, adv: Tensor, coefs: Coefs) -> PolicyTerms:
    return policy_gradient(logp, logp_old, adv)
