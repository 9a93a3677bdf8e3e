"""Two tiny Gymnasium environments with known optima, for checking that an RL implementation learns.

A PPO that cannot solve these has a bug, not a tuning problem; each env documents its optimum
so a test can compare what was learned with what is achievable.

- ``ppokit/Bandit-v0`` (:class:`MultiArmedBandit`): one pull per episode. Optimal: always pull
  ``best_arm``, expected return ``optimal_reward = max(means)`` (0.9 with the defaults); a
  uniformly random policy gets ``mean(means)`` (0.4).
- ``ppokit/GridWorld-v0`` (:class:`GridWorld`): -1 per step to the far corner of a 4x4 grid.
  Optimal: a shortest path, return ``optimal_return = -2 * (size - 1)`` (-6); a uniformly
  random policy averages about -37, and about 44% of its episodes are truncated at 50 steps.

- ``ppokit/SlowCartPole-v0`` (:class:`SlowCartPole`): CartPole with a random wait in every
  step, for throughput measurements of several processes (``benchmarks/distributed.py``).

:func:`register_envs` registers the ids (ppokit calls it when imported); keyword arguments of
``gymnasium.make`` reach the constructors, e.g. ``gym.make("ppokit/GridWorld-v0", slip=0.1)``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from numpy.typing import NDArray

Obs = NDArray[np.float32]
StepResult = tuple[Obs, SupportsFloat, bool, bool, dict[str, Any]]

BANDIT_ID = "ppokit/Bandit-v0"
GRIDWORLD_ID = "ppokit/GridWorld-v0"
SLOW_CARTPOLE_ID = "ppokit/SlowCartPole-v0"
GRIDWORLD_MAX_EPISODE_STEPS = 50


class MultiArmedBandit(gym.Env[Obs, np.int64]):
    """A stateless k-armed bandit: every episode is one pull.

    Pulling arm ``a`` pays ``Normal(means[a], noise_std)`` and ends the episode
    (``terminated=True``). The observation is the constant ``[1.0]`` (ppokit's policies need a
    Box observation), so the task is pure exploration-exploitation with no state.

    Known optimum: always pull :attr:`best_arm`; the expected return per episode is
    :attr:`optimal_reward` ``= max(means)`` (0.9, arm 3, with the defaults). The step's info
    carries ``best_arm_chosen`` (the chosen arm has the maximal mean; with ties, any of them)
    and ``regret``, the instantaneous expected regret ``max(means) - means[a]`` (0 when optimal).
    """

    metadata = {"render_modes": []}  # noqa: RUF012  # gym.make reads it from the class

    def __init__(self, means: Sequence[float] = (0.1, 0.5, 0.2, 0.9, 0.3), noise_std: float = 0.1) -> None:
        if isinstance(means, np.ndarray) and means.ndim == 1:
            means = means.tolist()
        if isinstance(means, (str, bytes)) or not isinstance(means, Sequence) or len(means) < 1:
            raise ValueError(f"means: expected a non-empty sequence of arm means, got {means!r}")
        if not all(_is_finite_real(m) for m in means):
            raise ValueError(f"means: every arm mean must be a finite number, got {means!r}")
        if not _is_finite_real(noise_std) or noise_std < 0:
            raise ValueError(f"noise_std: expected a finite number >= 0, got {noise_std!r}")
        self.means: tuple[float, ...] = tuple(float(m) for m in means)
        self.noise_std = float(noise_std)
        self.observation_space = spaces.Box(low=0.0, high=1.0, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Discrete(len(self.means))

    @property
    def n_arms(self) -> int:
        return len(self.means)

    @property
    def best_arm(self) -> int:
        """The arm with the highest mean (the first one, if several tie)."""
        return int(np.argmax(self.means))

    @property
    def optimal_reward(self) -> float:
        """Expected reward of the optimal policy, per pull and per episode: ``max(means)``."""
        return max(self.means)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Obs, dict[str, Any]]:
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action: int | np.integer[Any]) -> StepResult:
        arm = _checked_action(self.action_space, action)
        mean = self.means[arm]
        reward = float(self.np_random.normal(mean, self.noise_std))
        info = {"best_arm_chosen": bool(mean == self.optimal_reward), "regret": self.optimal_reward - mean}
        return self._obs(), reward, True, False, info

    def _obs(self) -> Obs:
        return np.ones(1, dtype=np.float32)


class GridWorld(gym.Env[Obs, np.int64]):
    """A ``size`` x ``size`` grid walked from the top-left cell to the bottom-right one.

    Cells are ``(row, col)``; the agent starts at ``(0, 0)`` and the goal is
    ``(size - 1, size - 1)``. Actions: 0 up, 1 right, 2 down, 3 left; a move into a wall leaves
    the agent where it is. Every step pays -1, the step that reaches the goal included, and
    reaching the goal ends the episode (``terminated=True``). The observation is the one-hot
    vector of the agent's cell (``size * size`` float32, row-major), so an MLP can learn it.

    With ``slip > 0`` each action is, with probability ``slip``, replaced by one drawn uniformly
    from all four (possibly the same one).

    Known optimum (``slip=0``): any shortest path, e.g. right ``size-1`` times then down
    ``size-1`` times, returns :attr:`optimal_return` ``= -2 * (size - 1)`` (-6 on the 4x4
    grid). With ``slip > 0`` the optimal expected return is lower and has no closed form;
    ``optimal_return`` is then only an upper bound. ``ppokit/GridWorld-v0`` truncates episodes
    at 50 steps, so grids with ``size > 26`` need a larger ``max_episode_steps``.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}  # noqa: RUF012  # gym.make reads it from the class

    # (row, col) change per action: up, right, down, left.
    _MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))

    def __init__(self, size: int = 4, slip: float = 0.0, render_mode: str | None = None) -> None:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2:
            raise ValueError(f"size: expected an integer >= 2, got {size!r}")
        if not _is_finite_real(slip) or not 0.0 <= slip <= 1.0:
            raise ValueError(f"slip: expected a probability in [0, 1], got {slip!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode: {render_mode!r}; allowed: None, ansi")
        self.size = int(size)
        self.slip = float(slip)
        self.render_mode = render_mode
        self.observation_space = spaces.Box(low=0.0, high=1.0, shape=(self.size * self.size,), dtype=np.float32)
        self.action_space = spaces.Discrete(4)
        self._row = 0
        self._col = 0

    @property
    def agent_pos(self) -> tuple[int, int]:
        """The agent's cell as ``(row, col)``."""
        return self._row, self._col

    @property
    def goal(self) -> tuple[int, int]:
        return self.size - 1, self.size - 1

    @property
    def optimal_return(self) -> float:
        """Return of a shortest path, ``-2 * (size - 1)``; exact for ``slip=0``, an upper bound otherwise."""
        return float(-2 * (self.size - 1))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Obs, dict[str, Any]]:
        super().reset(seed=seed)
        self._row, self._col = 0, 0
        return self._obs(), {}

    def step(self, action: int | np.integer[Any]) -> StepResult:
        move = _checked_action(self.action_space, action)
        if self.slip > 0.0 and self.np_random.random() < self.slip:
            move = int(self.np_random.integers(4))
        d_row, d_col = self._MOVES[move]
        self._row = min(max(self._row + d_row, 0), self.size - 1)
        self._col = min(max(self._col + d_col, 0), self.size - 1)
        terminated = self.agent_pos == self.goal
        return self._obs(), -1.0, terminated, False, {}

    def render(self) -> str | None:
        """With ``render_mode="ansi"``: the grid as text, ``A`` the agent, ``G`` the goal."""
        if self.render_mode != "ansi":
            return None
        cells = [["."] * self.size for _ in range(self.size)]
        cells[self.size - 1][self.size - 1] = "G"
        cells[self._row][self._col] = "A"
        return "\n".join("".join(row) for row in cells) + "\n"

    def _obs(self) -> Obs:
        obs = np.zeros(self.size * self.size, dtype=np.float32)
        obs[self._row * self.size + self._col] = 1.0
        return obs


def _is_finite_real(x: object) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x)


def _checked_action(space: spaces.Space[Any], action: int | np.integer[Any]) -> int:
    if not space.contains(action):
        raise ValueError(f"action: {action!r} is not in {space}")
    return int(action)


class SlowCartPole(CartPoleEnv):
    """CartPole whose every step also waits a random 0 to ``2 * mean_ms`` milliseconds (drawn
    from the reset seed): a stand-in for a slow simulator with a variable step time, where several
    processes or asynchronous workers pay off even on few cores (the waits overlap)."""

    def __init__(self, mean_ms: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mean_ms = mean_ms
        self._delays = np.random.default_rng(0)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Obs, dict[str, Any]]:
        if seed is not None:
            self._delays = np.random.default_rng(seed)
        obs, info = super().reset(seed=seed, options=options)
        return np.asarray(obs, np.float32), info

    def step(self, action: Any) -> StepResult:
        time.sleep(self._delays.uniform(0.0, 2.0 * self.mean_ms) / 1000.0)
        obs, reward, terminated, truncated, info = super().step(action)  # type: ignore[no-untyped-call]  # gymnasium
        return np.asarray(obs, np.float32), reward, terminated, truncated, info


def register_envs() -> None:
    """Register ``ppokit/Bandit-v0``, ``ppokit/GridWorld-v0`` and ``ppokit/SlowCartPole-v0``
    with Gymnasium; calling it again is a no-op."""
    if BANDIT_ID not in gym.registry:
        gym.register(id=BANDIT_ID, entry_point="ppokit.classic.verification_envs:MultiArmedBandit")
    if GRIDWORLD_ID not in gym.registry:
        gym.register(
            id=GRIDWORLD_ID,
            entry_point="ppokit.classic.verification_envs:GridWorld",
            max_episode_steps=GRIDWORLD_MAX_EPISODE_STEPS,
        )
    if SLOW_CARTPOLE_ID not in gym.registry:
        gym.register(id=SLOW_CARTPOLE_ID, entry_point="ppokit.classic.verification_envs:SlowCartPole",
                     max_episode_steps=500)  # fmt: skip
