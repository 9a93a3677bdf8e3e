"""PPO loss terms against hand-computed values and autograd."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from ppokit.core import losses
from ppokit.core.metrics import correlation, explained_variance
from ppokit.core.reduce import masked_mean
from ppokit.core.reduce import masked_whiten as normalize_advantages

EPS = 0.2


def clipped_surrogate(
    logp: Tensor, logp_old: Tensor, adv: Tensor, eps: float, mask: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """The per-element clipped surrogate reduced as the trainers reduce it (masked mean), with
    its logged diagnostics."""
    terms = losses.clipped_surrogate(logp, logp_old, adv, eps, eps)
    return -masked_mean(terms.objective, mask), losses.policy_diagnostics(terms, mask)


def value_loss(values: Tensor, values_old: Tensor, returns: Tensor, clip: float | None, mask: Tensor) -> Tensor:
    return masked_mean(losses.value_loss(values, values_old, returns, clip), mask)


def entropy_bonus(entropy: Tensor, mask: Tensor) -> Tensor:
    return masked_mean(entropy, mask)


def t64(*xs: float) -> Tensor:
    return torch.tensor(xs, dtype=torch.float64)


# --- masked_mean ---------------------------------------------------------------------------


def test_masked_mean_ignores_masked_samples() -> None:
    x = t64(1.0, 2.0, 3.0, 1000.0)
    assert float(masked_mean(x, t64(1, 1, 1, 0))) == pytest.approx(2.0)
    assert float(masked_mean(x, t64(0, 0, 0, 1))) == pytest.approx(1000.0)


def test_masked_mean_all_masked_is_zero_not_nan() -> None:
    assert float(masked_mean(t64(5.0, 6.0), t64(0, 0))) == 0.0


# --- clipped_surrogate: values ---------------------------------------------------------------

# (ratio, advantage, min(r*A, clip(r, 0.8, 1.2)*A), ratio clipped on the side that would help)
SURROGATE_CASES = [
    (1.1, 2.0, 2.2, False),  # inside:            min(2.2, 2.2)        = 2.2
    (1.5, 2.0, 2.4, True),  # A > 0, r > 1 + eps:  min(3.0, 1.2*2 = 2.4) = 2.4
    (0.5, 2.0, 1.0, False),  # A > 0, r < 1 - eps:  min(1.0, 0.8*2 = 1.6) = 1.0
    (1.5, -1.0, -1.5, False),  # A < 0, r > 1 + eps:  min(-1.5, -1.2)      = -1.5
    (0.5, -1.0, -0.8, True),  # A < 0, r < 1 - eps:  min(-0.5, -0.8)      = -0.8
    (0.9, -1.0, -0.9, False),  # inside:            min(-0.9, -0.9)      = -0.9
]


@pytest.mark.parametrize(("ratio", "adv", "objective", "clipped"), SURROGATE_CASES)
def test_clipped_surrogate_single_sample(ratio: float, adv: float, objective: float, clipped: bool) -> None:
    logp = torch.tensor([math.log(ratio)], dtype=torch.float64, requires_grad=True)
    loss, diag = clipped_surrogate(logp, t64(0.0), t64(adv), EPS, t64(1.0))
    assert loss.item() == pytest.approx(-objective, abs=1e-12)
    loss.backward()
    assert logp.grad is not None
    grad = float(logp.grad[0])
    if clipped:
        assert grad == 0.0
    else:
        # d(-r*A)/d logp = -r*A (dr/dlogp = r): negative for A > 0, positive for A < 0.
        assert grad == pytest.approx(-ratio * adv, abs=1e-12)
        assert math.copysign(1.0, grad) == -math.copysign(1.0, adv)
    assert float(diag["clip_fraction"]) == (1.0 if abs(ratio - 1.0) > EPS else 0.0)


def _surrogate_batch() -> tuple[Tensor, Tensor]:
    ratios = t64(*(c[0] for c in SURROGATE_CASES))
    adv = t64(*(c[1] for c in SURROGATE_CASES))
    return ratios, adv


def test_clipped_surrogate_batch_value_and_gradients() -> None:
    ratios, adv = _surrogate_batch()
    logp_old = t64(0.3, -1.0, -2.0, 0.0, -0.5, -0.1)
    logp = (logp_old + ratios.log()).requires_grad_(True)
    loss, diag = clipped_surrogate(logp, logp_old, adv, EPS, torch.ones(6, dtype=torch.float64))
    # -(2.2 + 2.4 + 1.0 - 1.5 - 0.8 - 0.9) / 6 = -2.4 / 6 = -0.4
    assert loss.item() == pytest.approx(-0.4, abs=1e-12)
    loss.backward()
    assert logp.grad is not None
    # d loss / d logp_i = -r_i*A_i/n where unclipped, 0 where clipped on the helpful side (n = 6).
    expected = t64(-2.2 / 6, 0.0, -1.0 / 6, 1.5 / 6, 0.0, 0.9 / 6)
    torch.testing.assert_close(logp.grad, expected, rtol=0, atol=1e-12)
    # |r - 1| > 0.2 for r in {1.5, 0.5, 1.5, 0.5}: 4 of 6.
    assert float(diag["clip_fraction"]) == pytest.approx(4 / 6)


def test_clipped_surrogate_mask_excludes_samples() -> None:
    ratios, adv = _surrogate_batch()
    mask = t64(1, 1, 1, 1, 0, 0)
    logp = ratios.log().requires_grad_(True)
    loss, diag = clipped_surrogate(logp, torch.zeros(6, dtype=torch.float64), adv, EPS, mask)
    # -(2.2 + 2.4 + 1.0 - 1.5) / 4 = -4.1 / 4 = -1.025
    assert loss.item() == pytest.approx(-1.025, abs=1e-12)
    loss.backward()
    assert logp.grad is not None
    expected = t64(-2.2 / 4, 0.0, -1.0 / 4, 1.5 / 4, 0.0, 0.0)
    torch.testing.assert_close(logp.grad, expected, rtol=0, atol=1e-12)
    # Unmasked ratios 1.1, 1.5, 0.5, 1.5: 3 of 4 are outside [0.8, 1.2].
    assert float(diag["clip_fraction"]) == pytest.approx(3 / 4)


def test_clipped_surrogate_masked_garbage_has_no_effect() -> None:
    gen = torch.Generator().manual_seed(0)
    logp, logp_old, adv = (torch.randn(8, generator=gen) * 0.3 for _ in range(3))
    mask = torch.tensor([1, 0, 1, 1, 0, 1, 0, 1], dtype=torch.float32)
    garbage = (1 - mask) * torch.randn(8, generator=gen) * 2.0
    loss_a, diag_a = clipped_surrogate(logp, logp_old, adv, EPS, mask)
    loss_b, diag_b = clipped_surrogate(logp + garbage, logp_old - garbage, adv + 5 * garbage, EPS, mask)
    torch.testing.assert_close(loss_a, loss_b)
    for key in diag_a:
        torch.testing.assert_close(diag_a[key], diag_b[key])


# --- clipped_surrogate: approximate KL -------------------------------------------------------


def test_approx_kl_zero_when_ratio_is_one() -> None:
    logp = t64(-0.3, -1.2, -2.5)
    ones = torch.ones(3, dtype=torch.float64)
    _, diag = clipped_surrogate(logp, logp.clone(), t64(1.0, -1.0, 0.5), EPS, ones)
    assert float(diag["approx_kl"]) == 0.0
    assert float(diag["approx_kl_k1"]) == 0.0
    assert float(diag["clip_fraction"]) == 0.0


def test_approx_kl_hand_values() -> None:
    # ratios 0.5 and 2:  k1 = mean(-log r) = mean(log 2, -log 2) = 0
    #                    k3 = mean((r - 1) - log r) = mean(-0.5 + log 2, 1 - log 2) = 0.5 / 2 = 0.25
    logp = t64(math.log(0.5), math.log(2.0))
    _, diag = clipped_surrogate(logp, t64(0.0, 0.0), t64(1.0, 1.0), EPS, t64(1.0, 1.0))
    assert float(diag["approx_kl_k1"]) == pytest.approx(0.0, abs=1e-12)
    assert float(diag["approx_kl"]) == pytest.approx(0.25, abs=1e-12)
    # ratio 2 alone: k1 = -log 2, k3 = 1 - log 2
    _, diag = clipped_surrogate(t64(math.log(2.0)), t64(0.0), t64(1.0), EPS, t64(1.0))
    assert float(diag["approx_kl_k1"]) == pytest.approx(-math.log(2.0), abs=1e-12)
    assert float(diag["approx_kl"]) == pytest.approx(1.0 - math.log(2.0), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_approx_kl_k3_never_negative(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    logp, logp_old = torch.randn(64, generator=gen), torch.randn(64, generator=gen)
    mask = (torch.rand(64, generator=gen) < 0.7).float()
    _, diag = clipped_surrogate(logp, logp_old, torch.randn(64, generator=gen), EPS, mask)
    assert float(diag["approx_kl"]) >= 0.0
    assert float(diag["approx_kl"]) > 0.0  # the ratios are not all 1
    # k1 is just the masked mean of -log r.
    expected_k1 = float(((logp_old - logp) * mask).sum() / mask.sum())
    assert float(diag["approx_kl_k1"]) == pytest.approx(expected_k1, rel=1e-5)


def test_diagnostics_carry_no_gradient() -> None:
    logp = torch.zeros(3, requires_grad=True)
    loss, diag = clipped_surrogate(logp, torch.full((3,), 0.5), torch.ones(3), EPS, torch.ones(3))
    assert loss.requires_grad
    assert all(not v.requires_grad for v in diag.values())
    terms = losses.clipped_surrogate(logp, torch.full((3,), 0.5), torch.ones(3), EPS, EPS)
    assert terms.clipped is not None and not terms.clipped.requires_grad


# --- value_loss -------------------------------------------------------------------------------


def test_value_loss_unclipped() -> None:
    # 0.5 * mean((1 - 0)^2, (2 - 4)^2) = 0.5 * (1 + 4) / 2 = 1.25
    loss = value_loss(t64(1.0, 2.0), t64(50.0, -50.0), t64(0.0, 4.0), None, t64(1.0, 1.0))
    assert loss.item() == pytest.approx(1.25, abs=1e-12)


def test_value_loss_unclipped_mask() -> None:
    # Only the first sample: 0.5 * (1 - 0)^2 = 0.5
    loss = value_loss(t64(1.0, 2.0), t64(0.0, 0.0), t64(0.0, 400.0), None, t64(1.0, 0.0))
    assert loss.item() == pytest.approx(0.5, abs=1e-12)


# (V, V_old, R, 0.5 * max((V - R)^2, (V_clip - R)^2), its gradient d/dV), eps = 0.2
VALUE_CLIP_CASES = [
    # V_clip = 0 + clip(1, -.2, .2) = 0.2: unclipped (1-1)^2 = 0 < clipped (0.2-1)^2 = 0.64 -> 0.32;
    # the clipped branch is constant in V, so the gradient is 0.
    pytest.param(1.0, 0.0, 1.0, 0.32, 0.0, id="clipped-term-larger"),
    # V_clip = 0.2: unclipped (1-0)^2 = 1 > clipped (0.2-0)^2 = 0.04 -> 0.5; gradient V - R = 1.
    pytest.param(1.0, 0.0, 0.0, 0.5, 1.0, id="clipped-term-smaller"),
    # V - V_old = 0.1 inside [-0.2, 0.2]: both (0.1-1)^2 = 0.81 -> 0.405; gradient V - R = -0.9.
    pytest.param(0.1, 0.0, 1.0, 0.405, -0.9, id="inside-clip-range"),
    # V_clip = 2 - 0.2 = 1.8: unclipped (0-3)^2 = 9 > clipped (1.8-3)^2 = 1.44 -> 4.5; gradient -3.
    pytest.param(0.0, 2.0, 3.0, 4.5, -3.0, id="moved-down-clipped-smaller"),
    # V_clip = 1.8: unclipped (0-1)^2 = 1 > clipped (1.8-1)^2 = 0.64 -> 0.5; gradient V - R = -1.
    pytest.param(0.0, 2.0, 1.0, 0.5, -1.0, id="moved-down-unclipped-larger"),
    # V_clip = 1.8: unclipped (0+1)^2 = 1 < clipped (1.8+1)^2 = 7.84 -> 3.92; gradient 0.
    pytest.param(0.0, 2.0, -1.0, 3.92, 0.0, id="moved-down-clipped-larger"),
]


@pytest.mark.parametrize(("v", "v_old", "ret", "want", "grad"), VALUE_CLIP_CASES)
def test_value_loss_clipped_one_sample(v: float, v_old: float, ret: float, want: float, grad: float) -> None:
    values = t64(v).requires_grad_(True)
    loss = value_loss(values, t64(v_old), t64(ret), EPS, t64(1.0))
    assert loss.item() == pytest.approx(want, abs=1e-12)
    loss.backward()
    assert values.grad is not None
    assert float(values.grad[0]) == pytest.approx(grad, abs=1e-12)


def test_value_loss_clipped_batch_with_mask() -> None:
    v, v_old, ret = (t64(*(float(c.values[i]) for c in VALUE_CLIP_CASES)) for i in range(3))
    mask = t64(1, 1, 1, 1, 1, 0)
    # 0.5 * mean(0.64, 1, 0.81, 9, 1) = 0.5 * 12.45 / 5 = 1.245
    assert float(value_loss(v, v_old, ret, EPS, mask)) == pytest.approx(1.245, abs=1e-12)
    # Unclipped over the same mask: 0.5 * mean(0, 1, 0.81, 9, 1) = 0.5 * 11.81 / 5 = 1.181
    assert float(value_loss(v, v_old, ret, None, mask)) == pytest.approx(1.181, abs=1e-12)


# --- entropy_bonus ----------------------------------------------------------------------------


def test_entropy_bonus_is_masked_mean() -> None:
    # (1 + 2 + 3) / 3 = 2; the masked 10 is ignored
    assert float(entropy_bonus(t64(1.0, 2.0, 3.0, 10.0), t64(1, 1, 1, 0))) == pytest.approx(2.0)
    assert float(entropy_bonus(t64(1.0, 2.0, 3.0, 10.0), t64(1, 1, 1, 1))) == pytest.approx(4.0)


# --- normalize_advantages ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_normalize_advantages_masked_moments(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    adv = torch.randn(200, generator=gen, dtype=torch.float64) * 3.0 + 5.0
    mask = (torch.rand(200, generator=gen) < 0.6).double()
    adv = adv + (1 - mask) * 1000.0  # garbage where masked
    out = normalize_advantages(adv, mask)
    kept = out[mask.bool()]
    assert float(kept.mean()) == pytest.approx(0.0, abs=1e-10)
    assert float(kept.std(unbiased=False)) == pytest.approx(1.0, abs=1e-6)
    assert torch.all(out[~mask.bool()] == 0.0)
    # The kept samples are the standardized unmasked advantages.
    raw = adv[mask.bool()]
    torch.testing.assert_close(kept, (raw - raw.mean()) / raw.std(unbiased=False), rtol=1e-6, atol=1e-6)


def test_normalize_advantages_hand_values() -> None:
    # [1, 3] -> mean 2, population std 1 -> [-1, 1]; masked sample -> 0
    out = normalize_advantages(t64(1.0, 3.0, 77.0), t64(1, 1, 0))
    torch.testing.assert_close(out, t64(-1.0, 1.0, 0.0), rtol=0, atol=1e-7)


# --- explained_variance -----------------------------------------------------------------------


def test_explained_variance_perfect_prediction() -> None:
    y = t64(1.0, 2.0, 4.0, 8.0)
    assert explained_variance(y.clone(), y, torch.ones(4)) == pytest.approx(1.0)


def test_explained_variance_predicting_the_mean_is_zero() -> None:
    y = t64(1.0, 2.0, 4.0, 8.0)
    mean_pred = torch.full((4,), float(y.mean()))
    assert explained_variance(mean_pred, y, torch.ones(4)) == pytest.approx(0.0, abs=1e-12)


def test_explained_variance_bad_predictor_is_negative() -> None:
    # y = [1, 2, 3], pred = -y: Var[y - pred] = Var[2y] = 4 Var[y] -> 1 - 4 = -3
    y = t64(1.0, 2.0, 3.0)
    assert explained_variance(-y, y, torch.ones(3)) == pytest.approx(-3.0)


def test_explained_variance_constant_target_is_nan() -> None:
    assert math.isnan(explained_variance(t64(1.0, 2.0, 3.0), t64(5.0, 5.0, 5.0), torch.ones(3)))


def test_explained_variance_respects_mask() -> None:
    y = t64(1.0, 2.0, 3.0, 100.0)
    pred = t64(1.0, 2.0, 3.0, -100.0)  # perfect on the masked-in samples
    mask = t64(1, 1, 1, 0)
    assert explained_variance(pred, y, mask) == pytest.approx(1.0)
    assert explained_variance(pred, y, torch.ones(4)) < 0.0
    # Constant on the masked-in samples -> NaN, even though the full target varies.
    assert math.isnan(explained_variance(pred, t64(5.0, 5.0, 5.0, 100.0), mask))


def test_explained_variance_nothing_masked_in_is_nan() -> None:
    assert math.isnan(explained_variance(t64(1.0, 2.0), t64(3.0, 1.0), torch.zeros(2)))


def test_explained_variance_returns_python_float() -> None:
    y = t64(1.0, 2.0, 4.0)
    assert isinstance(explained_variance(y * 0.5, y, torch.ones(3)), float)


# --- correlation (value_corr) -------------------------------------------------------------------


def test_correlation_ignores_scale_and_sign_shows() -> None:
    y = t64(1.0, 2.0, 4.0, 8.0)
    assert correlation(0.01 * y - 3.0, y, torch.ones(4)) == pytest.approx(1.0)  # tracks, far too small
    assert correlation(-y, y, torch.ones(4)) == pytest.approx(-1.0)


def test_correlation_by_hand() -> None:
    # y = [1, 2, 3], pred = [1, 3, 2]: centred [-1, 0, 1] and [-1, 1, 0]: 1 / sqrt(2 * 2) = 0.5
    assert correlation(t64(1.0, 3.0, 2.0), t64(1.0, 2.0, 3.0), torch.ones(3)) == pytest.approx(0.5)


def test_correlation_masked_and_constant_sides() -> None:
    mask = t64(1, 1, 1, 0)
    assert correlation(t64(1.0, 2.0, 3.0, -50.0), t64(2.0, 4.0, 6.0, 100.0), mask) == pytest.approx(1.0)
    assert math.isnan(correlation(t64(4.0, 4.0, 4.0), t64(1.0, 2.0, 3.0), torch.ones(3)))  # a constant critic
    assert math.isnan(correlation(t64(1.0, 2.0), t64(3.0, 1.0), torch.zeros(2)))
