"""The encoders, and the ActorCritic's shapes, encoders (trunks), parameter names and initialization."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from ppokit.classic.distributions import CategoricalHead, DiagGaussianHead, MultiCategoricalHead
from ppokit.classic.encoders import MLP, make_encoder
from ppokit.classic.policy import ActorCritic
from ppokit.config import PolicyConfig
from ppokit.errors import ConfigError

OBS_SPACE = gym.spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
BOX2 = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --- Encoders --------------------------------------------------------------------------------


def test_make_encoder_gives_an_mlp_over_flattened_box_observations() -> None:
    space = gym.spaces.Box(-1.0, 1.0, shape=(2, 3), dtype=np.float32)
    encoder = make_encoder(space, PolicyConfig(hidden_sizes=(16, 8)))
    assert isinstance(encoder, MLP)
    assert encoder.out_features == 8
    assert [layer.in_features for layer in encoder.layers] == [6, 16]
    assert encoder(torch.randn(5, 2, 3)).shape == (5, 8)


def test_mlp_forward_by_hand() -> None:
    # One relu layer with W = [[1, -1], [2, 0]], b = [0, -1]: x = [3, 1] -> relu([2, 5]) = [2, 5];
    # x = [0, 1] -> relu([-1, -1]) = [0, 0].
    mlp = MLP(2, (2,), "relu", ortho=False)
    with torch.no_grad():
        mlp.layers[0].weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 0.0]]))
        mlp.layers[0].bias.copy_(torch.tensor([0.0, -1.0]))
    torch.testing.assert_close(mlp(torch.tensor([[3.0, 1.0], [0.0, 1.0]])), torch.tensor([[2.0, 5.0], [0.0, 0.0]]))
    # Integer observations are converted to float as they are (no scaling).
    out = mlp(torch.tensor([[3, 1]], dtype=torch.uint8))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[2.0, 5.0]]))


@pytest.mark.parametrize(
    "obs_space",
    [gym.spaces.Discrete(5), gym.spaces.Dict({"x": gym.spaces.Box(-1.0, 1.0, (2,), np.float32)})],
    ids=["discrete", "dict"],
)
def test_make_encoder_refuses_spaces_it_cannot_encode(obs_space: gym.Space) -> None:
    with pytest.raises(ConfigError, match=r"observation_space: .* allowed: Box observations"):
        make_encoder(obs_space, PolicyConfig())


@pytest.mark.parametrize("shared", [False, True])
def test_parameter_names_and_order_are_those_of_saved_checkpoints(shared: bool) -> None:
    """Checkpoints hold the state_dict by name and FlatAdam's moments in parameter order: both
    must stay what the MLP-only policy had (checkpoint format 3)."""
    policy = ActorCritic(OBS_SPACE, BOX2, PolicyConfig(hidden_sizes=(8, 8), shared_trunk=shared))
    trunk = [f"{t}_trunk.layers.{i}.{p}" for t in ("actor", "critic") for i in (0, 1) for p in ("weight", "bias")]
    heads = ["actor_out.weight", "actor_out.bias", "critic_out.weight", "critic_out.bias"]
    buffers = ["obs_norm.mean", "obs_norm.var", "obs_norm.count"]
    assert list(policy.state_dict()) == [*buffers, "head.log_std", *trunk, *heads]
    own_trunk = trunk[:4] if shared else trunk
    assert [name for name, _ in policy.named_parameters()] == ["head.log_std", *own_trunk, *heads]


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
