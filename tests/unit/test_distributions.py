"""Action heads against ``torch.distributions`` and against their own sampling statistics."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Normal

from ppokit.classic.distributions import CategoricalHead, DiagGaussianHead, MultiCategoricalHead, make_head
from ppokit.errors import ConfigError

BATCH = 32


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --- log_prob and entropy against torch.distributions ----------------------------------------


@pytest.mark.parametrize("n", [2, 5])
def test_categorical_log_prob_and_entropy(n: int) -> None:
    head = CategoricalHead(n)
    logits = torch.randn(BATCH, n) * 2.0
    actions = torch.randint(0, n, (BATCH,))
    ref = Categorical(logits=logits)
    torch.testing.assert_close(head.log_prob(logits, actions), ref.log_prob(actions))
    torch.testing.assert_close(head.entropy(logits), ref.entropy())
    assert head.log_prob(logits, actions).shape == (BATCH,)
    assert head.num_params == n
    assert head.action_shape == ()
    assert head.action_dtype == torch.long


def test_categorical_log_prob_accepts_float_actions() -> None:
    """Actions can come back from storage as floats; they are indices all the same."""
    head = CategoricalHead(4)
    logits = torch.randn(BATCH, 4)
    actions = torch.randint(0, 4, (BATCH,))
    torch.testing.assert_close(head.log_prob(logits, actions.float()), head.log_prob(logits, actions))


@pytest.mark.parametrize("nvec", [[3], [3, 2, 4], [2, 2]])
def test_multicategorical_log_prob_and_entropy(nvec: list[int]) -> None:
    head = MultiCategoricalHead(nvec)
    logits = torch.randn(BATCH, sum(nvec)) * 2.0
    actions = torch.stack([torch.randint(0, n, (BATCH,)) for n in nvec], dim=-1)
    parts = [Categorical(logits=lg) for lg in torch.split(logits, nvec, dim=-1)]
    ref_logp = sum(d.log_prob(actions[:, i]) for i, d in enumerate(parts))
    ref_ent = sum(d.entropy() for d in parts)
    torch.testing.assert_close(head.log_prob(logits, actions), ref_logp)
    torch.testing.assert_close(head.entropy(logits), ref_ent)
    assert head.num_params == sum(nvec)
    assert head.action_shape == (len(nvec),)


@pytest.mark.parametrize("dim", [1, 3])
def test_diag_gaussian_log_prob_and_entropy(dim: int) -> None:
    head = DiagGaussianHead(dim, init_log_std=-0.5)
    with torch.no_grad():
        head.log_std.copy_(torch.randn(dim) * 0.5)  # state-independent, different per dim
    mean = torch.randn(BATCH, dim)
    actions = mean + torch.randn(BATCH, dim) * 1.5
    ref = Normal(mean, head.log_std.exp().expand_as(mean))
    torch.testing.assert_close(head.log_prob(mean, actions), ref.log_prob(actions).sum(-1))
    torch.testing.assert_close(head.entropy(mean), ref.entropy().sum(-1))
    assert head.entropy(mean).shape == (BATCH,)
    assert head.action_shape == (dim,)


def test_diag_gaussian_entropy_does_not_depend_on_the_mean() -> None:
    head = DiagGaussianHead(2, init_log_std=0.3)
    # sum_i [log sigma_i + (1 + log 2 pi) / 2] = 2 * (0.3 + 1.4189385) = 3.437877
    ent = head.entropy(torch.randn(5, 2) * 10.0)
    torch.testing.assert_close(ent, torch.full((5,), 3.437877), rtol=0, atol=1e-5)


def test_diag_gaussian_log_std_is_a_trainable_parameter() -> None:
    head = DiagGaussianHead(3, init_log_std=-1.0)
    assert any(p is head.log_std for p in head.parameters())
    torch.testing.assert_close(head.log_std.detach(), torch.full((3,), -1.0))
    mean = torch.zeros(4, 3)
    head.log_prob(mean, torch.ones(4, 3)).sum().backward()
    assert head.log_std.grad is not None
    assert torch.all(head.log_std.grad != 0)


# --- sampling ---------------------------------------------------------------------------------


def test_categorical_sampling_frequencies_match_softmax() -> None:
    head = CategoricalHead(4)
    logits = torch.tensor([0.5, -1.0, 2.0, 0.0])
    n = 200_000
    samples = head.sample(logits.expand(n, 4))
    assert samples.shape == (n,)
    assert samples.dtype == torch.long
    freq = torch.bincount(samples, minlength=4).double() / n
    # The largest standard error is sqrt(0.25 / 2e5) ~ 0.0011; allow ~5 of them.
    torch.testing.assert_close(freq, torch.softmax(logits.double(), -1), rtol=0, atol=0.006)


def test_categorical_sampling_respects_near_zero_probabilities() -> None:
    head = CategoricalHead(3)
    logits = torch.tensor([[0.0, -50.0, 0.0]]).expand(20_000, 3)
    samples = head.sample(logits)
    assert not torch.any(samples == 1)
    assert set(samples.unique().tolist()) == {0, 2}


def test_multicategorical_sampling_marginals() -> None:
    head = MultiCategoricalHead([2, 3])
    logits = torch.tensor([1.0, -1.0, 0.0, 1.0, -2.0])
    n = 100_000
    samples = head.sample(logits.expand(n, 5))
    assert samples.shape == (n, 2)
    for i, (lo, hi) in enumerate([(0, 2), (2, 5)]):
        freq = torch.bincount(samples[:, i], minlength=hi - lo).double() / n
        torch.testing.assert_close(freq, torch.softmax(logits[lo:hi].double(), -1), rtol=0, atol=0.008)


def test_diag_gaussian_sample_mean_and_std() -> None:
    head = DiagGaussianHead(2)
    with torch.no_grad():
        head.log_std.copy_(torch.tensor([-1.0, 0.5]))
    mean = torch.tensor([3.0, -2.0])
    n = 100_000
    samples = head.sample(mean.expand(n, 2))
    assert samples.shape == (n, 2)
    # Standard error of the mean: std / sqrt(n) <= 1.65 / 316 ~ 0.005.
    torch.testing.assert_close(samples.mean(0), mean, rtol=0, atol=0.03)
    torch.testing.assert_close(samples.std(0), torch.tensor([-1.0, 0.5]).exp(), rtol=0.02, atol=0)


def test_sampling_is_reproducible_with_a_seed() -> None:
    head = CategoricalHead(6)
    logits = torch.randn(100, 6)
    torch.manual_seed(123)
    a = head.sample(logits)
    torch.manual_seed(123)
    b = head.sample(logits)
    assert torch.equal(a, b)


# --- mode -------------------------------------------------------------------------------------


def test_categorical_mode_is_argmax() -> None:
    head = CategoricalHead(3)
    logits = torch.tensor([[0.1, 2.0, -1.0], [5.0, 0.0, 4.9], [-3.0, -2.0, -1.0]])
    assert head.mode(logits).tolist() == [1, 0, 2]


def test_multicategorical_mode_is_argmax_per_component() -> None:
    head = MultiCategoricalHead([2, 3])
    logits = torch.tensor([[0.0, 1.0, 3.0, 2.0, 1.0], [1.0, 0.0, -1.0, 0.0, 7.0]])
    assert head.mode(logits).tolist() == [[1, 0], [0, 2]]


def test_diag_gaussian_mode_is_the_mean() -> None:
    head = DiagGaussianHead(3, init_log_std=1.0)
    mean = torch.randn(4, 3)
    assert torch.equal(head.mode(mean), mean)


# --- make_head --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("space", "cls", "num_params"),
    [
        (gym.spaces.Discrete(4), CategoricalHead, 4),
        (gym.spaces.MultiDiscrete([3, 2, 5]), MultiCategoricalHead, 10),
        (gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32), DiagGaussianHead, 3),
    ],
)
def test_make_head_supported_spaces(space: gym.Space, cls: type, num_params: int) -> None:
    head = make_head(space)
    assert isinstance(head, cls)
    assert head.num_params == num_params


def test_make_head_passes_init_log_std() -> None:
    head = make_head(gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32), init_log_std=-0.7)
    assert isinstance(head, DiagGaussianHead)
    torch.testing.assert_close(head.log_std.detach(), torch.full((2,), -0.7))


@pytest.mark.parametrize(
    "space",
    [
        gym.spaces.Dict({"a": gym.spaces.Discrete(2)}),
        gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(3))),
        gym.spaces.Box(-1.0, 1.0, shape=(2, 3), dtype=np.float32),
        gym.spaces.MultiDiscrete(np.array([[2, 3], [4, 5]])),
        gym.spaces.MultiBinary(3),
    ],
    ids=["dict", "tuple", "box-2d", "multidiscrete-2d", "multibinary"],
)
def test_make_head_unsupported_space_raises_config_error(space: gym.Space) -> None:
    with pytest.raises(ConfigError, match="action_space") as info:
        make_head(space)
    assert info.value.field == "action_space"
