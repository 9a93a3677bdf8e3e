"""KL estimators and exact KLs against hand-computed values, and their gradient semantics."""

from __future__ import annotations

import math

import pytest
import torch

from ppokit.core import kl


def test_estimators_hand_values() -> None:
    # log r = log 2: k1 = -log 2, k2 = (log 2)^2 / 2, k3 = (2 - 1) - log 2
    lr = torch.tensor([math.log(2.0)], dtype=torch.float64)
    assert float(kl.k1(lr)) == pytest.approx(-math.log(2.0), abs=1e-12)
    assert float(kl.k2(lr)) == pytest.approx(math.log(2.0) ** 2 / 2, abs=1e-12)
    assert float(kl.k3(lr)) == pytest.approx(1.0 - math.log(2.0), abs=1e-12)
    assert float(kl.k3(lr, lr.exp())) == float(kl.k3(lr))  # a given ratio is the same ratio


def test_k3_zero_only_at_ratio_one_and_never_negative() -> None:
    lr = torch.tensor([-3.0, -0.5, -1e-3, 0.0, 1e-3, 0.5, 3.0], dtype=torch.float64)
    values = kl.k3(lr)
    assert torch.all(values >= 0)
    assert values.tolist()[3] == 0.0 and all(v > 0 for i, v in enumerate(values.tolist()) if i != 3)


def _enumerated(p: torch.Tensor, q: torch.Tensor, estimator: str) -> float:
    """E_{x~q}[k(log p(x)/q(x))], exactly, over an enumerable distribution."""
    log_ratio = p.log() - q.log()
    return float((q * getattr(kl, estimator)(log_ratio)).sum())


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_unbiased_estimators_average_to_the_exact_kl(estimator: str) -> None:
    q = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)  # the sampling distribution
    p = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    exact = float((q * (q / p).log()).sum())  # KL(q || p)
    assert _enumerated(p, q, estimator) == pytest.approx(exact, rel=1e-12)


def test_k2_is_biased_but_close_for_close_distributions() -> None:
    q = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    p = torch.tensor([0.49, 0.31, 0.2], dtype=torch.float64)
    exact = float((q * (q / p).log()).sum())
    assert _enumerated(p, q, "k2") != pytest.approx(exact, rel=1e-9)
    assert _enumerated(p, q, "k2") == pytest.approx(exact, rel=0.05)


def _penalty_gradient(estimator: str, logits: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """d/dlogits of E_{a~pi}[k(log pi_ref(a) - log pi(a))] with the samples held fixed:
    the sampling weights pi(a) are constants, only log pi(a) inside k is differentiated."""
    logits = logits.clone().requires_grad_(True)
    logp = torch.log_softmax(logits, -1)
    weights = logp.exp().detach()
    loss = (weights * getattr(kl, estimator)(ref - logp)).sum()
    (grad,) = torch.autograd.grad(loss, logits)
    return grad


def _true_gradient(kind: str, logits: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    logits = logits.clone().requires_grad_(True)
    logp = torch.log_softmax(logits, -1)
    reverse = (logp.exp() * (logp - ref)).sum()  # KL(pi || pi_ref)
    forward = (ref.exp() * (ref - logp)).sum()  # KL(pi_ref || pi)
    value = reverse if kind == "reverse" else forward
    (grad,) = torch.autograd.grad(value, logits)
    return grad


def test_gradient_semantics_stated_in_the_docstring() -> None:
    """k1 as a loss: zero gradient; k2: the reverse KL's gradient; k3: the forward KL's."""
    logits = torch.tensor([0.3, -1.2, 0.8], dtype=torch.float64)
    ref = torch.log_softmax(torch.tensor([1.0, 0.0, -0.5], dtype=torch.float64), -1)
    torch.testing.assert_close(_penalty_gradient("k1", logits, ref), torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(_penalty_gradient("k2", logits, ref), _true_gradient("reverse", logits, ref))
    torch.testing.assert_close(_penalty_gradient("k3", logits, ref), _true_gradient("forward", logits, ref))
    assert not torch.allclose(_true_gradient("reverse", logits, ref), _true_gradient("forward", logits, ref))


def test_exact_categorical_kl_hand_value() -> None:
    p = torch.tensor([0.5, 0.5]).log()
    q = torch.tensor([0.25, 0.75]).log()
    # 0.5 log(0.5/0.25) + 0.5 log(0.5/0.75) = 0.5 log 2 + 0.5 log(2/3)
    expected = 0.5 * math.log(2.0) + 0.5 * math.log(2.0 / 3.0)
    assert float(kl.categorical_kl(p, q)) == pytest.approx(expected, rel=1e-6)
    assert float(kl.categorical_kl(p, p)) == pytest.approx(0.0, abs=1e-7)


def test_exact_gaussian_kl_hand_value() -> None:
    # 1-D: N(0, 1) || N(1, 2): log 2 + (1 + 1) / (2 * 4) - 1/2 = log 2 - 0.25
    zero = torch.zeros(1, dtype=torch.float64)
    value = kl.diag_gaussian_kl(zero, zero, zero + 1.0, zero + math.log(2.0))
    assert float(value) == pytest.approx(math.log(2.0) - 0.25, abs=1e-12)


def test_proportional_kl_controller_hand_values() -> None:
    """Ziegler et al. 2019: beta * (1 + clip(KL/target - 1, -0.2, 0.2) * n / horizon)."""
    assert kl.adapt_kl_coef_proportional(0.1, 0.12, 0.1, 100, 1000) == pytest.approx(0.1 * (1 + 0.2 * 0.1))
    assert kl.adapt_kl_coef_proportional(0.1, 0.5, 0.1, 100, 1000) == pytest.approx(0.1 * 1.02)  # error clipped at 0.2
    assert kl.adapt_kl_coef_proportional(0.1, 0.0, 0.1, 1000, 1000) == pytest.approx(0.08)  # -0.2 over a horizon
    assert kl.adapt_kl_coef_proportional(0.1, 0.1, 0.1, 100, 1000) == pytest.approx(0.1)  # on target: unchanged
