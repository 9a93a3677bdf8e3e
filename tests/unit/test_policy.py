"""RunningNorm statistics and the ActorCritic's shapes, trunks and initialization."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from ppokit.classic.distributions import CategoricalHead, DiagGaussianHead, MultiCategoricalHead
from ppokit.classic.policy import ActorCritic, RunningNorm
from ppokit.config import PolicyConfig
from ppokit.errors import ConfigError

OBS_SPACE = gym.spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
BOX2 = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --- RunningNorm -----------------------------------------------------------------------------


def test_running_norm_matches_numpy_over_all_batches() -> None:
    rng = np.random.default_rng(0)
    norm = RunningNorm((3,), enabled=True)
    shift, scale = np.array([5.0, -2.0, 0.5]), np.array([2.0, 0.1, 10.0])
    # Different batch sizes, one with extra leading dims [T, N, 3] as the rollout passes them.
    shapes = [(7, 3), (1, 3), (50, 3), (2, 5, 3), (13, 3)]
    seen: list[np.ndarray] = []
    for shape in shapes:
        batch = rng.normal(size=shape) * scale + shift
        norm.update(torch.as_tensor(batch, dtype=torch.float32))
        seen.append(batch.reshape(-1, 3).astype(np.float32))
        data = np.concatenate(seen).astype(np.float64)
        # The 1e-4 pseudo-count prior (mean 0, var 1) shifts things by ~1e-5 relative at most.
        np.testing.assert_allclose(norm.mean.numpy(), data.mean(0), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(norm.var.numpy(), data.var(0), rtol=1e-3, atol=1e-4)
        assert float(norm.count) == pytest.approx(len(data), abs=1e-3)
    normalized = norm(torch.as_tensor(np.concatenate(seen)))
    assert normalized.dtype == torch.float32
    np.testing.assert_allclose(normalized.mean(0).numpy(), 0.0, atol=1e-3)
    np.testing.assert_allclose(normalized.std(0, unbiased=False).numpy(), 1.0, atol=1e-3)


def test_running_norm_forward_formula_and_clip() -> None:
    norm = RunningNorm((2,), enabled=True, clip=3.0)
    norm.update(torch.tensor([[0.0, 10.0], [2.0, 30.0]]))  # mean ~[1, 20], var ~[1, 100]
    out = norm(torch.tensor([[2.0, 0.0], [100.0, -1000.0]]))
    # (2 - 1)/1 = 1, (0 - 20)/10 = -2; then clipped to [-3, 3].
    torch.testing.assert_close(out, torch.tensor([[1.0, -2.0], [3.0, -3.0]]), rtol=0, atol=1e-3)


def test_running_norm_disabled_is_identity_and_never_updates() -> None:
    norm = RunningNorm((3,), enabled=False)
    before = {k: v.clone() for k, v in norm.state_dict().items()}
    norm.update(torch.randn(20, 3) * 50 + 7)
    for key, value in norm.state_dict().items():
        assert torch.equal(value, before[key]), key
    x = torch.randn(5, 3) * 100.0  # well beyond the clip of 10
    assert torch.equal(norm(x), x)


def test_running_norm_statistics_live_in_state_dict() -> None:
    norm = RunningNorm((2,), enabled=True)
    norm.update(torch.randn(10, 2) + 3.0)
    state = norm.state_dict()
    assert set(state) == {"mean", "var", "count"}
    fresh = RunningNorm((2,), enabled=True)
    fresh.load_state_dict(state)
    x = torch.randn(4, 2)
    torch.testing.assert_close(fresh(x), norm(x))


# --- ActorCritic: shapes ---------------------------------------------------------------------

SPACES = [
    pytest.param(gym.spaces.Discrete(3), 3, (), torch.long, CategoricalHead, id="discrete"),
    pytest.param(BOX2, 2, (2,), torch.float32, DiagGaussianHead, id="box"),
    pytest.param(gym.spaces.MultiDiscrete([3, 2]), 5, (2,), torch.long, MultiCategoricalHead, id="multi"),
]


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize(("action_space", "num_params", "action_shape", "action_dtype", "head_cls"), SPACES)
def test_actor_critic_output_shapes(
    action_space: gym.Space,
    num_params: int,
    action_shape: tuple[int, ...],
    action_dtype: torch.dtype,
    head_cls: type,
    shared: bool,
) -> None:
    policy = ActorCritic(OBS_SPACE, action_space, PolicyConfig(hidden_sizes=(16, 8), shared_trunk=shared))
    assert isinstance(policy.head, head_cls)
    b = 5
    obs = torch.randn(b, 4)
    params, value = policy(policy.normalize(obs))
    assert params.shape == (b, num_params)
    assert value.shape == (b,)
    actions = policy.act(obs)
    assert actions.shape == (b, *action_shape)
    assert actions.dtype == action_dtype
    assert policy.act(obs.numpy(), deterministic=True).shape == (b, *action_shape)
    # act() runs in inference mode; a rollout copies its actions into ordinary storage first.
    logp, ent, v = policy.evaluate(policy.normalize(obs), actions.clone())
    assert logp.shape == ent.shape == v.shape == (b,)
    assert policy.value(obs).shape == (b,)
    torch.testing.assert_close(policy.value(obs), value)


def test_actor_critic_actions_lie_in_discrete_spaces() -> None:
    space = gym.spaces.MultiDiscrete([3, 2])
    policy = ActorCritic(OBS_SPACE, space, PolicyConfig(hidden_sizes=(8,)))
    actions = policy.act(torch.randn(200, 4)).numpy()
    assert all(space.contains(a) for a in actions)


def test_actor_critic_deterministic_act_is_mode() -> None:
    policy = ActorCritic(OBS_SPACE, gym.spaces.Discrete(4), PolicyConfig(hidden_sizes=(8,)))
    obs = torch.randn(10, 4)
    params, _ = policy(policy.normalize(obs))
    assert torch.equal(policy.act(obs, deterministic=True), params.argmax(-1))


def test_actor_critic_flattens_multidimensional_box_observations() -> None:
    obs_space = gym.spaces.Box(-1.0, 1.0, shape=(2, 3), dtype=np.float32)
    policy = ActorCritic(obs_space, gym.spaces.Discrete(2), PolicyConfig(hidden_sizes=(8,)))
    assert policy.obs_shape == (2, 3)
    assert policy.value(torch.randn(7, 2, 3)).shape == (7,)
    assert policy.actor_trunk.layers[0].in_features == 6


# --- ActorCritic: trunks and init ------------------------------------------------------------


def test_shared_trunk_is_one_module() -> None:
    cfg = PolicyConfig(hidden_sizes=(16, 16), shared_trunk=True)
    policy = ActorCritic(OBS_SPACE, gym.spaces.Discrete(2), cfg)
    assert policy.actor_trunk is policy.critic_trunk
    # A value-only loss moves the actor's features too.
    policy.value(torch.randn(3, 4)).sum().backward()
    assert policy.actor_trunk.layers[0].weight.grad is not None


def test_separate_trunks_share_no_parameters() -> None:
    cfg = PolicyConfig(hidden_sizes=(16, 16), shared_trunk=False)
    policy = ActorCritic(OBS_SPACE, gym.spaces.Discrete(2), cfg)
    assert policy.actor_trunk is not policy.critic_trunk
    actor_ids = {id(p) for p in policy.actor_trunk.parameters()}
    critic_ids = {id(p) for p in policy.critic_trunk.parameters()}
    assert actor_ids.isdisjoint(critic_ids)
    # A value-only loss leaves the actor untouched.
    policy.value(torch.randn(3, 4)).sum().backward()
    assert all(p.grad is None for p in policy.actor_trunk.parameters())
    assert all(p.grad is not None for p in policy.critic_trunk.parameters())
    shared_cfg = PolicyConfig(hidden_sizes=(16, 16), shared_trunk=True)
    shared = ActorCritic(OBS_SPACE, gym.spaces.Discrete(2), shared_cfg)
    n_params = lambda m: sum(p.numel() for p in m.parameters())
    assert n_params(shared) < n_params(policy)


def _gram(w: torch.Tensor) -> torch.Tensor:
    """W W^T for wide matrices, W^T W for tall ones: gain^2 * I for a scaled orthogonal W."""
    w = w.detach().double()
    return w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w


@pytest.mark.parametrize("action_space", [gym.spaces.Discrete(3), BOX2], ids=["discrete", "box"])
def test_orthogonal_init_gains(action_space: gym.Space) -> None:
    policy = ActorCritic(OBS_SPACE, action_space, PolicyConfig(hidden_sizes=(64, 64), ortho_init=True))
    trunks = (policy.actor_trunk, policy.critic_trunk)
    hidden = [m for trunk in trunks for m in trunk.layers]
    assert len(hidden) == 4
    for layer in hidden:
        g = _gram(layer.weight)
        torch.testing.assert_close(g, 2.0 * torch.eye(g.shape[0], dtype=torch.float64), rtol=0, atol=1e-5)
    # Policy head gain 0.01: tiny logits / means at the start, so the initial policy is near uniform.
    g = _gram(policy.actor_out.weight)
    torch.testing.assert_close(g, 1e-4 * torch.eye(g.shape[0], dtype=torch.float64), rtol=0, atol=1e-8)
    assert policy.actor_out.weight.abs().max().item() <= 0.01
    # Value head gain 1: a unit-norm row.
    assert policy.critic_out.weight.norm().item() == pytest.approx(1.0, abs=1e-5)
    for layer in [*hidden, policy.actor_out, policy.critic_out]:
        assert torch.all(layer.bias == 0)


def test_without_orthogonal_init_policy_head_is_not_small() -> None:
    cfg = PolicyConfig(hidden_sizes=(64, 64), ortho_init=False)
    policy = ActorCritic(OBS_SPACE, gym.spaces.Discrete(3), cfg)
    # PyTorch's default init: U(-1/8, 1/8) per entry, a row norm around 0.58.
    assert policy.actor_out.weight.norm(dim=1).min().item() > 0.1
    assert bool(torch.any(policy.actor_out.bias != 0))


def test_initial_discrete_policy_is_near_uniform() -> None:
    policy = ActorCritic(OBS_SPACE, gym.spaces.Discrete(4), PolicyConfig())
    params, _ = policy(torch.randn(16, 4))
    probs = torch.softmax(params, -1)
    torch.testing.assert_close(probs, torch.full_like(probs, 0.25), rtol=0, atol=0.02)


# --- ActorCritic: observation space ----------------------------------------------------------


@pytest.mark.parametrize(
    "obs_space",
    [gym.spaces.Discrete(5), gym.spaces.Dict({"x": gym.spaces.Box(-1.0, 1.0, (2,), np.float32)})],
    ids=["discrete", "dict"],
)
def test_non_box_observation_space_raises_config_error(obs_space: gym.Space) -> None:
    with pytest.raises(ConfigError, match="observation_space") as info:
        ActorCritic(obs_space, gym.spaces.Discrete(2), PolicyConfig())
    assert info.value.field == "observation_space"


def test_normalization_disabled_by_default_and_enabled_on_request() -> None:
    cfg = PolicyConfig(hidden_sizes=(8,))
    off = ActorCritic(OBS_SPACE, gym.spaces.Discrete(2), cfg)
    on = ActorCritic(OBS_SPACE, gym.spaces.Discrete(2), cfg, norm_obs=True, clip_obs=5.0)
    assert not off.obs_norm.enabled
    assert on.obs_norm.enabled
    assert on.obs_norm.clip == 5.0
    x = torch.full((1, 4), 1000.0)
    assert torch.equal(off.normalize(x), x)
    assert torch.equal(on.normalize(x), torch.full((1, 4), 5.0))  # (1000 - 0) / 1, clipped at 5
    assert "obs_norm.mean" in on.state_dict()


def test_host_statistics_normalize_exactly_as_the_module() -> None:
    """The rollout normalizes with MeanVar (numpy), the update and evaluation with the module's
    forward (torch): both must give the same input, or the ratio would not start at 1."""
    rng = np.random.default_rng(1)
    norm = RunningNorm((3,), enabled=True, clip=2.0)
    stats = norm.to_host()
    for _ in range(5):
        stats.update(rng.normal(size=(4, 3)) * [3.0, 0.1, 20.0] + [1.0, -5.0, 0.0])
    norm.load_host(stats)
    x = (rng.normal(size=(16, 3)) * [3.0, 0.1, 20.0]).astype(np.float32)  # some beyond the clip
    np.testing.assert_allclose(stats.normalize(x, norm.clip), norm(torch.from_numpy(x)).numpy(), rtol=1e-6, atol=1e-6)
    assert float(norm.count) == pytest.approx(20 + 1e-4)
