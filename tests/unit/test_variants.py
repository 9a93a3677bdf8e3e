"""The variants' math against hand-computed values: beta and clip rules, group advantages,
Monte-Carlo returns, the KL-penalty objective and the k3 reference KL."""

from __future__ import annotations

import math

import pytest
import torch

from ppokit.core import losses
from ppokit.core.advantages import discounted_returns, group_relative_advantages
from ppokit.core.kl import adapt_clip_coef, adapt_kl_coef
from ppokit.core.reduce import masked_mean


@pytest.mark.parametrize(
    ("kl", "expected"),
    [(0.001, 0.5), (0.0066, 0.5), (0.0067, 1.0), (0.01, 1.0), (0.015, 1.0), (0.0151, 2.0), (0.5, 2.0)],
)
def test_beta_rule_of_the_ppo_paper(kl: float, expected: float) -> None:
    # target 0.01: halve below 0.01 / 1.5 = 0.00667, double above 0.015.
    assert adapt_kl_coef(1.0, kl, 0.01) == expected


@pytest.mark.parametrize(
    ("eps", "kl", "expected"),
    [(0.2, 0.02, 0.2 / 1.5), (0.2, 0.001, 0.3), (0.2, 0.01, 0.2), (0.06, 0.1, 0.05), (0.1, 0.001, 0.15)],
)
def test_adaptive_clip_rule_within_bounds(eps: float, kl: float, expected: float) -> None:
    assert adapt_clip_coef(eps, kl, target=0.01, low=0.05, high=0.3) == pytest.approx(expected)


def test_group_advantages_have_zero_mean_per_group() -> None:
    returns = torch.tensor([[1.0, 2.0, 3.0, 6.0], [10.0, 10.0, 0.0, 0.0]])
    adv = group_relative_advantages(returns)
    assert torch.allclose(adv.mean(dim=1), torch.zeros(2), atol=1e-6)
    # Group 1: mean 3, population std sqrt((4 + 1 + 0 + 9) / 4) = sqrt(3.5).
    assert adv[0].tolist() == pytest.approx([-2 / math.sqrt(3.5), -1 / math.sqrt(3.5), 0.0, 3 / math.sqrt(3.5)])
    assert adv[1].tolist() == pytest.approx([1.0, 1.0, -1.0, -1.0])  # mean 5, std 5


def test_dr_grpo_drops_the_std() -> None:
    returns = torch.tensor([[1.0, 2.0, 3.0, 6.0]])
    assert group_relative_advantages(returns, scale="none").tolist() == [[-2.0, -1.0, 0.0, 3.0]]


def test_group_with_equal_returns_gets_zero_advantages() -> None:
    assert torch.equal(group_relative_advantages(torch.full((1, 4), 7.0)), torch.zeros(1, 4))


@pytest.mark.parametrize("shape", [(4,), (3, 1)])
def test_group_advantages_need_groups_of_two(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="G >= 2"):
        group_relative_advantages(torch.zeros(shape))


def test_discounted_returns_cut_at_episode_ends_and_flag_unfinished_tails() -> None:
    # One env, gamma 0.5: an episode ending at t=1, then a tail t=2..3 that does not end.
    rewards = torch.tensor([[1.0], [2.0], [4.0], [8.0]])
    dones = torch.tensor([[0.0], [1.0], [0.0], [0.0]])
    returns, complete = discounted_returns(rewards, dones, gamma=0.5)
    # G_1 = 2, G_0 = 1 + 0.5 * 2 = 2; the tail: G_3 = 8, G_2 = 4 + 0.5 * 8 = 8 (cut at T).
    assert returns[:, 0].tolist() == [2.0, 2.0, 8.0, 8.0]
    assert complete[:, 0].tolist() == [1.0, 1.0, 0.0, 0.0]


def test_kl_penalty_objective_value_and_gradient() -> None:
    logp_old = torch.log(torch.tensor([0.5, 0.25]))
    logp = torch.log(torch.tensor([0.6, 0.2])).requires_grad_(True)
    adv = torch.tensor([1.0, -2.0])
    mask = torch.ones(2)
    terms = losses.kl_penalty_surrogate(logp, logp_old, adv, beta=2.0)
    loss, diag = -masked_mean(terms.objective, mask), losses.policy_diagnostics(terms, mask)
    assert "clip_fraction" not in diag  # the KL penalty never clips
    r = torch.tensor([1.2, 0.8])
    k3 = (r - 1) - torch.log(r)
    expected = -((r * adv - 2.0 * k3).mean())
    assert float(loss.detach()) == pytest.approx(float(expected))
    assert float(diag["approx_kl"]) == pytest.approx(float(k3.mean()))
    loss.backward()  # type: ignore[no-untyped-call]
    # d/dlogp of -(r A - beta ((r - 1) - log r)) / n = -(r A - beta (r - 1)) / n
    assert logp.grad is not None
    assert logp.grad.tolist() == pytest.approx((-(r * adv - 2.0 * (r - 1)) / 2).tolist())


def test_k3_reference_kl_is_nonnegative_and_matches_exact_kl_on_an_enumerable_distribution() -> None:
    p = torch.tensor([0.5, 0.3, 0.2])  # pi
    q = torch.tensor([0.2, 0.5, 0.3])  # pi_ref
    exact = float((p * (p / q).log()).sum())  # KL(pi || pi_ref)
    # Expectation under pi, enumerated exactly: weights p over the three actions.
    logp, logq = p.log(), q.log()
    per_action = (logq - logp).exp() - (logq - logp) - 1.0
    assert torch.all(per_action >= 0)
    assert float((p * per_action).sum()) == pytest.approx(exact, rel=1e-6)
    # reference_kl is the masked sample mean of the same per-action terms.
    samples = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 2, 2])  # frequencies 0.5, 0.3, 0.2
    per_sample = losses.reference_kl(logp[samples], logq[samples])
    assert float(masked_mean(per_sample, torch.ones(10))) == pytest.approx(exact, rel=1e-5)


def test_exact_kl_of_each_head_matches_torch_distributions() -> None:
    from torch.distributions import Categorical, Normal, kl_divergence

    from ppokit.classic.distributions import CategoricalHead, DiagGaussianHead, MultiCategoricalHead

    gen = torch.Generator().manual_seed(0)
    p, q = torch.randn(5, 4, generator=gen), torch.randn(5, 4, generator=gen)
    expected = kl_divergence(Categorical(logits=p), Categorical(logits=q))
    assert torch.allclose(CategoricalHead(4).kl(p, CategoricalHead(4), q), expected, atol=1e-6)

    multi = MultiCategoricalHead([2, 2])
    expected = kl_divergence(Categorical(logits=p[:, :2]), Categorical(logits=q[:, :2])) + kl_divergence(
        Categorical(logits=p[:, 2:]), Categorical(logits=q[:, 2:])
    )
    assert torch.allclose(multi.kl(p, multi, q), expected, atol=1e-6)

    head_p, head_q = DiagGaussianHead(4, init_log_std=-0.3), DiagGaussianHead(4, init_log_std=0.4)
    expected = kl_divergence(Normal(p, head_p.log_std.exp()), Normal(q, head_q.log_std.exp())).sum(-1)
    assert torch.allclose(head_p.kl(p, head_q, q), expected, atol=1e-5)
    assert torch.allclose(head_p.kl(p, head_p, p), torch.zeros(5), atol=1e-6)  # KL(p || p) = 0
