"""GAE and ``Rollout.next_values`` against hand-computed numbers (time-major ``[T, N]``)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from ppokit.classic.rollout import Rollout
from ppokit.core.advantages import gae, vtrace

# gamma = lambda = 0.5 keeps every hand computation exact in binary floating point.
GAMMA, LAM = 0.5, 0.5  # gamma * lambda = 0.25


def col(*xs: float) -> Tensor:
    """A ``[T, 1]`` float64 column."""
    return torch.tensor(xs, dtype=torch.float64).unsqueeze(1)


def two_envs(a: Tensor, b: Tensor) -> Tensor:
    return torch.cat([a, b], dim=1)


def make_rollout(
    values: Tensor, next_value: Tensor, rewards: Tensor, term: Tensor, trunc: Tensor, valid: Tensor
) -> Rollout:
    t, n = values.shape
    return Rollout(
        obs=torch.zeros(t, n, 1),
        actions=torch.zeros(t, n, dtype=torch.long),
        logprobs=torch.zeros(t, n),
        values=values,
        rewards=rewards,
        terminated=term,
        truncated=trunc,
        valid=valid,
        next_value=next_value,
    )


# --- Rollout.next_values ---------------------------------------------------------------------


def test_next_values_shifts_values_and_appends_next_value() -> None:
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])  # [T=3, N=2]
    next_value = torch.tensor([10.0, 20.0])
    zeros = torch.zeros(3, 2)
    r = make_rollout(values, next_value, zeros, zeros, zeros, torch.ones(3, 2))
    expected = torch.tensor([[3.0, 4.0], [5.0, 6.0], [10.0, 20.0]])
    assert r.next_values.shape == (3, 2)
    assert torch.equal(r.next_values, expected)


def test_next_values_single_step_is_next_value() -> None:
    values = torch.tensor([[1.0, 2.0]])
    next_value = torch.tensor([7.0, 8.0])
    zeros = torch.zeros(1, 2)
    r = make_rollout(values, next_value, zeros, zeros, zeros, torch.ones(1, 2))
    assert torch.equal(r.next_values, torch.tensor([[7.0, 8.0]]))


# --- (a), (b): a termination or a truncation in the middle ----------------------------------

# T = 4. Env 0 ends its episode at t = 1 (terminated or truncated); env 1 has no boundary.
REWARDS = col(1.0, 2.0, 3.0, 4.0)
VALUES = col(0.5, 1.0, 2.0, 4.0)
NEXT_VALUES = col(1.0, 2.0, 4.0, 2.0)  # values[t + 1], then next_value = 2.0
NO_FLAG = col(0.0, 0.0, 0.0, 0.0)
FLAG_AT_1 = col(0.0, 1.0, 0.0, 0.0)

# Env 1 (no boundary):
#   d0 = 1 + 0.5*1 - 0.5 = 1.0   d1 = 2 + 0.5*2 - 1 = 2.0
#   d2 = 3 + 0.5*4 - 2 = 3.0     d3 = 4 + 0.5*2 - 4 = 1.0
#   A3 = 1.0;  A2 = 3 + 0.25*1 = 3.25;  A1 = 2 + 0.25*3.25 = 2.8125;  A0 = 1 + 0.25*2.8125 = 1.703125
NO_BOUNDARY = col(1.703125, 2.8125, 3.25, 1.0)

# Terminated at t = 1: no bootstrap, d1 = 2 + 0 - 1 = 1.0; recursion cut at t = 1:
#   A3 = 1.0;  A2 = 3.25;  A1 = d1 = 1.0;  A0 = 1 + 0.25*1.0 = 1.25
TERMINATED_EXPECTED = col(1.25, 1.0, 3.25, 1.0)
# Truncated at t = 1: bootstraps from V(final obs) = values[2] = 2, d1 = 2 + 0.5*2 - 1 = 2.0; recursion cut:
#   A3 = 1.0;  A2 = 3.25;  A1 = d1 = 2.0;  A0 = 1 + 0.25*2.0 = 1.5
TRUNCATED_EXPECTED = col(1.5, 2.0, 3.25, 1.0)


@pytest.mark.parametrize(
    ("terminated", "expected"),
    [(FLAG_AT_1, TERMINATED_EXPECTED), (NO_FLAG, TRUNCATED_EXPECTED)],
    ids=["terminated", "truncated"],
)
def test_gae_episode_end_in_the_middle(terminated: Tensor, expected: Tensor) -> None:
    rewards, values, next_values = (two_envs(x, x) for x in (REWARDS, VALUES, NEXT_VALUES))
    term = two_envs(terminated, NO_FLAG)
    dones = two_envs(FLAG_AT_1, NO_FLAG)
    adv = gae(rewards, values, next_values, term, dones, GAMMA, LAM)
    assert adv.shape == (4, 2)
    torch.testing.assert_close(adv, two_envs(expected, NO_BOUNDARY), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("terminated", "bootstraps"), [(FLAG_AT_1, False), (NO_FLAG, True)])
def test_gae_last_step_bootstraps_only_when_truncated(terminated: Tensor, bootstraps: bool) -> None:
    """Raising V(final obs) (next_values[1]) by 1 moves A1 by gamma for truncation, 0 for termination."""
    base = gae(REWARDS, VALUES, NEXT_VALUES, terminated, FLAG_AT_1, GAMMA, LAM)
    bumped_next = NEXT_VALUES.clone()
    bumped_next[1] += 1.0
    bumped = gae(REWARDS, VALUES, bumped_next, terminated, FLAG_AT_1, GAMMA, LAM)
    shift = bumped - base
    torch.testing.assert_close(shift[1:], col(0.5 if bootstraps else 0.0, 0.0, 0.0), rtol=0, atol=1e-12)
    # A0 sees the change only through gamma*lambda*A1.
    assert float(shift[0, 0]) == pytest.approx(0.125 if bootstraps else 0.0)


# --- (c): an autoreset step inside the rollout ---------------------------------------------

# T = 6: episode 1 is t = 0..2 (ends at t = 2), t = 3 is the autoreset step (reward 0, valid 0, its
# stored obs is episode 1's final obs so values[3] = V(final obs)), episode 2 starts at t = 4.
AR_VALUES = col(1.0, 2.0, 4.0, 6.0, 2.0, 1.0)
AR_NEXT_VALUE = torch.tensor([2.0], dtype=torch.float64)
AR_REWARDS = col(1.0, 1.0, 2.0, 0.0, 3.0, 1.0)
AR_VALID = col(1.0, 1.0, 1.0, 0.0, 1.0, 1.0)
AR_END = col(0.0, 0.0, 1.0, 0.0, 0.0, 0.0)
AR_NONE = col(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
# next_values = [2, 4, 6, 2, 1, 2]
#   d0 = 1 + 0.5*2 - 1 = 1     d1 = 1 + 0.5*4 - 2 = 1
#   d2 (truncated)  = 2 + 0.5*6 - 4 = 1     d2 (terminated) = 2 - 4 = -2
#   d3 = 0 + 0.5*2 - 6 = -5 (autoreset step, masked out later)
#   d4 = 3 + 0.5*1 - 2 = 1.5   d5 = 1 + 0.5*2 - 1 = 1
#   A5 = 1;  A4 = 1.5 + 0.25*1 = 1.75;  A3 = -5 + 0.25*1.75 = -4.5625;  A2 = d2 (done cuts the recursion)
#   truncated:  A1 = 1 + 0.25*1 = 1.25;     A0 = 1 + 0.25*1.25 = 1.3125
#   terminated: A1 = 1 + 0.25*(-2) = 0.5;   A0 = 1 + 0.25*0.5 = 1.125
AR_EXPECTED = {
    "truncated": col(1.3125, 1.25, 1.0, -4.5625, 1.75, 1.0),
    "terminated": col(1.125, 0.5, -2.0, -4.5625, 1.75, 1.0),
}


def _autoreset_gae(kind: str, rewards: Tensor, values: Tensor, next_value: Tensor) -> Tensor:
    term = AR_END if kind == "terminated" else AR_NONE
    trunc = AR_END if kind == "truncated" else AR_NONE
    r = make_rollout(values, next_value, rewards, term, trunc, AR_VALID)
    dones = torch.logical_or(r.terminated.bool(), r.truncated.bool()).double()
    return gae(r.rewards, r.values, r.next_values, r.terminated, dones, GAMMA, LAM)


@pytest.mark.parametrize("kind", ["truncated", "terminated"])
def test_gae_autoreset_boundary_hand_values(kind: str) -> None:
    adv = _autoreset_gae(kind, AR_REWARDS, AR_VALUES, AR_NEXT_VALUE)
    torch.testing.assert_close(adv, AR_EXPECTED[kind], rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["truncated", "terminated"])
def test_gae_autoreset_boundary_isolates_episodes(kind: str) -> None:
    base = _autoreset_gae(kind, AR_REWARDS, AR_VALUES, AR_NEXT_VALUE)

    # Anything after the boundary: rewards from the autoreset step on, values of the new episode,
    # next_value; for a termination also V(final obs), which must not be bootstrapped from.
    rewards, values = AR_REWARDS.clone(), AR_VALUES.clone()
    rewards[3:] += torch.tensor([[7.0], [-3.0], [11.0]], dtype=torch.float64)
    first_changed = 3 if kind == "terminated" else 4
    values[first_changed:] += 5.0
    after = _autoreset_gae(kind, rewards, values, AR_NEXT_VALUE + 9.0)
    assert torch.equal(after[:3], base[:3])
    assert not torch.allclose(after[3:], base[3:])  # the perturbation did reach the later steps

    # Anything before the boundary does not reach the autoreset step or the new episode.
    rewards, values = AR_REWARDS.clone(), AR_VALUES.clone()
    rewards[:3] -= 4.0
    values[:3] *= 3.0
    before = _autoreset_gae(kind, rewards, values, AR_NEXT_VALUE)
    assert torch.equal(before[3:], base[3:])
    assert not torch.allclose(before[:3], base[:3])


# --- (d): lambda = 1 and lambda = 0 ---------------------------------------------------------


def test_gae_lambda_one_is_monte_carlo_return_minus_value() -> None:
    # Terminates at t = 3. gamma = 0.5:
    #   G3 = 4;  G2 = 3 + 0.5*4 = 5;  G1 = 2 + 0.5*5 = 4.5;  G0 = 1 + 0.5*4.5 = 3.25
    #   A = G - V = [3.25 - 0.5, 4.5 - 1, 5 - 2, 4 - 4] = [2.75, 3.5, 3.0, 0.0]
    term = col(0.0, 0.0, 0.0, 1.0)
    next_values = col(1.0, 2.0, 4.0, 100.0)  # the value after a termination is never used
    adv = gae(REWARDS, VALUES, next_values, term, term, GAMMA, 1.0)
    torch.testing.assert_close(adv, col(2.75, 3.5, 3.0, 0.0), rtol=0, atol=1e-12)


def test_gae_lambda_one_matches_direct_discounted_sum_with_mid_termination() -> None:
    gen = torch.Generator().manual_seed(0)
    t_len, gamma = 7, 0.75  # exactly representable, so this checks semantics, not precision
    rewards = torch.randn(t_len, 3, generator=gen, dtype=torch.float64)
    values = torch.randn(t_len, 3, generator=gen, dtype=torch.float64)
    next_values = torch.cat([values[1:], torch.randn(1, 3, generator=gen, dtype=torch.float64)])
    term = torch.zeros(t_len, 3, dtype=torch.float64)
    term[2, 0] = 1.0  # env 0 terminates at t = 2 and at t = 6
    term[6, 0] = 1.0
    term[6, 1] = 1.0  # env 1 terminates at the last step; env 2 never (bootstraps from next_value)
    adv = gae(rewards, values, next_values, term, term, gamma, 1.0)
    # Direct (non-recursive) return: sum_k gamma^k r_{t+k} up to the episode end, plus the
    # discounted bootstrap at the rollout end when the episode is still running.
    for n in range(3):
        for t in range(t_len):
            ret, k = 0.0, 0
            while True:
                ret += gamma**k * float(rewards[t + k, n])
                if term[t + k, n] == 1.0:
                    break
                if t + k == t_len - 1:
                    ret += gamma ** (k + 1) * float(next_values[t + k, n])
                    break
                k += 1
            assert float(adv[t, n]) == pytest.approx(ret - float(values[t, n]), abs=1e-10)


def test_gae_lambda_zero_is_one_step_td_error() -> None:
    # Hand: with the termination at t = 1 of case (a), the TD errors are d = [1.0, 1.0, 3.0, 1.0].
    adv = gae(REWARDS, VALUES, NEXT_VALUES, FLAG_AT_1, FLAG_AT_1, GAMMA, 0.0)
    torch.testing.assert_close(adv, col(1.0, 1.0, 3.0, 1.0), rtol=0, atol=1e-12)
    # And with the truncation: d1 = 2 + 0.5*2 - 1 = 2.0
    adv = gae(REWARDS, VALUES, NEXT_VALUES, NO_FLAG, FLAG_AT_1, GAMMA, 0.0)
    torch.testing.assert_close(adv, col(1.0, 2.0, 3.0, 1.0), rtol=0, atol=1e-12)


def test_gae_lambda_zero_random_inputs() -> None:
    gen = torch.Generator().manual_seed(1)
    shape = (6, 4)
    rewards, values, next_values = (torch.randn(shape, generator=gen) for _ in range(3))
    term = (torch.rand(shape, generator=gen) < 0.2).float()
    dones = torch.clamp(term + (torch.rand(shape, generator=gen) < 0.2).float(), max=1.0)
    adv = gae(rewards, values, next_values, term, dones, 0.97, 0.0)
    torch.testing.assert_close(adv, rewards + 0.97 * (1 - term) * next_values - values)


@pytest.mark.parametrize("gamma", [0.99, 0.9])
def test_gae_float64_inputs_keep_float64_precision(gamma: float) -> None:
    """One non-terminal step, r = 0, V(s) = 0, V(s') = 1: A = delta = gamma, exactly in float64."""
    one, zero = torch.ones(1, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64)
    adv = gae(zero, zero, one, zero, zero, gamma, 0.95)
    assert adv.dtype == torch.float64
    assert float(adv[0, 0]) == pytest.approx(gamma, rel=0, abs=1e-12)


def test_gae_accepts_bool_flags() -> None:
    adv_float = gae(REWARDS, VALUES, NEXT_VALUES, FLAG_AT_1, FLAG_AT_1, GAMMA, LAM)
    flags = FLAG_AT_1.bool()
    adv_bool = gae(REWARDS, VALUES, NEXT_VALUES, flags, flags, GAMMA, LAM)
    torch.testing.assert_close(adv_bool, adv_float)


# --- (e): shapes -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["rewards", "values", "next_values", "terminated", "dones"])
def test_gae_shape_mismatch_raises(bad: str) -> None:
    args = {name: torch.zeros(5, 3) for name in ("rewards", "values", "next_values", "terminated", "dones")}
    args[bad] = torch.zeros(5, 2)
    with pytest.raises(ValueError, match="shapes differ"):
        gae(**args, gamma=0.99, gae_lambda=0.95)


def test_gae_transposed_input_raises() -> None:
    x = torch.zeros(5, 3)
    with pytest.raises(ValueError):
        gae(x, x, x, x, x.T, 0.99, 0.95)


def test_vtrace_against_hand_computed_values_with_truncated_ratios() -> None:
    # One env, 3 steps, gamma 0.9, lambda 1, ratios pi/mu = 2, 0.5, 1 truncated at 1: rho = c = 1, 0.5, 1.
    # delta = rho * (r + 0.9 V(next) - V):   1.4,  0.5 * (0.18 - 1) = -0.41,  2 + 0.36 - 0.2 = 2.16
    # v - V = delta + 0.9 c (v' - V'):       2.16;  -0.41 + 0.45 * 2.16 = 0.562;  1.4 + 0.9 * 0.562 = 1.9058
    # A = rho * (r + 0.9 v(next) - V):       1 + 0.9 * 1.562 - 0.5 = 1.9058;  0.5 * (0.9 * 2.36 - 1) = 0.562;  2.16
    values, next_values = col(0.5, 1.0, 0.2), col(1.0, 0.2, 0.4)
    zeros = torch.zeros_like(values)
    log_rhos = torch.log(col(2.0, 0.5, 1.0))
    adv, targets = vtrace(col(1.0, 0.0, 2.0), values, next_values, zeros, zeros, log_rhos, gamma=0.9)
    torch.testing.assert_close(targets, col(2.4058, 1.562, 2.36))
    torch.testing.assert_close(adv, col(1.9058, 0.562, 2.16))
    # A looser truncation lets the first ratio, 2, through: delta_0 and A_0 double, the rest is unchanged.
    adv2, targets2 = vtrace(col(1.0, 0.0, 2.0), values, next_values, zeros, zeros, log_rhos, 0.9, rho_clip=2.0)
    torch.testing.assert_close(adv2[0], 2.0 * adv[0])
    torch.testing.assert_close(targets2[1:], targets[1:])


def test_vtrace_on_policy_is_gae() -> None:
    """pi = mu: the targets are GAE(lambda)'s returns; with lambda 1 the advantages are GAE(1)'s,
    across terminations (no bootstrap) and truncations (bootstrap from the final observation's value)."""
    gen = torch.Generator().manual_seed(0)
    t, n = 7, 3
    rewards, values, next_values = (torch.randn(t, n, generator=gen, dtype=torch.float64) for _ in range(3))
    terminated = torch.zeros(t, n, dtype=torch.float64)
    truncated = torch.zeros(t, n, dtype=torch.float64)
    terminated[2, 0], truncated[4, 1], terminated[1, 2], truncated[5, 2] = 1.0, 1.0, 1.0, 1.0
    dones = torch.maximum(terminated, truncated)
    on_policy = torch.zeros(t, n, dtype=torch.float64)
    for lam in (0.95, 1.0):
        expected = gae(rewards, values, next_values, terminated, dones, 0.99, lam)
        adv, targets = vtrace(rewards, values, next_values, terminated, dones, on_policy, 0.99, lam)
        torch.testing.assert_close(targets, expected + values)
        if lam == 1.0:
            torch.testing.assert_close(adv, expected)
    with pytest.raises(ValueError, match="vtrace: shapes differ"):
        vtrace(rewards, values, next_values, terminated, dones, on_policy[:1], 0.99)
