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


def kl_penalty_surrogate(
    logp: Tensor, logp_old: Tensor, adv: Tensor, beta: float, mask: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO's adaptive-KL objective (Schulman et al. 2017, eq. 8), negated for minimization.

        L = -E[ r A - beta * KL(pi_old || pi) ]

    with the KL estimated per sample by k3 = (r - 1) - log r (samples come from pi_old).
    """
    log_ratio = logp - logp_old
    ratio = log_ratio.exp()
    k3 = (ratio - 1.0) - log_ratio
    loss = -masked_mean(ratio * adv - beta * k3, mask)
    with torch.no_grad():
        diagnostics = {
            "clip_fraction": torch.zeros((), device=logp.device),
            "approx_kl_k1": masked_mean(-log_ratio, mask),
            "approx_kl": masked_mean(k3, mask),
        }
    return loss, diagnostics


def adapt_kl_coef(beta: float, kl: float, target: float) -> float:
    """The PPO paper's rule (section 4): halve beta when KL < target / 1.5, double it when
    KL > 1.5 * target, else keep it."""
    if kl < target / 1.5:
        return beta / 2.0
    if kl > target * 1.5:
        return beta * 2.0
    return beta


def adapt_clip_coef(eps: float, kl: float, target: float, low: float, high: float) -> float:
    """Adaptive clip range: shrink eps by 1.5 when KL > 1.5 * target, grow it by 1.5 when
    KL < target / 1.5, and keep it within [low, high]."""
    if kl > target * 1.5:
        eps /= 1.5
    elif kl < target / 1.5:
        eps *= 1.5
    return min(max(eps, low), high)


def reference_kl(logp: Tensor, logp_ref: Tensor, mask: Tensor) -> Tensor:
    """KL(pi || pi_ref) with the k3 estimator as GRPO uses it (Shao et al. 2024, eq. 4):

    KL ~ E[ pi_ref/pi - log(pi_ref/pi) - 1 ]   (>= 0 per sample)
    """
    log_ratio = logp_ref - logp
    return masked_mean(log_ratio.exp() - log_ratio - 1.0, mask)
