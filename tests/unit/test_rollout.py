"""The one env step (episode bookkeeping under NEXT_STEP autoreset) and observation dtypes."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from ppokit.classic.envs import make_vec_env, obs_dtype
from ppokit.classic.evaluation import evaluate
from ppokit.classic.policy import ActorCritic
from ppokit.classic.rollout import Rollout, RolloutState, collect, collect_episodes
from ppokit.classic.stepping import EpisodeTracker, step_envs
from ppokit.config import EnvConfig, PolicyConfig
from ppokit.core.normalize import RunningNorm
from ppokit.errors import ConfigError

PIXELS = gym.spaces.Box(0, 255, (4,), np.uint8)
SYNC = EnvConfig(id="unused-with-a-factory", vectorization="sync")


class Pixels(gym.Env[np.ndarray, np.int64]):
    """uint8 observations ``[50 k] * 4`` after the k-th step of an episode, reward k, terminated
    after 3 steps: every episode has return 1 + 2 + 3 = 6 and length 3."""

    observation_space = PIXELS
    action_space = gym.spaces.Discrete(2)

    def __init__(self) -> None:
        self.k = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.k = 0
        return np.zeros(4, np.uint8), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.k += 1
        self.last_action = int(action)
        return np.full(4, 50 * self.k, np.uint8), float(self.k), self.k == 3, False, {}


class ShiftedPixels(Pixels):
    """Actions 5 and 6: the policy's 0 and 1 must be shifted before they reach the env."""

    action_space = gym.spaces.Discrete(2, start=5)


def _policy(**kwargs: Any) -> ActorCritic:
    torch.manual_seed(0)
    return ActorCritic(PIXELS, gym.spaces.Discrete(2), PolicyConfig(hidden_sizes=(8,)), **kwargs)


# --- EpisodeTracker --------------------------------------------------------------------------


def test_tracker_counts_valid_steps_and_reports_ended_episodes_by_hand() -> None:
    tracker = EpisodeTracker.for_envs(3)
    f, t = False, True

    # Step 1: env 1 terminates after one step with return 2.
    ended = tracker.step(np.array([1.0, 2.0, 3.0]), np.array([f, t, f]), np.array([f, f, f]), tracker.valid())
    assert ended is not None
    assert ended.ended.tolist() == [f, t, f] and ended.returns.tolist() == [2.0] and ended.lengths.tolist() == [1]
    assert tracker.reset_next.tolist() == [f, t, f]
    assert tracker.episode_return.tolist() == [1.0, 0.0, 3.0] and tracker.episode_length.tolist() == [1, 0, 1]

    # Step 2: env 1 autoresets (its reward 7 belongs to no episode); env 2 truncates at 3 + 5.
    valid = tracker.valid()
    assert valid.tolist() == [t, f, t]
    ended = tracker.step(np.array([10.0, 7.0, 5.0]), np.array([f, f, f]), np.array([f, f, t]), valid)
    assert ended is not None
    assert ended.ended.tolist() == [f, f, t] and ended.returns.tolist() == [8.0] and ended.lengths.tolist() == [2]
    assert tracker.episode_return.tolist() == [11.0, 0.0, 0.0] and tracker.episode_length.tolist() == [2, 0, 0]

    # Step 3: env 0 terminates at 1 + 10 + 1 = 12 after 3 steps; env 1's new episode starts.
    ended = tracker.step(np.ones(3), np.array([t, f, f]), np.array([f, f, f]), tracker.valid())
    assert ended is not None
    assert ended.ended.tolist() == [t, f, f] and ended.returns.tolist() == [12.0] and ended.lengths.tolist() == [3]
    assert tracker.episode_return.tolist() == [0.0, 1.0, 0.0] and tracker.episode_length.tolist() == [0, 1, 0]
    assert tracker.reset_next.tolist() == [t, f, f]


def test_tracker_step_without_an_end_reports_nothing() -> None:
    tracker = EpisodeTracker.for_envs(2)
    assert tracker.step(np.array([0.5, -1.0]), np.zeros(2, bool), np.zeros(2, bool), tracker.valid()) is None
    assert tracker.episode_return.tolist() == [0.5, -1.0] and tracker.episode_length.tolist() == [1, 1]


def test_tracker_with_an_explicit_mask_ignores_ends_outside_it() -> None:
    """GRPO's one-episode rollout: an env past its first episode is outside the mask, so the
    end of its second episode is no episode."""
    tracker = EpisodeTracker.for_envs(2)
    running = np.array([True, False])
    ended = tracker.step(np.array([4.0, 9.0]), np.array([True, True]), np.zeros(2, bool), running)
    assert ended is not None
    assert ended.ended.tolist() == [True, False] and ended.returns.tolist() == [4.0] and ended.lengths.tolist() == [1]
    assert tracker.episode_return.tolist() == [0.0, 0.0]


def test_rollout_state_is_a_tracker_with_the_checkpointed_fields() -> None:
    state = RolloutState.start(np.zeros((3, 4), np.float32))
    assert isinstance(state, EpisodeTracker)
    assert set(vars(state)) == {"obs", "reset_next", "episode_return", "episode_length", "discounted_return"}
    assert state.reset_next.dtype == bool and state.episode_length.dtype == np.int64


# --- step_envs -------------------------------------------------------------------------------


def test_step_envs_maps_actions_steps_and_tracks() -> None:
    vec = make_vec_env(SYNC, num_envs=2, env_factory=ShiftedPixels)
    try:
        vec.env.reset(seed=0)
        tracker = EpisodeTracker.for_envs(2)
        rewards, valids, ended = [], [], []
        for _ in range(5):
            step = step_envs(vec, np.array([0, 1]), tracker)
            rewards.append(step.reward.tolist())
            valids.append(step.valid.tolist())
            ended.append([] if step.finished is None else step.finished.returns.tolist())
            assert step.reward.dtype == np.float64
            assert step.done.tolist() == (step.terminated | step.truncated).tolist()
            assert [env.unwrapped.last_action for env in vec.env.envs] == [5, 6]
        # Steps 1-3 are the episode (rewards 1, 2, 3); step 4 is the autoreset (reward 0, invalid).
        assert rewards == [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [0.0, 0.0], [1.0, 1.0]]
        assert valids == [[True, True]] * 3 + [[False, False]] + [[True, True]]
        assert ended == [[], [], [6.0, 6.0], [], []]
        assert step.obs.dtype == np.uint8 and step.obs[:, 0].tolist() == [50, 50]
    finally:
        vec.close()


# --- observation dtypes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("space", "dtype"),
    [
        (PIXELS, torch.uint8),
        (gym.spaces.Box(0, 9, (2,), np.int64), torch.int64),
        (gym.spaces.Box(-1.0, 1.0, (2,), np.float32), torch.float32),
        (gym.spaces.Box(-1.0, 1.0, (2,), np.float64), torch.float32),  # floats stored as float32
    ],
    ids=["uint8", "int64", "float32", "float64"],
)
def test_obs_dtype_comes_from_the_space(space: gym.spaces.Box, dtype: torch.dtype) -> None:
    assert obs_dtype(space) == dtype


def test_normalizing_integer_observations_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="norm_obs: got true for uint8 observations; allowed: false") as info:
        _policy(norm_obs=True)
    assert info.value.field == "norm_obs"


def test_policy_converts_uint8_observations_in_forward() -> None:
    policy = _policy()
    raw = torch.tensor([[0, 50, 100, 250]], dtype=torch.uint8)
    assert policy.normalize(raw) is raw  # never normalized, stays uint8
    params, value = policy(raw)
    params_f, value_f = policy(raw.float())
    assert torch.equal(params, params_f) and torch.equal(value, value_f)
    assert policy.act(raw.numpy()).shape == (1,)


def test_collect_stores_uint8_observations_raw() -> None:
    policy = _policy()
    vec = make_vec_env(SYNC, num_envs=2, env_factory=Pixels)
    try:
        buf = Rollout.allocate(8, vec, policy, torch.device("cpu"))
        assert buf.obs.dtype == torch.uint8 and buf.next_obs is not None and buf.next_obs.dtype == torch.uint8
        state = RolloutState.start(vec.env.reset(seed=0)[0])
        episodes = collect(policy, vec, buf, state, RunningNorm((), False), gamma=0.99, clip_reward=10.0)
    finally:
        vec.close()
    # NEXT_STEP: steps 0-2 are the episode, step 3 (which sees the final observation 150) the autoreset.
    per_env = [0, 50, 100, 150, 0, 50, 100, 150]
    assert buf.obs[:, :, 0].T.tolist() == [per_env, per_env]
    assert buf.valid[:, 0].tolist() == [1, 1, 1, 0, 1, 1, 1, 0]
    assert buf.rewards[:, 0].tolist() == [1, 2, 3, 0, 1, 2, 3, 0]
    assert buf.terminated[:, 0].tolist() == [0, 0, 1, 0, 0, 0, 1, 0]
    assert episodes.returns == [6.0] * 4 and episodes.lengths == [3] * 4
    assert buf.next_obs.tolist() == [[0] * 4] * 2
    torch.testing.assert_close(buf.values, policy(buf.obs.reshape(16, 4))[1].view(8, 2))
    values, _ = buf.values_under(policy)  # the update's recomputation reads the uint8 storage too
    torch.testing.assert_close(values, buf.values)
    assert state.reset_next.tolist() == [False, False]  # step 7 was the autoreset: a new episode is next
    assert state.episode_return.tolist() == [0.0, 0.0] and state.episode_length.tolist() == [0, 0]


def test_collect_episodes_plays_one_episode_per_env() -> None:
    policy = _policy()
    vec = make_vec_env(SYNC, num_envs=2, env_factory=Pixels)
    try:
        buf = Rollout.allocate(5, vec, policy, torch.device("cpu"))
        episodes, returns = collect_episodes(policy, vec, buf, [0, 0])
    finally:
        vec.close()
    assert returns.tolist() == [6.0, 6.0]
    assert episodes.returns == [6.0, 6.0] and episodes.lengths == [3, 3] and episodes.env_steps == 6
    assert buf.valid[:, 0].tolist() == [1, 1, 1, 0, 0]
    assert buf.obs.dtype == torch.uint8 and buf.obs[:3, 0, 0].tolist() == [0, 50, 100]


def test_collect_episodes_returns_the_partial_return_of_a_cut_episode() -> None:
    policy = _policy()
    vec = make_vec_env(SYNC, num_envs=2, env_factory=Pixels)
    try:
        buf = Rollout.allocate(2, vec, policy, torch.device("cpu"))
        episodes, returns = collect_episodes(policy, vec, buf, [0, 0])
    finally:
        vec.close()
    assert returns.tolist() == [3.0, 3.0]  # 1 + 2 of the 3 steps
    assert episodes.returns == [] and episodes.env_steps == 4


def test_evaluate_on_uint8_observations_counts_every_episode() -> None:
    result = evaluate(_policy(), SYNC, episodes=3, deterministic=True, seed=0, env_factory=Pixels)
    assert result.returns == [6.0, 6.0, 6.0] and result.lengths == [3, 3, 3]


def test_vtrace_batch_is_the_gae_batch_on_policy_and_corrects_a_lagging_one() -> None:
    """An async worker's rollout (``vtrace_batch``): under the policy that collected it every
    ratio is 1 and the targets are GAE's; under a learner that moved on the ratios are pi/mu of
    the stored actions, and the batch keeps the behaviour log-probs for PPO's ratio."""
    from ppokit.classic.batch import Batch, trajectories, vtrace_batch
    from ppokit.core.advantages import AdvantageSettings, gae_targets

    behaviour = _policy()
    vec = make_vec_env(SYNC, num_envs=2, env_factory=Pixels)
    try:
        buf = Rollout.allocate(8, vec, behaviour, torch.device("cpu"))
        collect(behaviour, vec, buf, RolloutState.start(vec.env.reset(seed=0)[0]), RunningNorm((), False), 0.99, 10.0)
    finally:
        vec.close()
    settings = AdvantageSettings(gamma=0.99, gae_lambda=0.9)
    same, stats = vtrace_batch(buf, behaviour, settings, clip=1.0)
    expected = Batch.from_rollout(buf, gae_targets(trajectories(buf), settings))
    torch.testing.assert_close(same.returns, expected.returns)
    assert stats == {"vtrace_rho_mean": pytest.approx(1.0), "vtrace_rho_clipped": 0.0}
    learner = _policy()
    with torch.no_grad():
        for p in learner.parameters():
            p.add_(0.5 * torch.randn_like(p))
    moved, stats = vtrace_batch(buf, learner, settings, clip=1.0)
    assert torch.equal(moved.logprobs, expected.logprobs)  # PPO's ratio: against the behaviour policy
    assert torch.equal(moved.values, buf.values_under(learner)[0].reshape(-1))  # value clipping: the learner's
    assert not torch.allclose(moved.returns, expected.returns) and stats["vtrace_rho_mean"] != pytest.approx(1.0)
    assert 0.0 < stats["vtrace_rho_clipped"] < 1.0
