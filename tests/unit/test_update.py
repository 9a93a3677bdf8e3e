"""The classic update (the shared epoch loop with the method's loss) on tiny synthetic
batches, and Batch.from_rollout."""

from __future__ import annotations

import copy
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from ppokit.classic.batch import Batch
from ppokit.classic.objective import MinibatchLoss, make_minibatch_loss
from ppokit.classic.policy import ActorCritic
from ppokit.classic.rollout import Rollout
from ppokit.classic.update import Retarget, update_policy
from ppokit.config import AlgoConfig, PolicyConfig
from ppokit.core.advantages import Targets
from ppokit.core.losses import Coefs
from ppokit.core.optim import FlatAdam
from ppokit.core.update import UpdatePlan
from ppokit.methods import METHODS

OBS_DIM = 4
OBS_SPACE = gym.spaces.Box(-np.inf, np.inf, shape=(OBS_DIM,), dtype=np.float32)
ACTION_SPACES = {
    "discrete": gym.spaces.Discrete(3),
    "box": gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32),
}
METRIC_KEYS = {
    "approx_kl_final",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "approx_kl_k1",
    "clip_fraction",
    "grad_norm",
    "loss",
    "minibatch_steps",
    "kl_early_stop",
    "value_step",
}


def make_policy(kind: str = "discrete", seed: int = 0) -> ActorCritic:
    torch.manual_seed(seed)
    return ActorCritic(OBS_SPACE, ACTION_SPACES[kind], PolicyConfig(hidden_sizes=(16, 16)))


def make_batch(policy: ActorCritic, size: int = 16, seed: int = 0) -> Batch:
    """A batch as the behaviour policy would have produced it: the ratio starts at 1."""
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(size, OBS_DIM, generator=gen)
    torch.manual_seed(seed)
    with torch.no_grad():
        params, values = policy(obs)
        actions = policy.head.sample(params)
        logprobs = policy.head.log_prob(params, actions)
    advantages = torch.randn(size, generator=gen)
    return Batch(
        obs=obs,
        actions=actions,
        logprobs=logprobs,
        values=values,
        advantages=advantages,
        returns=values + advantages,
        mask=torch.ones(size),
        ref_logprobs=logprobs.clone(),
    )


def ppo_update(
    policy: ActorCritic,
    optimizer: FlatAdam,
    batch: Batch,
    algo: AlgoConfig,
    coefs: Coefs,
    epochs: int,
    minibatch_size: int,
    generator: torch.Generator,
    retarget: Retarget | None = None,
    loss_fn: MinibatchLoss | None = None,
) -> dict[str, float]:
    """One update with ``algo``'s method, as the trainer runs it."""
    plan = UpdatePlan(epochs, minibatch_size, algo.max_grad_norm, algo.target_kl)
    loss_fn = loss_fn or make_minibatch_loss(METHODS[algo.method], algo)
    return update_policy(policy, optimizer, batch, loss_fn=loss_fn, coefs=coefs, plan=plan, generator=generator,
                         retarget=retarget)  # fmt: skip


def run_update(
    policy: ActorCritic, batch: Batch, algo: AlgoConfig, lr: float = 1e-2, seed: int = 0
) -> dict[str, float]:
    optimizer = FlatAdam(policy, lr=lr, eps=algo.adam_eps)
    coefs = Coefs(algo.ent_coef, algo.clip_coef, algo.clip_coef)
    generator = torch.Generator().manual_seed(seed)
    return ppo_update(policy, optimizer, batch, algo, coefs, algo.update_epochs, algo.minibatch_size, generator)


def flat_params(policy: ActorCritic) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in policy.parameters()])


# --- metrics and step counts -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["discrete", "box"])
def test_ppo_update_returns_every_metric(kind: str) -> None:
    policy = make_policy(kind)
    before = flat_params(policy)
    metrics = run_update(policy, make_batch(policy), AlgoConfig(update_epochs=2, minibatch_size=4))
    assert set(metrics) == METRIC_KEYS
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert metrics["kl_early_stop"] == 0.0
    assert metrics["grad_norm"] > 0.0
    assert 0.0 <= metrics["clip_fraction"] <= 1.0
    assert metrics["approx_kl"] >= 0.0
    assert metrics["approx_kl_final"] > 0.0  # the policy moved
    assert not torch.equal(flat_params(policy), before)


@pytest.mark.parametrize(
    ("size", "minibatch_size", "epochs"),
    [(16, 4, 3), (16, 8, 1), (16, 16, 4), (12, 3, 2)],
)
def test_minibatch_steps_without_target_kl(size: int, minibatch_size: int, epochs: int) -> None:
    policy = make_policy()
    algo = AlgoConfig(update_epochs=epochs, minibatch_size=minibatch_size, target_kl=None)
    metrics = run_update(policy, make_batch(policy, size), algo)
    assert metrics["minibatch_steps"] == epochs * (size // minibatch_size)
    assert metrics["kl_early_stop"] == 0.0


def test_first_minibatch_starts_at_ratio_one() -> None:
    """One step on one full-batch minibatch: the diagnostics are those of the first evaluation."""
    policy = make_policy()
    metrics = run_update(policy, make_batch(policy), AlgoConfig(update_epochs=1, minibatch_size=16))
    assert metrics["minibatch_steps"] == 1.0
    assert metrics["approx_kl"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["approx_kl_k1"] == pytest.approx(0.0, abs=1e-5)
    assert metrics["clip_fraction"] == 0.0


def test_target_kl_tiny_stops_early() -> None:
    policy = make_policy()
    algo = AlgoConfig(update_epochs=4, minibatch_size=4, target_kl=1e-12)
    metrics = run_update(policy, make_batch(policy), algo)
    assert metrics["kl_early_stop"] == 1.0
    assert 1.0 <= metrics["minibatch_steps"] < 4 * 4
    assert all(math.isfinite(v) for v in metrics.values())


def test_target_kl_large_does_not_stop() -> None:
    policy = make_policy()
    algo = AlgoConfig(update_epochs=4, minibatch_size=4, target_kl=1e3)
    metrics = run_update(policy, make_batch(policy), algo)
    assert metrics["kl_early_stop"] == 0.0
    assert metrics["minibatch_steps"] == 16.0


def test_target_kl_stops_before_the_offending_step() -> None:
    """A batch whose behaviour policy differs already: the first check stops with no step taken."""
    policy = make_policy()
    batch = make_batch(policy)
    batch.logprobs = batch.logprobs - 0.5  # ratio e^0.5: k3 = e^0.5 - 1 - 0.5 ~ 0.149 > 0.01
    before = flat_params(policy)
    metrics = run_update(policy, batch, AlgoConfig(update_epochs=3, minibatch_size=4, target_kl=0.01))
    assert metrics["kl_early_stop"] == 1.0
    assert metrics["minibatch_steps"] == 0.0
    assert torch.equal(flat_params(policy), before)
    assert all(math.isfinite(v) for v in metrics.values())


# --- masking ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["discrete", "box"])
@pytest.mark.parametrize("norm_adv", [True, False])
def test_masked_samples_do_not_influence_the_update(kind: str, norm_adv: bool) -> None:
    base = make_policy(kind)
    clean = make_batch(base, size=16)
    mask = torch.tensor([1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 0, 1, 1], dtype=torch.float32)
    m = mask.bool()
    clean.mask = mask
    zeros = copy.deepcopy(clean)
    for name in ("obs", "actions", "logprobs", "values", "advantages", "returns"):
        getattr(zeros, name)[~m] = 0
    garbage = copy.deepcopy(clean)
    gen = torch.Generator().manual_seed(99)
    k = int((~m).sum())
    garbage.obs[~m] = torch.randn(k, OBS_DIM, generator=gen) * 50.0
    if kind == "discrete":
        garbage.actions[~m] = torch.randint(0, 3, (k,), generator=gen)
    else:
        garbage.actions[~m] = torch.randn(k, 2, generator=gen) * 20.0
    garbage.logprobs[~m] = torch.randn(k, generator=gen) * 3.0
    garbage.values[~m] = torch.randn(k, generator=gen) * 100.0
    garbage.advantages[~m] = torch.randn(k, generator=gen) * 100.0
    garbage.returns[~m] = torch.randn(k, generator=gen) * 100.0

    algo = AlgoConfig(update_epochs=2, minibatch_size=4, norm_adv=norm_adv, clip_vloss=True)
    results = {}
    for name, batch in (("zeros", zeros), ("garbage", garbage)):
        policy = copy.deepcopy(base)
        metrics = run_update(policy, batch, algo)
        results[name] = (flat_params(policy), metrics)
    torch.testing.assert_close(results["garbage"][0], results["zeros"][0], rtol=1e-5, atol=1e-6)
    for key in METRIC_KEYS:
        assert results["garbage"][1][key] == pytest.approx(results["zeros"][1][key], rel=1e-4, abs=1e-6), key
    assert not torch.allclose(results["zeros"][0], flat_params(base))  # the update did move

    # Control: the same change to one *unmasked* sample does change the update.
    control = copy.deepcopy(zeros)
    control.advantages[0] += 100.0
    control.returns[0] += 100.0
    policy = copy.deepcopy(base)
    run_update(policy, control, algo)
    assert not torch.allclose(flat_params(policy), results["zeros"][0], rtol=1e-5, atol=1e-6)


def test_ppo_update_is_deterministic_given_the_generator() -> None:
    base = make_policy()
    batch = make_batch(base)
    algo = AlgoConfig(update_epochs=2, minibatch_size=4)
    a, b, c = (copy.deepcopy(base) for _ in range(3))
    run_update(a, batch, algo, seed=5)
    run_update(b, batch, algo, seed=5)
    run_update(c, batch, algo, seed=6)
    assert torch.equal(flat_params(a), flat_params(b))
    assert not torch.equal(flat_params(a), flat_params(c))  # a different minibatch order


# --- Batch.from_rollout ----------------------------------------------------------------------


def test_batch_from_rollout_flattens_time_major_and_masks_advantages() -> None:
    t, n = 3, 2
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    valid = torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    rollout = Rollout(
        obs=torch.arange(t * n * OBS_DIM, dtype=torch.float32).reshape(t, n, OBS_DIM),
        actions=torch.tensor([[0, 1], [2, 0], [1, 2]]),
        logprobs=torch.full((t, n), -1.0),
        values=values,
        rewards=torch.zeros(t, n),
        terminated=torch.zeros(t, n),
        truncated=torch.zeros(t, n),
        valid=valid,
        next_value=torch.zeros(n),
    )
    adv = torch.tensor([[0.5, -0.5], [9.0, 1.5], [2.0, 7.0]])
    reference = make_policy("discrete")
    batch = Batch.from_rollout(rollout, Targets(adv, adv + values, valid), reference)
    assert len(batch) == 6
    # Row t * N + n is step t of env n.
    assert batch.actions.tolist() == [0, 1, 2, 0, 1, 2]
    assert torch.equal(batch.obs[3], rollout.obs[1, 1])
    assert batch.mask.tolist() == [1.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    assert batch.advantages.tolist() == [0.5, -0.5, 0.0, 1.5, 2.0, 0.0]  # zero on autoreset steps
    # returns = A + V: 0.5 + 1, -0.5 + 2, 9 + 3, 1.5 + 4, 2 + 5, 7 + 6
    assert batch.returns.tolist() == [1.5, 1.5, 12.0, 5.5, 7.0, 13.0]
    expected_ref, _, _ = reference.evaluate(batch.obs, batch.actions)
    assert torch.allclose(batch.ref_logprobs, expected_ref)  # under the frozen reference policy


# --- methods ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["reinforce", "grpo"])
def test_critic_free_methods_leave_the_critic_untouched(method: str) -> None:
    policy = make_policy("discrete")
    critic_before = [p.detach().clone() for p in policy.critic_out.parameters()]
    metrics = run_update(policy, make_batch(policy), AlgoConfig(method=method, update_epochs=2, minibatch_size=8))
    assert "value_loss" not in metrics  # no critic, no value loss: not logged
    assert all(torch.equal(a, b) for a, b in zip(critic_before, policy.critic_out.parameters(), strict=True))


def test_ppo_kl_loss_is_used_for_ppo_kl() -> None:
    policy = make_policy("discrete")
    batch = make_batch(policy)
    metrics = run_update(policy, batch, AlgoConfig(method="ppo-kl", update_epochs=3, minibatch_size=8))
    assert "clip_fraction" not in metrics  # the KL-penalty objective does not clip: not logged
    assert metrics["approx_kl_final"] > 0.0


def test_reference_penalty_pulls_towards_the_initial_policy() -> None:
    algo = AlgoConfig(update_epochs=10, minibatch_size=16, norm_adv=False)
    free, anchored = make_policy("discrete"), make_policy("discrete")
    batch = make_batch(free)
    optimizer = FlatAdam(free, lr=5e-2, eps=1e-8)
    gen = torch.Generator().manual_seed(0)
    ppo_update(free, optimizer, batch, algo, Coefs(0.0, 0.2, 0.2, ref_kl=0.0), 10, 16, gen)
    optimizer = FlatAdam(anchored, lr=5e-2, eps=1e-8)
    gen = torch.Generator().manual_seed(0)
    ppo_update(anchored, optimizer, batch, algo, Coefs(0.0, 0.2, 0.2, ref_kl=50.0), 10, 16, gen)

    def kl_to_ref(policy: ActorCritic) -> float:
        assert batch.ref_logprobs is not None
        with torch.no_grad():
            logp, _, _ = policy.evaluate(batch.obs, batch.actions)
        return float(((batch.ref_logprobs - logp).exp() - (batch.ref_logprobs - logp) - 1).mean())

    assert kl_to_ref(anchored) < kl_to_ref(free)


# --- recomputed advantages -------------------------------------------------------------------


def run_update_retargeted(
    policy: ActorCritic, batch: Batch, algo: AlgoConfig, retarget: object, seed: int = 0
) -> dict[str, float]:
    optimizer = FlatAdam(policy, lr=1e-2, eps=algo.adam_eps)
    generator = torch.Generator().manual_seed(seed)
    coefs = Coefs(algo.ent_coef, algo.clip_coef, algo.clip_coef)
    return ppo_update(policy, optimizer, batch, algo, coefs, algo.update_epochs, algo.minibatch_size,
                      generator, retarget=retarget)  # type: ignore[arg-type]  # a test double  # fmt: skip


@pytest.mark.parametrize("epochs", [1, 3])
def test_retarget_runs_before_every_epoch_after_the_first(epochs: int) -> None:
    policy = make_policy()
    batch = make_batch(policy)
    weights_seen: list[torch.Tensor] = []

    def retarget(p: ActorCritic) -> tuple[torch.Tensor, torch.Tensor]:
        weights_seen.append(flat_params(p).clone())
        return batch.advantages, batch.returns

    before = flat_params(policy).clone()
    metrics = run_update_retargeted(policy, batch, AlgoConfig(update_epochs=epochs, minibatch_size=8), retarget)
    assert metrics["minibatch_steps"] == 2 * epochs
    assert len(weights_seen) == epochs - 1
    for seen in weights_seen:  # called with the critic as trained so far, not the behaviour one
        assert not torch.equal(seen, before)


def test_retargeted_advantages_and_returns_are_the_ones_trained_on() -> None:
    base = make_policy("box")
    batch = make_batch(base)
    algo = AlgoConfig(update_epochs=3, minibatch_size=4)
    plain, same, other = (copy.deepcopy(base) for _ in range(3))
    run_update(plain, batch, algo)
    run_update_retargeted(same, batch, algo, lambda p: (batch.advantages, batch.returns))
    assert torch.equal(flat_params(plain), flat_params(same))  # unchanged targets: the same update
    flipped = (-batch.advantages, batch.returns + 5.0)
    run_update_retargeted(other, batch, algo, lambda p: flipped)
    assert not torch.allclose(flat_params(plain), flat_params(other))


def test_value_step_by_hand_and_a_frozen_critic_reads_zero() -> None:
    from ppokit.classic.objective import value_step

    # new - old = [1, 2]: RMS sqrt(5 / 2); targets [0, 2]: population std 1.
    step = value_step(torch.tensor([1.0, 2.0]), torch.zeros(2), torch.tensor([0.0, 2.0]), torch.ones(2))
    assert step == pytest.approx(math.sqrt(2.5))
    assert math.isnan(value_step(torch.ones(2), torch.zeros(2), torch.full((2,), 3.0), torch.ones(2)))
    # vf_coef 0 with separate trunks: the critic's parameters get no gradient, its values stay put.
    frozen = run_update(make_policy(), make_batch(make_policy()), AlgoConfig(vf_coef=0.0, update_epochs=2))
    learning = run_update(make_policy(), make_batch(make_policy()), AlgoConfig(update_epochs=2))
    assert frozen["value_step"] < 1e-6 < 1e-3 < learning["value_step"]
