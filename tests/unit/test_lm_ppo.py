"""Token-level PPO's targets against hand-computed values: the per-token reward with the KL
and the score on the last real token, GAE that stops at the EOS and either stops or
bootstraps at a truncation, the missing-EOS penalty, and the value head's start."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from ppokit.lm.policy import ValueHead
from ppokit.lm.ppo import ppo_targets, token_rewards
from ppokit.lm.sampling import penalize_missing_eos

# Completion 0: 3 real tokens, ended with EOS. Completion 1: 4 tokens, cut by the length limit.
MASK = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
ENDED = torch.tensor([True, False])


def test_token_rewards_put_the_score_on_the_last_real_token() -> None:
    kl = torch.tensor([[0.1, 0.2, 0.3, 9.0], [0.0, 0.0, 0.0, 0.5]])
    rewards = token_rewards(torch.tensor([1.0, 2.0]), kl, MASK, beta=0.5)
    # -0.5 * kl on real tokens (the 9.0 after the EOS is padding), + score on the last real one
    torch.testing.assert_close(rewards, torch.tensor([[-0.05, -0.1, 1.0 - 0.15, 0.0], [0.0, 0.0, 0.0, 2.0 - 0.25]]))


def test_gae_stops_at_the_eos_and_at_a_truncation_unless_told_to_bootstrap() -> None:
    rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 2.0]])
    values = torch.tensor([[0.5, 0.5, 0.5, 7.0, 7.0], [0.5, 0.5, 0.5, 0.5, 3.0]])  # V after the last: 7 and 3
    adv, ret = ppo_targets(rewards, values, MASK, ENDED, gamma=1.0, lam=1.0)
    # gamma = lambda = 1, terminal at the last real token: every return is the score
    torch.testing.assert_close(ret, torch.tensor([[1.0, 1.0, 1.0, 0.0], [2.0, 2.0, 2.0, 2.0]]))
    torch.testing.assert_close(adv, ret - values[:, :-1] * MASK)
    boot_adv, boot_ret = ppo_targets(rewards, values, MASK, ENDED, gamma=1.0, lam=1.0, bootstrap_truncated=True)
    # the ended completion is unchanged (7 after its EOS is never read); the cut one adds V after it, 3
    torch.testing.assert_close(boot_ret, torch.tensor([[1.0, 1.0, 1.0, 0.0], [5.0, 5.0, 5.0, 5.0]]))
    assert torch.equal(boot_adv[0], adv[0])


def test_gae_with_lambda_below_one_hand_value() -> None:
    # One completion of two real tokens ending with EOS: r = [0, 1], V = [0.2, 0.4], gamma 1, lambda 0.5:
    # delta_1 = 1 - 0.4 = 0.6; delta_0 = 0 + 0.4 - 0.2 = 0.2; A_1 = 0.6; A_0 = 0.2 + 0.5 * 0.6 = 0.5
    adv, ret = ppo_targets(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.2, 0.4, 9.0]]), torch.ones(1, 2),
                           torch.tensor([True]), gamma=1.0, lam=0.5)  # fmt: skip
    torch.testing.assert_close(adv, torch.tensor([[0.5, 0.6]]))
    torch.testing.assert_close(ret, torch.tensor([[0.7, 1.0]]))


def test_missing_eos_penalty_and_a_value_head_that_starts_at_zero() -> None:
    assert penalize_missing_eos(torch.tensor([1.0, 1.0]), ENDED, 0.3).tolist() == pytest.approx([1.0, 0.7])
    assert torch.equal(ValueHead(8)(torch.randn(2, 5, 8)), torch.zeros(2, 5))


def test_targets_and_values_stay_float32_under_bf16_autocast() -> None:
    head = ValueHead(8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        values = head(torch.randn(2, 5, 8, dtype=torch.bfloat16))
        advantages, returns = ppo_targets(torch.ones(2, 4, dtype=torch.bfloat16), values, MASK, ENDED, 1.0, 0.95)
    assert values.dtype == advantages.dtype == returns.dtype == torch.float32
