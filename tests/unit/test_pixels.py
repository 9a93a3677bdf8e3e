"""Pixels: the CNN encoders (shapes, layouts, scaling, choice from the space), raw storage of
uint8 and bool observations, and the learner's view of a game (sign rewards, episodic life)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from ppokit.classic.encoders import CNN, MLP, ImageShape, encoder_name, make_encoder
from ppokit.classic.envs import VecEnv, make_vec_env, obs_dtype
from ppokit.classic.games import EpisodicLife
from ppokit.classic.policy import ActorCritic
from ppokit.classic.rollout import Rollout, storage_line
from ppokit.classic.stepping import learner_view
from ppokit.config import EnvConfig, PolicyConfig
from ppokit.errors import ConfigError
from ppokit.presets import PRESETS, preset_for

ATARI = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)  # ale-py's stacked frames, channels first
MINATAR = gym.spaces.Box(0.0, 1.0, (10, 10, 4), bool)  # MinAtar Breakout's grid, channels last


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --- Encoders --------------------------------------------------------------------------------


def test_nature_cnn_has_the_layers_of_mnih_et_al() -> None:
    cnn = make_encoder(ATARI, PolicyConfig())
    assert isinstance(cnn, CNN) and encoder_name(ATARI, PolicyConfig()) == "nature-cnn"
    convs = [m for m in cnn.convs if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (4, 32, (8, 8), (4, 4)),
        (32, 64, (4, 4), (2, 2)),
        (64, 64, (3, 3), (1, 1)),
    ]
    assert cnn.linear.in_features == 64 * 7 * 7 and cnn.out_features == 512  # 84 -> 20 -> 9 -> 7
    assert cnn(torch.zeros(3, 4, 84, 84, dtype=torch.uint8)).shape == (3, 512)


def test_small_cnn_for_minatar_grids() -> None:
    cnn = make_encoder(MINATAR, PolicyConfig())
    assert isinstance(cnn, CNN) and encoder_name(MINATAR, PolicyConfig()) == "small-cnn"
    assert cnn.image == ImageShape(channels=4, height=10, width=10, channels_last=True, scale=1.0)
    assert cnn.linear.in_features == 16 * 8 * 8 and cnn.out_features == 128
    assert cnn(torch.zeros(2, 10, 10, 4, dtype=torch.bool)).shape == (2, 128)


def test_cnn_scales_uint8_pixels_to_unit_range_inside_the_network() -> None:
    """The forward on raw uint8 frames is the convolutions on frames / 255, computed by hand."""
    cnn = make_encoder(gym.spaces.Box(0, 255, (2, 5, 5), np.uint8), PolicyConfig(encoder="small-cnn"))
    assert isinstance(cnn, CNN)
    frames = torch.randint(0, 256, (3, 2, 5, 5), dtype=torch.uint8)
    conv = cnn.convs[0]
    x = torch.relu(F.conv2d(frames.float() / 255.0, conv.weight, conv.bias)).flatten(1)
    expected = torch.relu(F.linear(x, cnn.linear.weight, cnn.linear.bias))
    torch.testing.assert_close(cnn(frames), expected)


def test_hwc_and_chw_layouts_give_the_same_features() -> None:
    """The same weights on the same image stored channels last and channels first."""
    hwc = make_encoder(gym.spaces.Box(0, 255, (12, 12, 3), np.uint8), PolicyConfig(encoder="small-cnn"))
    chw = make_encoder(gym.spaces.Box(0, 255, (3, 12, 12), np.uint8), PolicyConfig(encoder="small-cnn"))
    assert isinstance(hwc, CNN) and isinstance(chw, CNN)
    assert hwc.image.channels_last and not chw.image.channels_last
    chw.load_state_dict(hwc.state_dict())
    images = torch.randint(0, 256, (4, 3, 12, 12), dtype=torch.uint8)
    torch.testing.assert_close(hwc(images.permute(0, 2, 3, 1)), chw(images))


@pytest.mark.parametrize(
    ("shape", "layout", "expected"),
    [
        ((4, 84, 84), "auto", (4, 84, 84, False)),  # stacked Atari frames
        ((84, 84, 4), "auto", (4, 84, 84, True)),
        ((10, 10, 10), "auto", (10, 10, 10, True)),  # MinAtar Seaquest: channels last, as Gymnasium's images
        ((210, 160, 3), "auto", (3, 210, 160, True)),  # a raw Atari screen
        ((10, 10, 4), "chw", (10, 10, 4, False)),  # the override wins
        ((3, 64, 64), "hwc", (64, 3, 64, True)),
        ((84, 84), "auto", (1, 84, 84, True)),  # one grayscale frame
    ],
)
def test_image_layout(shape: tuple[int, ...], layout: str, expected: tuple[int, int, int, bool]) -> None:
    image = ImageShape.of(gym.spaces.Box(0, 255, shape, np.uint8), layout)
    assert (image.channels, image.height, image.width, image.channels_last) == expected


def test_one_grayscale_frame_gets_one_channel() -> None:
    cnn = make_encoder(gym.spaces.Box(0, 255, (40, 40), np.uint8), PolicyConfig())
    assert isinstance(cnn, CNN) and cnn.image.channels == 1
    assert cnn(torch.zeros(2, 40, 40, dtype=torch.uint8)).shape == (2, 512)


def test_auto_keeps_the_mlp_for_vectors_and_float_images() -> None:
    assert isinstance(make_encoder(gym.spaces.Box(-1.0, 1.0, (4,), np.float32), PolicyConfig()), MLP)
    assert isinstance(make_encoder(gym.spaces.Box(0.0, 1.0, (3, 40, 40), np.float32), PolicyConfig()), MLP)
    assert isinstance(make_encoder(MINATAR, PolicyConfig(encoder="mlp")), MLP)  # the override wins


def test_images_too_small_for_the_nature_cnn_are_refused_with_the_sizes() -> None:
    with pytest.raises(ConfigError) as e:
        make_encoder(MINATAR, PolicyConfig(encoder="nature-cnn"))
    assert e.value.field == "encoder"
    assert "at least 36x36; got 10x10" in str(e.value) and "allowed: small-cnn, mlp" in str(e.value)
    with pytest.raises(ConfigError, match="needs image observations"):
        make_encoder(gym.spaces.Box(0, 255, (16,), np.uint8), PolicyConfig(encoder="small-cnn"))
    with pytest.raises(ConfigError, match="at least 3x3; got 2x2"):
        make_encoder(gym.spaces.Box(0, 255, (2, 2), np.uint8), PolicyConfig(encoder="small-cnn"))


def test_shared_cnn_trunk_is_one_module_for_actor_and_critic() -> None:
    policy = ActorCritic(ATARI, gym.spaces.Discrete(6), PolicyConfig(shared_trunk=True))
    assert policy.actor_trunk is policy.critic_trunk
    params, value = policy(torch.zeros(5, 4, 84, 84, dtype=torch.uint8))
    assert params.shape == (5, 6) and value.shape == (5,)


# --- Storage: raw frames, no float copies ------------------------------------------------------


@pytest.mark.parametrize(
    ("space", "dtype", "bytes_each"), [(ATARI, torch.uint8, 4 * 84 * 84), (MINATAR, torch.bool, 400)]
)
def test_rollout_stores_frames_raw(space: gym.spaces.Box, dtype: torch.dtype, bytes_each: int) -> None:
    """One byte per pixel (a quarter of float32's four), and the policy sees them unconverted."""
    policy = ActorCritic(space, gym.spaces.Discrete(3), PolicyConfig())
    vec = VecEnv(env=None, obs_space=space, action_space=gym.spaces.Discrete(3), num_envs=2)  # type: ignore[arg-type]
    buf = Rollout.allocate(8, vec, policy, torch.device("cpu"))
    assert obs_dtype(space) == dtype and buf.obs.dtype == dtype
    assert buf.obs.element_size() * buf.obs[0, 0].numel() == bytes_each
    frames = torch.ones(2, *space.shape, dtype=dtype)
    assert policy.normalize(frames) is frames


def test_running_normalization_of_bool_grids_is_refused() -> None:
    with pytest.raises(ConfigError, match="norm_obs: got true for bool observations"):
        ActorCritic(MINATAR, gym.spaces.Discrete(3), PolicyConfig(), norm_obs=True)


# --- The learner's view of a game ------------------------------------------------------------


class _Lives(gym.vector.VectorEnv):
    """Two envs replaying a script of (lives, terminated) per step, to test EpisodicLife."""

    def __init__(self, script: list[tuple[list[int], list[bool]]]) -> None:
        self.num_envs, self.script, self.t = 2, script, 0
        self.single_observation_space = gym.spaces.Box(0, 255, (2,), np.uint8)
        self.single_action_space = gym.spaces.Discrete(2)

    def reset(self, **kwargs: object) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return np.zeros((2, 2), np.uint8), {"lives": np.array([3, 3])}

    def step(self, actions: object) -> tuple[np.ndarray, ...]:  # type: ignore[override]
        lives, terminated = self.script[self.t]
        self.t += 1
        return (
            np.zeros((2, 2), np.uint8),
            np.ones(2),
            np.array(terminated),
            np.zeros(2, bool),
            {"lives": np.array(lives)},
        )


def test_episodic_life_marks_lost_lives_but_not_game_ends_or_new_games() -> None:
    env = EpisodicLife(_Lives([
        ([2, 3], [False, False]),  # env 0 loses a life
        ([2, 3], [False, False]),
        ([1, 0], [False, True]),  # env 0 loses another; env 1's game ends (lives 0: no life_lost, it is the end)
        ([1, 3], [False, False]),  # env 1's autoreset step: a new game with 3 lives is no lost life either
        ([1, 2], [False, False]),  # env 1 loses a life of its new game
    ]))  # fmt: skip
    env.reset()
    lost = [env.step(np.zeros(2, np.int64))[4]["life_lost"].tolist() for _ in range(5)]
    assert lost == [[True, False], [False, False], [True, False], [False, False], [False, True]]


def test_episodic_life_needs_lives_in_the_info() -> None:
    with pytest.raises(ConfigError, match="episodic_life: got true for an env whose step info has no 'lives'"):
        make_vec_env(EnvConfig(id="CartPole-v1", num_envs=1, episodic_life=True)).env.reset(seed=0)


def test_learner_view_signs_rewards_and_ends_lives() -> None:
    vec = VecEnv(env=None, obs_space=ATARI, action_space=gym.spaces.Discrete(2), num_envs=3)  # type: ignore[arg-type]
    vec.sign_reward, vec.episodic_life = True, True
    reward, terminated, done = learner_view(
        vec, np.array([4.0, -2.0, 0.0]), np.array([False, False, True]), np.array([False, False, True]),
        {"life_lost": np.array([False, True, False])},
    )  # fmt: skip
    assert reward.tolist() == [1.0, -1.0, 0.0]
    assert terminated.tolist() == [False, True, True] and done.tolist() == [False, True, True]


# --- Presets -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env_id", "preset"),
    [("ALE/Pong-v5", "atari"), ("ALE/Breakout-v5", "atari"), ("BreakoutNoFrameskip-v4", "atari"),
     ("MinAtar/SpaceInvaders-v1", "minatar"), ("CartPole-v1", "CartPole-v1"), ("Acrobot-v1", "none")],
)  # fmt: skip
def test_family_presets_cover_their_games(env_id: str, preset: str) -> None:
    assert preset_for(env_id) == preset


def test_atari_preset_is_cleanrls() -> None:
    atari = PRESETS["atari"].overrides
    assert (atari["num_envs"], atari["num_steps"], atari["minibatch_size"], atari["update_epochs"]) == (8, 128, 256, 4)
    assert (atari["learning_rate"], atari["clip_coef"], atari["ent_coef"]) == (2.5e-4, 0.1, 0.01)
    assert atari["sign_reward"] and atari["episodic_life"] and atari["shared_trunk"]


def test_the_storage_line_gives_what_the_frames_cost() -> None:
    policy = ActorCritic(ATARI, gym.spaces.Discrete(3), PolicyConfig())
    vec = VecEnv(env=None, obs_space=ATARI, action_space=gym.spaces.Discrete(3), num_envs=8)  # type: ignore[arg-type]
    line = storage_line(Rollout.allocate(128, vec, policy, torch.device("cpu")))
    assert line == "the rollout stores 1,024 observations of (4, 84, 84) uint8, 28,224 bytes each (27.6 MiB)"


@pytest.mark.parametrize("field", ["sign_reward", "episodic_life"])
def test_group_methods_refuse_the_learners_view_they_would_ignore(field: str) -> None:
    from ppokit.config import RunConfig, override

    config = override(RunConfig(), {"method": "grpo", "num_envs": 8, "group_size": 4, field: True})
    with pytest.raises(ConfigError, match=f"{field}: true for grpo, whose episodes are whole games"):
        config.validate()


def test_batch_diagnostics_of_frames_run_in_chunks_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    from ppokit.classic import objective

    policy = ActorCritic(ATARI, gym.spaces.Discrete(4), PolicyConfig(shared_trunk=True))
    frames = torch.randint(0, 256, (10, 4, 84, 84), dtype=torch.uint8)
    calls: list[int] = []
    original = policy.forward
    monkeypatch.setattr(policy, "forward", lambda x: calls.append(len(x)) or original(x))
    monkeypatch.setattr(objective, "CHUNK_BYTES", 3 * 4 * 84 * 84)  # three frames a pass
    chunked = objective.batch_forward(policy, frames)[0]
    assert calls == [3, 3, 3, 1]
    torch.testing.assert_close(chunked, original(frames)[0])
