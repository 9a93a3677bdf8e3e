"""KL divergence: sample estimators from a log-ratio, exact KL of the classic heads, controllers.

The estimators follow Schulman, "Approximating KL divergence" (2020). With samples ``x ~ q``
and ``log_ratio = log p(x) - log q(x)``, each is a per-sample estimate of KL(q || p)::

    k1 = -log_ratio                          unbiased, high variance, can be negative
    k2 = log_ratio^2 / 2                     biased (low for close p, q), never negative
    k3 = (exp(log_ratio) - 1) - log_ratio    unbiased, never negative, low variance

Their *gradients* differ from their values, which matters when an estimator is put in a
loss and differentiated through ``log p`` with the samples held fixed (Tang & Munos 2025,
"On a few pitfalls in KL divergence gradient estimation"). For KL(pi || pi_ref) estimated
on samples of pi, ``log_ratio = log pi_ref - log pi``, differentiated with respect to pi:

- k1's gradient is zero in expectation: as a loss it regularizes nothing.
- k2's gradient is that of the reverse KL(pi || pi_ref), the quantity usually meant.
- k3's gradient is that of the *forward* KL(pi_ref || pi) (GRPO's loss term, Shao et al.
  2024, eq. 4): a mass-covering pull towards the reference, not the reverse KL.

Values are what diagnostics log (``approx_kl`` is k3, ``approx_kl_k1`` is k1).
"""

from __future__ import annotations

import torch
from torch import Tensor


def k1(log_ratio: Tensor) -> Tensor:
    """-log r, per sample: the plain Monte-Carlo estimate of KL(q || p) on samples of q."""
    return -log_ratio


def k2(log_ratio: Tensor) -> Tensor:
    """(log r)^2 / 2, per sample; its pathwise gradient is the reverse KL's."""
    return 0.5 * log_ratio.pow(2)


def k3(log_ratio: Tensor, ratio: Tensor | None = None) -> Tensor:
    """(r - 1) - log r, per sample, r = exp(log_ratio); unbiased and >= 0. Pass ``ratio`` when
    the caller has it already: the loss then has one ``exp`` node, not two."""
    r = log_ratio.exp() if ratio is None else ratio
    return (r - 1.0) - log_ratio


def categorical_kl(logits_p: Tensor, logits_q: Tensor) -> Tensor:
    """Exact KL(p || q) = sum_a p(a) (log p(a) - log q(a)) over the last axis."""
    logp, logq = torch.log_softmax(logits_p, -1), torch.log_softmax(logits_q, -1)
    return (logp.exp() * (logp - logq)).sum(-1)


def diag_gaussian_kl(mean_p: Tensor, log_std_p: Tensor, mean_q: Tensor, log_std_q: Tensor) -> Tensor:
    """Exact KL(N(mu_p, s_p) || N(mu_q, s_q)) of diagonal Gaussians, summed over the last axis:

    sum_i log(s_q / s_p) + (s_p^2 + (mu_p - mu_q)^2) / (2 s_q^2) - 1/2
    """
    var_ratio = torch.exp(2 * (log_std_p - log_std_q))
    mean_term = (mean_p - mean_q).pow(2) * torch.exp(-2 * log_std_q)
    return (log_std_q - log_std_p + 0.5 * (var_ratio + mean_term) - 0.5).sum(-1)


def adapt_kl_coef(beta: float, kl: float, target: float) -> float:
    """The PPO paper's adaptive penalty (Schulman et al. 2017, section 4): halve beta when
    KL < target / 1.5, double it when KL > 1.5 * target, else keep it."""
    if kl < target / 1.5:
        return beta / 2.0
    if kl > target * 1.5:
        return beta * 2.0
    return beta


def adapt_kl_coef_proportional(beta: float, kl: float, target: float, steps: int, horizon: int) -> float:
    """The adaptive KL controller of Ziegler et al. 2019 (section 2.2), used by RLHF's PPO:

        e = clip(KL / target - 1, -0.2, 0.2),   beta <- beta * (1 + e * steps / horizon)

    a proportional step towards the target that moves beta by at most 20% per ``horizon``."""
    error = min(max(kl / target - 1.0, -0.2), 0.2)
    return beta * (1.0 + error * steps / horizon)


def adapt_clip_coef(eps: float, kl: float, target: float, low: float, high: float) -> float:
    """Adaptive clip range: shrink eps by 1.5 when KL > 1.5 * target, grow it by 1.5 when
    KL < target / 1.5, and keep it within [low, high]."""
    if kl > target * 1.5:
        eps /= 1.5
    elif kl < target / 1.5:
        eps *= 1.5
    return min(max(eps, low), high)
