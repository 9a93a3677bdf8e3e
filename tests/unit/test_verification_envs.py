"""The verification envs: Gymnasium API, registration, and the optima they document."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from ppokit.classic.envs import make_vec_env, restore, snapshot
from ppokit.classic.trainer import train
from ppokit.classic.verification_envs import BANDIT_ID, GRIDWORLD_ID, GridWorld, MultiArmedBandit, register_envs
from ppokit.config import EnvConfig, RunConfig, override

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3


@pytest.fixture(autouse=True, scope="module")
def _registered() -> Iterator[None]:
    register_envs()
    yield


# --- Both envs: API and registration --------------------------------------------------------


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [(BANDIT_ID, {}), (BANDIT_ID, {"means": (1.0, -1.0), "noise_std": 0.0}), (GRIDWORLD_ID, {}),
     (GRIDWORLD_ID, {"slip": 0.3}), (GRIDWORLD_ID, {"size": 7})],
)  # fmt: skip
def test_check_env_passes_without_warnings(env_id: str, kwargs: dict[str, Any]) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gym.make(env_id, **kwargs)
        check_env(env.unwrapped)  # with a spec, so the render modes and close are checked too
        env.reset(seed=0)
        env.step(env.action_space.sample())  # through gym.make's passive checker
        env.close()
    assert [str(w.message) for w in caught] == []


def test_register_envs_is_idempotent_and_make_works() -> None:
    register_envs()
    register_envs()
    assert gym.spec(BANDIT_ID).entry_point == "ppokit.classic.verification_envs:MultiArmedBandit"
    assert gym.spec(BANDIT_ID).max_episode_steps is None
    assert gym.spec(GRIDWORLD_ID).entry_point == "ppokit.classic.verification_envs:GridWorld"
    assert gym.spec(GRIDWORLD_ID).max_episode_steps == 50
    assert isinstance(gym.make(BANDIT_ID).unwrapped, MultiArmedBandit)
    grid = gym.make(GRIDWORLD_ID, size=5).unwrapped
    assert isinstance(grid, GridWorld)
    assert grid.size == 5


@pytest.mark.parametrize(
    ("cls", "kwargs", "name"),
    [(MultiArmedBandit, {"means": ()}, "means"), (MultiArmedBandit, {"means": "abc"}, "means"),
     (MultiArmedBandit, {"means": (0.1, math.nan)}, "means"), (MultiArmedBandit, {"means": (0.1, True)}, "means"),
     (MultiArmedBandit, {"noise_std": -0.1}, "noise_std"), (MultiArmedBandit, {"noise_std": math.inf}, "noise_std"),
     (GridWorld, {"size": 1}, "size"), (GridWorld, {"size": 2.5}, "size"), (GridWorld, {"size": True}, "size"),
     (GridWorld, {"slip": -0.1}, "slip"), (GridWorld, {"slip": 1.5}, "slip"), (GridWorld, {"slip": math.nan}, "slip"),
     (GridWorld, {"render_mode": "human"}, "render_mode")],
)  # fmt: skip
def test_bad_kwargs_raise_value_error_naming_the_argument(cls: type[gym.Env[Any, Any]], kwargs: dict[str, Any],
                                                          name: str) -> None:  # fmt: skip
    with pytest.raises(ValueError, match=rf"^{name}: "):
        cls(**kwargs)


def test_bad_kwargs_through_gym_make() -> None:
    with pytest.raises(ValueError, match=r"^slip: "):
        gym.make(GRIDWORLD_ID, slip=2.0)


@pytest.mark.parametrize("env", [MultiArmedBandit(), GridWorld()], ids=["bandit", "gridworld"])
def test_actions_outside_the_space_are_rejected(env: gym.Env[Any, Any]) -> None:
    env.reset(seed=0)
    space = env.action_space
    assert isinstance(space, gym.spaces.Discrete)
    with pytest.raises(ValueError, match=r"^action: "):
        env.step(int(space.n))


def rollout(env: gym.Env[Any, Any], seed: int, actions: list[int]) -> list[tuple[Any, ...]]:
    obs, _ = env.reset(seed=seed)
    out: list[tuple[Any, ...]] = [(obs.tolist(),)]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        out.append((obs.tolist(), reward, terminated, truncated, info))
        if terminated or truncated:
            obs, _ = env.reset()
            out.append((obs.tolist(),))
    return out


@pytest.mark.parametrize(
    ("make", "actions"),
    [(lambda: MultiArmedBandit(noise_std=1.0), [0, 1, 2, 3, 4] * 10),
     (lambda: GridWorld(slip=0.5), [RIGHT, DOWN] * 40)],
    ids=["bandit", "gridworld-slip"],
)  # fmt: skip
def test_same_seed_same_trajectory(make: Any, actions: list[int]) -> None:
    first, second, other = rollout(make(), 7, actions), rollout(make(), 7, actions), rollout(make(), 8, actions)
    assert first == second
    assert first != other  # the seed reaches the noise / the slips


@pytest.mark.parametrize("env_id", [BANDIT_ID, GRIDWORLD_ID])
def test_snapshot_and_restore_through_ppokit_envs(env_id: str) -> None:
    """Both envs hold only plain data, so a checkpoint can save and resume their episodes."""
    config = EnvConfig(id=env_id, num_envs=2)
    vec, fresh = make_vec_env(config), make_vec_env(config)
    vec.env.reset(seed=3)
    fresh.env.reset(seed=99)
    vec.env.step(np.array([1, 2]))
    state = snapshot(vec)
    assert state is not None
    assert restore(fresh, state)
    for _ in range(3):  # the bandit's NEXT_STEP autoreset step, then real pulls
        actions = np.array([1, 1])
        a, b = vec.env.step(actions), fresh.env.step(actions)
        for x, y in zip(a[:4], b[:4], strict=True):
            np.testing.assert_array_equal(x, y)
    vec.close()
    fresh.close()


@pytest.mark.parametrize("env_id", [BANDIT_ID, GRIDWORLD_ID])
def test_ppokit_trains_on_it(env_id: str, tmp_path: Path) -> None:
    config = override(
        RunConfig(),
        {"id": env_id, "num_envs": 4, "num_steps": 16, "minibatch_size": 32, "total_steps": 128,
         "eval_episodes": 2, "progress": False, "tensorboard": False, "run_dir": str(tmp_path / "run")},
    ).validate()  # fmt: skip
    result = train(config)
    assert result.global_step == 128
    assert result.evaluation is not None


# --- Bandit ----------------------------------------------------------------------------------


def test_bandit_defaults_and_known_optimum() -> None:
    env = MultiArmedBandit()
    assert env.means == (0.1, 0.5, 0.2, 0.9, 0.3)
    assert env.n_arms == 5
    assert env.action_space == gym.spaces.Discrete(5)
    assert env.observation_space == gym.spaces.Box(0.0, 1.0, (1,), np.float32)
    assert env.best_arm == 3
    assert env.optimal_reward == 0.9


def test_bandit_episodes_last_one_step() -> None:
    env = MultiArmedBandit()
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32
    np.testing.assert_array_equal(obs, [1.0])
    assert info == {}
    for arm in range(env.n_arms):
        obs, reward, terminated, truncated, info = env.step(arm)
        np.testing.assert_array_equal(obs, [1.0])
        assert type(reward) is float
        assert terminated is True
        assert truncated is False
        assert type(info["best_arm_chosen"]) is bool
        assert type(info["regret"]) is float


def test_bandit_regret_and_best_arm_chosen() -> None:
    env = MultiArmedBandit()
    env.reset(seed=0)
    for arm, mean in enumerate(env.means):
        info = env.step(arm)[4]
        assert info["regret"] == pytest.approx(0.9 - mean)
        assert info["best_arm_chosen"] is (arm == 3)


def test_bandit_ties_count_every_best_arm_as_optimal() -> None:
    env = MultiArmedBandit(means=(0.5, 1.0, 1.0))
    env.reset(seed=0)
    assert env.best_arm == 1
    assert [env.step(arm)[4]["best_arm_chosen"] for arm in range(3)] == [False, True, True]
    assert env.step(2)[4]["regret"] == 0.0


def test_bandit_reward_statistics_match_the_means() -> None:
    env = MultiArmedBandit()
    env.reset(seed=123)
    pulls = 4000  # standard error 0.1 / sqrt(4000) = 0.0016 per arm
    for arm, mean in enumerate(env.means):
        rewards = np.array([env.step(arm)[1] for _ in range(pulls)])
        assert rewards.mean() == pytest.approx(mean, abs=0.01)
        assert rewards.std() == pytest.approx(0.1, abs=0.01)


def test_bandit_accepts_a_numpy_array_of_means() -> None:
    env = MultiArmedBandit(means=np.array([0.0, 2.0]))
    assert env.means == (0.0, 2.0)
    assert env.best_arm == 1


def test_bandit_without_noise_pays_the_means_exactly() -> None:
    env = MultiArmedBandit(means=(0.25, -1.0), noise_std=0.0)
    env.reset(seed=0)
    assert [env.step(a)[1] for a in (0, 1, 0)] == [0.25, -1.0, 0.25]


# --- GridWorld -------------------------------------------------------------------------------


def cell(env: GridWorld, obs: np.ndarray) -> tuple[int, int]:
    assert obs.dtype == np.float32
    assert obs.shape == (env.size * env.size,)
    assert obs.sum() == 1.0
    index = int(np.argmax(obs))
    return index // env.size, index % env.size


@pytest.mark.parametrize("size", [2, 4, 6])
def test_gridworld_optimal_path_returns_the_documented_optimum(size: int) -> None:
    env = GridWorld(size=size)
    obs, info = env.reset(seed=0)
    assert cell(env, obs) == (0, 0) == env.agent_pos
    assert info == {}
    actions = [RIGHT] * (size - 1) + [DOWN] * (size - 1)
    total = 0.0
    for t, action in enumerate(actions):
        obs, reward, terminated, truncated, info = env.step(action)
        assert type(reward) is float
        assert type(terminated) is bool
        assert truncated is False
        total += reward
        assert terminated is (t == len(actions) - 1)
    assert cell(env, obs) == env.goal == (size - 1, size - 1)
    assert total == env.optimal_return == -2 * (size - 1)
    if size == 4:
        assert total == -6


def test_gridworld_moves_follow_the_documented_actions() -> None:
    env = GridWorld()
    env.reset(seed=0)
    expected = {DOWN: (1, 0), RIGHT: (1, 1), UP: (0, 1), LEFT: (0, 0)}
    for action, pos in expected.items():
        obs = env.step(action)[0]
        assert cell(env, obs) == env.agent_pos == pos


@pytest.mark.parametrize(
    ("path", "into_wall"),
    [([], UP), ([], LEFT), ([RIGHT] * 3, RIGHT), ([RIGHT] * 3, UP), ([DOWN] * 3, DOWN), ([DOWN] * 3, LEFT)],
)
def test_gridworld_walls_keep_the_agent_in_place(path: list[int], into_wall: int) -> None:
    env = GridWorld()
    env.reset(seed=0)
    for action in path:
        env.step(action)
    before = env.agent_pos
    obs, reward, terminated, truncated, _ = env.step(into_wall)
    assert cell(env, obs) == env.agent_pos == before
    assert (reward, terminated, truncated) == (-1.0, False, False)


def test_gridworld_reset_returns_to_the_start() -> None:
    env = GridWorld()
    env.reset(seed=0)
    env.step(DOWN)
    obs, _ = env.reset()
    assert cell(env, obs) == env.agent_pos == (0, 0)


def test_gridworld_registered_env_truncates_at_50_steps() -> None:
    env = gym.make(GRIDWORLD_ID)
    env.reset(seed=0)
    for t in range(1, 51):
        _, reward, terminated, truncated, _ = env.step(UP)  # never reaches the goal
        assert reward == -1.0
        assert terminated is False
        assert truncated is (t == 50)


def test_gridworld_slip_replaces_the_action_at_the_documented_rate() -> None:
    # From the start, "right" with slip 0.4 moves right with prob 0.6 + 0.4/4 = 0.7, stays
    # (the slipped action was up or left) with prob 0.2, and moves down with prob 0.1.
    env = GridWorld(slip=0.4)
    env.reset(seed=0)
    counts = {(0, 1): 0, (0, 0): 0, (1, 0): 0}
    n = 10_000
    for _ in range(n):
        env.reset()
        env.step(RIGHT)
        counts[env.agent_pos] += 1
    assert counts[(0, 1)] / n == pytest.approx(0.7, abs=0.02)
    assert counts[(0, 0)] / n == pytest.approx(0.2, abs=0.02)
    assert counts[(1, 0)] / n == pytest.approx(0.1, abs=0.02)


def test_gridworld_renders_ansi() -> None:
    env = GridWorld(size=3, render_mode="ansi")
    env.reset(seed=0)
    env.step(DOWN)
    assert env.render() == "...\nA..\n..G\n"
    assert GridWorld().render() is None
