"""The per-element losses' new forms: asymmetric and dual clipping, the plain policy
gradient, value loss per element; group advantages with every scale and RLOO; the
advantage estimators of the method table."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from ppokit.core import advantages as adv
from ppokit.core import losses
from ppokit.core.advantages import AdvantageSettings, Trajectories


def t64(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)


def test_clip_higher_lets_positive_advantages_rise_further() -> None:
    # r = 1.25, A = 1: symmetric eps 0.2 caps at 1.2; eps_high 0.28 lets 1.25 through
    logp = t64(math.log(1.25))
    sym = losses.clipped_surrogate(logp, t64(0.0), t64(1.0), 0.2, 0.2)
    high = losses.clipped_surrogate(logp, t64(0.0), t64(1.0), 0.2, 0.28)
    assert float(sym.objective) == pytest.approx(1.2) and float(high.objective) == pytest.approx(1.25)
    assert sym.clipped is not None and high.clipped is not None
    assert float(sym.clipped) == 1.0 and float(high.clipped) == 0.0
    # Below: r = 0.75 with eps_low 0.2 is clipped on both (the low side is unchanged).
    low = losses.clipped_surrogate(t64(math.log(0.75)), t64(0.0), t64(-1.0), 0.2, 0.28)
    assert float(low.objective) == pytest.approx(-0.8) and low.clipped is not None and float(low.clipped) == 1.0


def test_dual_clip_bounds_the_loss_of_negative_advantages() -> None:
    # r = 5, A = -1: PPO's objective min(-5, -1.2) = -5; dual clip c = 3 bounds it at -3 (no gradient there)
    logp = t64(math.log(5.0)).requires_grad_(True)
    plain = losses.clipped_surrogate(logp, t64(0.0), t64(-1.0), 0.2, 0.2)
    dual = losses.clipped_surrogate(logp, t64(0.0), t64(-1.0), 0.2, 0.2, dual_clip=3.0)
    assert float(plain.objective.detach()) == pytest.approx(-5.0)
    assert float(dual.objective.detach()) == pytest.approx(-3.0)
    (grad,) = torch.autograd.grad(dual.objective.sum(), logp)
    assert float(grad) == 0.0
    # A positive advantage is untouched by the dual clip.
    pos = losses.clipped_surrogate(logp, t64(0.0), t64(1.0), 0.2, 0.2, dual_clip=3.0)
    assert float(pos.objective.detach()) == pytest.approx(1.2)


def test_policy_gradient_is_ratio_times_advantage_and_never_clips() -> None:
    terms = losses.policy_gradient(t64(math.log(2.0), 0.0), t64(0.0, 0.0), t64(3.0, -1.0))
    assert terms.objective.tolist() == pytest.approx([6.0, -1.0])
    assert terms.clipped is None


def test_value_loss_is_per_element() -> None:
    # 0.5 (V - R)^2 per element: 0.5, 2
    assert losses.value_loss(t64(1.0, 2.0), t64(0.0, 0.0), t64(0.0, 4.0), None).tolist() == [0.5, 2.0]


def test_policy_diagnostics_name_clip_fraction_only_for_clipping_losses() -> None:
    mask = torch.ones(2, dtype=torch.float64)
    clipped = losses.clipped_surrogate(t64(0.5, 0.0), t64(0.0, 0.0), t64(1.0, 1.0), 0.2, 0.2)
    assert set(losses.policy_diagnostics(clipped, mask)) == {"approx_kl", "approx_kl_k1", "clip_fraction"}
    plain = losses.policy_gradient(t64(0.5, 0.0), t64(0.0, 0.0), t64(1.0, 1.0))
    assert set(losses.policy_diagnostics(plain, mask)) == {"approx_kl", "approx_kl_k1"}


def test_clip_fractions_low_and_high_sum_to_the_clip_fraction() -> None:
    # ratios e^-0.5 = 0.61 (below 1 - 0.2), 1, e^0.1 = 1.105 (inside 1 + 0.28), e^0.5 = 1.65 (above); one masked out
    logp = t64(-0.5, 0.0, 0.1, 0.5, 0.5)
    terms = losses.clipped_surrogate(logp, torch.zeros(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64),
                                     0.2, 0.28)  # fmt: skip
    mask = t64(1.0, 1.0, 1.0, 1.0, 0.0)
    got = {k: float(v) for k, v in losses.policy_diagnostics(terms, mask, clip_range=(0.2, 0.28)).items()}
    assert got["clip_fraction_low"] == 0.25 and got["clip_fraction_high"] == 0.25 and got["clip_fraction"] == 0.5


# --- group advantages ------------------------------------------------------------------------


def test_group_scale_batch_divides_by_the_std_over_all_returns() -> None:
    returns = torch.tensor([[1.0, 3.0], [10.0, 10.0]])
    # centred per group: [-1, 1], [0, 0]; std over all four returns: values 1, 3, 10, 10 -> mean 6
    std = math.sqrt(((1 - 6) ** 2 + (3 - 6) ** 2 + 16 + 16) / 4)
    out = adv.group_relative_advantages(returns, scale="batch")
    torch.testing.assert_close(out, torch.tensor([[-1 / std, 1 / std], [0.0, 0.0]]))


def test_unknown_group_scale_is_refused() -> None:
    with pytest.raises(ValueError, match="allowed: group, batch, none"):
        adv.group_relative_advantages(torch.zeros(1, 2), scale="max")  # type: ignore[arg-type]  # under test


def test_rloo_subtracts_the_mean_of_the_others() -> None:
    returns = torch.tensor([[1.0, 2.0, 6.0]])
    # 1 - (2 + 6)/2 = -3; 2 - (1 + 6)/2 = -1.5; 6 - (1 + 2)/2 = 4.5
    assert adv.rloo_advantages(returns).tolist() == [[-3.0, -1.5, 4.5]]
    # = G/(G-1) (R - mean): 3/2 * (R - 3)
    torch.testing.assert_close(adv.rloo_advantages(returns), 1.5 * (returns - 3.0))


# --- the method table's estimators -----------------------------------------------------------


def _traj(**overrides: torch.Tensor) -> Trajectories:
    t, n = 3, 2
    values: dict[str, torch.Tensor | None] = {
        "rewards": torch.ones(t, n), "values": torch.zeros(t, n), "next_values": torch.zeros(t, n),
        "terminated": torch.zeros(t, n), "truncated": torch.zeros(t, n), "valid": torch.ones(t, n),
    }  # fmt: skip
    values.update(overrides)
    return Trajectories(**values)  # type: ignore[arg-type]  # the tensors above


def test_gae_targets_are_the_lambda_returns() -> None:
    next_values = torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.0, 0.0]])  # V(s_T) = 0
    traj = _traj(values=torch.full((3, 2), 0.5), next_values=next_values)
    targets = adv.gae_targets(traj, AdvantageSettings(gamma=1.0, gae_lambda=1.0))
    # gamma = lambda = 1: A_t + V_t is the sum of the rewards to go, 3, 2, 1
    assert targets.returns[:, 0].tolist() == pytest.approx([3.0, 2.0, 1.0])
    assert torch.equal(targets.mask, traj.valid)


def test_return_targets_mask_unfinished_tails_and_subtract_the_mean() -> None:
    terminated = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    targets = adv.return_targets(_traj(terminated=terminated), AdvantageSettings(gamma=1.0, gae_lambda=1.0))
    # env 0 ends at t=1: returns 2, 1 complete; t=2 and env 1 are unfinished
    assert targets.mask.tolist() == [[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]
    assert targets.advantages[0, 0] == pytest.approx(0.5) and targets.advantages[1, 0] == pytest.approx(-0.5)


Estimator = Callable[[Trajectories, AdvantageSettings], adv.Targets]


@pytest.mark.parametrize("fn", [adv.group_targets, adv.rloo_targets])
def test_group_estimators_give_every_step_its_episode_advantage(
    fn: Callable[[Trajectories, AdvantageSettings], adv.Targets],
) -> None:
    traj = _traj(episode_returns=torch.tensor([1.0, 3.0]))
    targets = fn(traj, AdvantageSettings(gamma=1.0, gae_lambda=1.0, group_size=2, group_scale="none"))
    assert torch.equal(targets.advantages[:, 0], targets.advantages[:1, 0].expand(3))
    assert float(targets.advantages[0, 0]) < 0 < float(targets.advantages[0, 1])
    with pytest.raises(ValueError, match="episode_returns"):
        fn(_traj(), AdvantageSettings(gamma=1.0, gae_lambda=1.0, group_size=2))
