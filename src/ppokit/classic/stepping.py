"""The one env step that collection, group collection and evaluation share, and its episode
bookkeeping under NEXT_STEP autoreset (``ppokit.classic.envs``); the learner's view of a step
(sign rewards, lost lives) that collection stores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ppokit.classic.envs import VecEnv, check_observations
from ppokit.errors import ConfigError, NonFiniteEnvError


class Finished(NamedTuple):
    """The episodes that ended on one step: which envs, and their raw returns and lengths in
    env order."""

    ended: np.ndarray  # [N] bool
    returns: np.ndarray  # [K] float64, K = ended.sum()
    lengths: np.ndarray  # [K] int64


@dataclass
class EpisodeTracker:
    """The episode in flight in each of N envs, under NEXT_STEP autoreset (``ppokit.classic.envs``).

    The step after an episode's end is the env's autoreset step: its action is ignored, its
    reward is 0, and it belongs to no episode, so it is invalid. ``step`` is the one place
    where returns and lengths accumulate over valid steps and ended episodes are reported;
    collection and evaluation share it (through ``step_envs``).
    """

    reset_next: np.ndarray  # [N] bool: the env's next step is an autoreset step
    episode_return: np.ndarray  # [N] raw return of the episode in progress
    episode_length: np.ndarray  # [N]

    @classmethod
    def for_envs(cls, num_envs: int) -> EpisodeTracker:
        return cls(np.zeros(num_envs, bool), np.zeros(num_envs), np.zeros(num_envs, np.int64))

    def valid(self) -> np.ndarray:
        """``[N]`` bool: the coming step belongs to an episode (it is no autoreset step)."""
        return ~self.reset_next

    def step(
        self, reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray, valid: np.ndarray
    ) -> Finished | None:
        """Count one env step (``reward`` float64 ``[N]``); return the episodes it ended, if any.

        An episode ends on a valid step that terminated or truncated; the env's next step is
        then its autoreset. (An autoreset step never reports an end; the ``valid`` mask matters
        where the caller narrows it, as GRPO's rollout does.) Host numpy only, vector ops and
        boolean masks (index arrays cost ~1 us more per ending step): this is the per-step path.
        """
        self.episode_return += reward * valid
        self.episode_length += valid
        done = np.logical_or(terminated, truncated)
        self.reset_next = done
        if not done.any():
            return None
        ended = done & valid
        finished = Finished(ended, self.episode_return[ended], self.episode_length[ended])
        self.episode_return[done] = 0.0
        self.episode_length[done] = 0
        return finished


class EnvStep(NamedTuple):
    """One step of every env, as host arrays (a tuple: a quarter of a frozen dataclass's cost
    to build, once per step)."""

    obs: np.ndarray  # [N, *obs_shape] the observations after the step
    reward: np.ndarray  # [N] float64, raw
    terminated: np.ndarray  # [N] bool
    truncated: np.ndarray  # [N] bool
    done: np.ndarray  # [N] bool, terminated | truncated: the env's next step is an autoreset
    valid: np.ndarray  # [N] bool: the step belonged to an episode
    info: dict[str, Any]
    finished: Finished | None  # the episodes this step ended; None when none did


def step_envs(vec: VecEnv, actions: np.ndarray, tracker: EpisodeTracker, valid: np.ndarray | None = None) -> EnvStep:
    """Step every env with the policy's ``actions`` (mapped to the env's space here) and
    advance ``tracker``: the one env step of collection and evaluation.

    ``valid`` defaults to the tracker's (every step but autoresets); GRPO's one-episode
    rollout passes its own (the envs still in their first episode).
    """
    valid = ~tracker.reset_next if valid is None else valid
    try:
        obs, reward, terminated, truncated, info = vec.env.step(vec.to_env_actions(actions))
    except ValueError as e:  # Gymnasium's vector env cannot stack observations of another shape
        if "wrong shape" not in str(e) and "could not broadcast" not in str(e):  # numpy's stacking errors
            raise
        raise ConfigError("observation_space", f"the env returned observations that do not fit its observation "
                                               f"space {vec.obs_space} ({e})") from None  # fmt: skip
    reward = np.asarray(reward, dtype=np.float64)
    if obs.shape != vec.obs_batch_shape:
        check_observations(vec, obs)  # names the shapes
    if not (np.isfinite(reward).all() and (obs.dtype.kind != "f" or np.isfinite(obs).all())):
        _non_finite(obs, reward)  # caught where it enters: the policy would turn it into NaN actions
    finished = tracker.step(reward, terminated, truncated, valid)
    return EnvStep(obs, reward, terminated, truncated, tracker.reset_next, valid, info, finished)


def _non_finite(obs: np.ndarray, reward: np.ndarray) -> None:
    bad_reward = ~np.isfinite(reward)
    if bad_reward.any():
        env = int(np.flatnonzero(bad_reward)[0])
        raise NonFiniteEnvError(f"reward ({reward[env]}) in env {env}")
    env = int(np.flatnonzero(~np.isfinite(obs.reshape(len(obs), -1)).all(axis=1))[0])
    raise NonFiniteEnvError(f"observation in env {env}")


def learner_view(
    vec: VecEnv, reward: np.ndarray, terminated: np.ndarray, done: np.ndarray, info: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The step as the learner sees it: ``sign(reward)`` under ``vec.sign_reward``, and a lost
    life as a termination under ``vec.episodic_life``. The episode bookkeeping (returns,
    lengths, autoresets) has already seen the real step."""
    if vec.sign_reward:
        reward = np.sign(reward)
    if vec.episodic_life:
        lost = info["life_lost"]
        terminated, done = terminated | lost, done | lost
    return reward, terminated, done
