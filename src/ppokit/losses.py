"""PPO loss terms as pure functions. Each returns a scalar; the caller weights and sums them.

Every mean is over the samples with ``mask == 1`` (autoreset steps carry mask 0).
"""

from __future__ import annotations

import torch
from torch import Tensor


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def normalize_advantages(adv: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """(A - mean) / (std + eps) over the masked samples; masked-out samples become 0."""
    mean = masked_mean(adv, mask)
    var = masked_mean((adv - mean).pow(2), mask)
    return (adv - mean) / (var.sqrt() + eps) * mask


def clipped_surrogate(
    logp: Tensor, logp_old: Tensor, adv: Tensor, clip_coef: float, mask: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO-Clip policy loss (Schulman et al. 2017, eq. 7), negated for minimization.

        r = pi(a|s) / pi_old(a|s)
        L = -E[ min(r A, clip(r, 1 - eps, 1 + eps) A) ]

    Diagnostics: the fraction of samples whose ratio is outside [1 - eps, 1 + eps], and two
    estimators of KL(pi_old || pi): k1 = E[-log r] and k3 = E[(r - 1) - log r] (Schulman,
    "Approximating KL divergence", 2020; k3 is unbiased and never negative).
    """
    log_ratio = logp - logp_old
    ratio = log_ratio.exp()
    unclipped = ratio * adv
    clipped = ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef) * adv
    loss = -masked_mean(torch.min(unclipped, clipped), mask)
    with torch.no_grad():
        diagnostics = {
            "clip_fraction": masked_mean(((ratio - 1.0).abs() > clip_coef).float(), mask),
            "approx_kl_k1": masked_mean(-log_ratio, mask),
            "approx_kl": masked_mean((ratio - 1.0) - log_ratio, mask),
        }
    return loss, diagnostics


def value_loss(values: Tensor, values_old: Tensor, returns: Tensor, clip_coef: float | None, mask: Tensor) -> Tensor:
    """0.5 * E[(V - R)^2], or with clipping 0.5 * E[max((V - R)^2, (V_clip - R)^2)],
    V_clip = V_old + clip(V - V_old, -eps, eps) (the PPO2 baselines form)."""
    unclipped = (values - returns).pow(2)
    if clip_coef is None:
        return 0.5 * masked_mean(unclipped, mask)
    v_clipped = values_old + (values - values_old).clamp(-clip_coef, clip_coef)
    return 0.5 * masked_mean(torch.max(unclipped, (v_clipped - returns).pow(2)), mask)


def entropy_bonus(entropy: Tensor, mask: Tensor) -> Tensor:
    """E[H(pi(.|s))]; the caller subtracts ent_coef times this from the loss."""
    return masked_mean(entropy, mask)


def explained_variance(y_pred: Tensor, y_true: Tensor, mask: Tensor) -> float:
    """1 - Var[y - y_pred] / Var[y]: 1 is perfect, 0 no better than a constant, < 0 worse.
    NaN when Var[y] is 0."""
    m = mask.bool()
    y, p = y_true[m].double(), y_pred[m].double()
    if y.numel() == 0:
        return float("nan")
    var_y = y.var(unbiased=False)
    if var_y == 0:
        return float("nan")
    return float(1.0 - (y - p).var(unbiased=False) / var_y)
