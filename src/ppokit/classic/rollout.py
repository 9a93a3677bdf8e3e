"""Time-major rollout storage ``[T, N, ...]`` and the collection loops.

One batched forward pass per step acts for all N envs; nothing loops over envs in Python.
Float observations are stored *normalized* (with the statistics of the moment they were
seen), so the update evaluates the policy on exactly the inputs the behaviour policy saw and
the ratio starts at 1; integer observations (uint8 pixels) are stored raw, in their own dtype,
and the policy's encoder converts them. Each step goes through ``stepping.step_envs``, the env
step that collection and evaluation share (it owns the episode bookkeeping of NEXT_STEP
autoreset).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ppokit.classic.envs import VecEnv
from ppokit.classic.policy import ActorCritic
from ppokit.classic.stepping import EpisodeTracker, Finished, learner_view, step_envs
from ppokit.core.normalize import MeanVar, RunningNorm


@dataclass
class Rollout:
    """Preallocated storage for T steps of N envs. ``valid`` is 0 on autoreset steps."""

    obs: Tensor  # [T, N, *obs_shape]: float observations normalized, as float32; integer ones raw
    actions: Tensor  # [T, N, *action_shape], as sampled (before clipping for the env)
    logprobs: Tensor  # [T, N]
    values: Tensor  # [T, N], V(s_t)
    rewards: Tensor  # [T, N], scaled if reward scaling is on
    terminated: Tensor  # [T, N]
    truncated: Tensor  # [T, N]
    valid: Tensor  # [T, N]
    next_value: Tensor  # [N], V(s_T) of the observation after the last step
    next_obs: Tensor | None = None  # [N, *obs_shape], s_T as ``obs`` (to recompute V(s_T) after an epoch)

    @classmethod
    def allocate(cls, num_steps: int, vec: VecEnv, policy: ActorCritic, device: torch.device) -> Rollout:
        t, n = num_steps, vec.num_envs

        def zeros(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
            return torch.zeros(shape, dtype=dtype, device=device)

        return cls(
            obs=zeros(t, n, *policy.obs_shape, dtype=vec.obs_dtype),
            actions=zeros(t, n, *policy.head.action_shape, dtype=policy.head.action_dtype),
            logprobs=zeros(t, n),
            values=zeros(t, n),
            rewards=zeros(t, n),
            terminated=zeros(t, n),
            truncated=zeros(t, n),
            valid=zeros(t, n),
            next_value=zeros(n),
            next_obs=zeros(n, *policy.obs_shape, dtype=vec.obs_dtype),
        )

    @property
    def next_values(self) -> Tensor:
        """V(s_{t+1}) for each step: the stored value one step later, ``next_value`` at the end.

        Under NEXT_STEP autoreset, s_{t+1} of an episode's last step is its final observation,
        which is what a truncated episode bootstraps from.
        """
        return shift_values(self.values, self.next_value)

    def values_under(self, policy: ActorCritic) -> tuple[Tensor, Tensor]:
        """``(V(s_t), V(s_{t+1}))``, ``[T, N]`` each, under ``policy``'s current critic: what
        the stored ``values`` and ``next_values`` would be if the rollout were collected now."""
        if self.next_obs is None:
            raise ValueError("values_under: this rollout stored no next_obs")
        t, n = self.values.shape
        with torch.no_grad():
            values = policy(self.obs.reshape(t * n, *self.obs.shape[2:]))[1].view(t, n)
            next_value = policy(self.next_obs)[1]
        return values, shift_values(values, next_value)


def storage_line(buf: Rollout) -> str:
    """What the rollout's observations take: count, shape, dtype, bytes each and in all."""
    count, each = buf.obs.shape[0] * buf.obs.shape[1], buf.obs[0, 0].numel() * buf.obs.element_size()
    dtype = str(buf.obs.dtype).removeprefix("torch.")
    return (f"the rollout stores {count:,} observations of {tuple(buf.obs.shape[2:])} {dtype}, {each:,} bytes each "
            f"({count * each / 2**20:.1f} MiB)")  # fmt: skip


def shift_values(values: Tensor, next_value: Tensor) -> Tensor:
    """V(s_{t+1}) ``[T, N]`` from V(s_t) ``[T, N]`` and the value ``[N]`` after the last step."""
    return torch.cat([values[1:], next_value.unsqueeze(0)], dim=0)


@dataclass
class RolloutState(EpisodeTracker):
    """What carries over from one rollout to the next (and into checkpoints): the episodes in
    flight, the env's current observations, and the discounted return of reward scaling.

    It is the training envs' ``EpisodeTracker`` plus two arrays, rather than holding one, so
    that its fields stay flat arrays: checkpoints save them by name (``vars``).
    """

    obs: np.ndarray  # the env's current observations
    discounted_return: np.ndarray  # [N] running discounted return, for reward scaling

    @classmethod
    def start(cls, obs: np.ndarray) -> RolloutState:
        n = obs.shape[0]
        tracker = EpisodeTracker.for_envs(n)
        return cls(tracker.reset_next, tracker.episode_return, tracker.episode_length, obs, np.zeros(n))


@dataclass
class Episodes:
    """Episodes finished during a rollout (raw, unscaled returns), and the sums and counts
    of the requested numeric step-info keys over the rollout's valid steps."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    info_sums: dict[str, float] = field(default_factory=dict)
    info_counts: dict[str, int] = field(default_factory=dict)
    env_steps: int = 0  # env steps taken by the rollout, all envs together

    def add_finished(self, finished: Finished) -> None:
        self.returns += finished.returns.tolist()
        self.lengths += finished.lengths.tolist()

    def add_info(self, info: dict[str, Any], keys: tuple[str, ...], valid: np.ndarray) -> None:
        for key in keys:
            if key in info:
                present = np.asarray(info.get(f"_{key}", np.ones(valid.shape, bool))) & valid
                self.info_sums[key] = self.info_sums.get(key, 0.0) + float(np.sum(np.asarray(info[key])[present]))
                self.info_counts[key] = self.info_counts.get(key, 0) + int(present.sum())


def scale_rewards(
    rewards: np.ndarray,
    dones: np.ndarray,
    valid: np.ndarray,
    state: RolloutState,
    return_stats: MeanVar,
    gamma: float,
    clip: float,
) -> np.ndarray:
    """r / std(G), G the running discounted return (Engstrom et al. 2020; SB3's VecNormalize)."""
    state.discounted_return = state.discounted_return * gamma + rewards
    return_stats.update(state.discounted_return[valid])
    state.discounted_return[dones] = 0.0
    return np.clip(rewards / return_stats.std(), -clip, clip)


@dataclass
class _HostRollout:
    """The env-side arrays of one rollout, filled step by step on the host and written to the
    rollout's device buffers once at its end."""

    obs: np.ndarray  # [T, N, *obs_shape] in the storage dtype (uint8 pixels stay raw)
    rewards: np.ndarray  # [T, N] float32, like the three below
    terminated: np.ndarray
    truncated: np.ndarray
    valid: np.ndarray

    @classmethod
    def like(cls, buf: Rollout) -> _HostRollout:
        shape = tuple(buf.rewards.shape)
        flags = [np.zeros(shape, np.float32) for _ in range(4)]
        return cls(torch.zeros(buf.obs.shape, dtype=buf.obs.dtype).numpy(), *flags)

    def write(self, buf: Rollout) -> None:
        for target, host in ((buf.obs, self.obs), (buf.rewards, self.rewards), (buf.terminated, self.terminated),
                             (buf.truncated, self.truncated), (buf.valid, self.valid)):  # fmt: skip
            target.copy_(torch.from_numpy(host))


@torch.inference_mode()
def collect(
    policy: ActorCritic,
    vec: VecEnv,
    buf: Rollout,
    state: RolloutState,
    return_norm: RunningNorm,
    gamma: float,
    clip_reward: float,
    info_keys: tuple[str, ...] = (),
) -> Episodes:
    """Fill ``buf`` with T steps from every env, advancing ``state`` in place.

    The per-step path is lean: the normalizers step on host copies of their statistics
    (handed back at the end), env-side data goes to host arrays, and every buffer is
    written to the device once per rollout; one forward pass per step is the only torch
    work besides sampling.
    """
    device = buf.obs.device
    num_steps, n = buf.obs.shape[:2]
    episodes = Episodes()
    obs_stats = policy.obs_norm.to_host() if policy.obs_norm.enabled else None
    return_stats = return_norm.to_host() if return_norm.enabled else None
    host = _HostRollout.like(buf)
    actions, logprobs, values = [], [], []
    for t in range(num_steps):
        if obs_stats is not None:
            obs_stats.update(state.obs)
            host.obs[t] = obs_stats.normalize(state.obs, policy.obs_norm.clip)
        else:
            host.obs[t] = state.obs
        params, value_t = policy(torch.from_numpy(host.obs[t]).to(device, non_blocking=True))
        action_t = policy.head.sample(params)
        actions.append(action_t)
        logprobs.append(policy.head.log_prob(params, action_t))
        values.append(value_t)

        next_obs, reward, terminated, truncated, done, valid, info, finished = step_envs(
            vec, action_t.cpu().numpy(), state
        )
        if info_keys:
            episodes.add_info(info, info_keys, valid)
        if vec.sign_reward or vec.episodic_life:
            reward, terminated, done = learner_view(vec, reward, terminated, done, info)
        if return_stats is not None:
            host.rewards[t] = scale_rewards(reward, done, valid, state, return_stats, gamma, clip_reward)
        else:
            host.rewards[t] = reward
        host.terminated[t], host.truncated[t], host.valid[t] = terminated, truncated, valid
        if finished is not None:
            episodes.add_finished(finished)
        state.obs = next_obs
    episodes.env_steps = num_steps * n
    if obs_stats is not None:
        policy.obs_norm.load_host(obs_stats)
    if return_stats is not None:
        return_norm.load_host(return_stats)
    _write(buf, host, (actions, logprobs, values), policy, state.obs)
    return episodes


def _write(
    buf: Rollout, host: _HostRollout, policy_steps: tuple[list[Tensor], list[Tensor], list[Tensor]],
    policy: ActorCritic, last_obs: np.ndarray,
) -> None:  # fmt: skip
    """Fill ``buf`` once at the rollout's end: the host arrays, the policy's per-step actions,
    log-probs and values, and V(s_T) of the observation after the last step (normalized with
    the statistics the rollout ended with)."""
    host.write(buf)
    actions, logprobs, values = policy_steps
    torch.stack(actions, out=buf.actions)
    torch.stack(logprobs, out=buf.logprobs)
    torch.stack(values, out=buf.values)
    last = policy.normalize(torch.as_tensor(last_obs, dtype=buf.obs.dtype).to(buf.obs.device))
    buf.next_value.copy_(policy(last)[1])
    if buf.next_obs is not None:
        buf.next_obs.copy_(last)


@torch.inference_mode()
def collect_episodes(
    policy: ActorCritic, vec: VecEnv, buf: Rollout, seeds: list[int], info_keys: tuple[str, ...] = ()
) -> tuple[Episodes, Tensor]:
    """GRPO's rollout: every env plays exactly one episode from ``reset(seed=seeds[i])``.

    Envs of a group get the same seed, so their episodes start from the same state. Steps
    after an env's episode ended are marked invalid; an episode still running after T steps
    is cut there (its return is partial: choose num_steps >= the episode length). Returns
    the episodes and each env's raw return ``[N]``.
    """
    device = buf.obs.device
    obs, _ = vec.env.reset(seed=seeds)  # type: ignore[arg-type]  # Sync/AsyncVectorEnv take one seed per env
    tracker = EpisodeTracker.for_envs(vec.num_envs)
    running = np.ones(vec.num_envs, bool)  # still in the first episode: the only valid steps
    episodes = Episodes()
    returns, lengths = np.zeros(vec.num_envs), np.zeros(vec.num_envs, np.int64)  # of the ended episodes
    for t in range(buf.obs.shape[0]):
        obs_t = torch.as_tensor(obs, dtype=buf.obs.dtype).to(device)
        policy.obs_norm.update(obs_t[torch.from_numpy(running).to(device)])
        x_t = policy.normalize(obs_t)
        params, value_t = policy(x_t)
        action_t = policy.head.sample(params)
        buf.obs[t], buf.actions[t], buf.values[t] = x_t, action_t, value_t
        buf.logprobs[t] = policy.head.log_prob(params, action_t)
        step = step_envs(vec, action_t.cpu().numpy(), tracker, valid=running)
        if info_keys:
            episodes.add_info(step.info, info_keys, running)
        buf.valid[t] = torch.from_numpy(running).to(device, torch.float32)
        buf.rewards[t] = torch.from_numpy(step.reward * running).to(device, torch.float32)
        buf.terminated[t] = torch.from_numpy(step.terminated & running).to(device, torch.float32)
        buf.truncated[t] = torch.from_numpy(step.truncated & running).to(device, torch.float32)
        if step.finished is not None:
            ended = step.finished.ended
            returns[ended], lengths[ended] = step.finished.returns, step.finished.lengths
        running = running & ~step.done
        obs = step.obs
        episodes.env_steps += vec.num_envs
        if not running.any():  # every episode ended: the rest of the rollout is not stepped
            buf.valid[t + 1 :] = 0.0
            break
    buf.next_value.zero_()
    finished = ~running
    episodes.returns, episodes.lengths = returns[finished].tolist(), lengths[finished].tolist()
    partial = np.where(running, tracker.episode_return, returns)  # an episode cut at T: its return so far
    return episodes, torch.from_numpy(partial).to(device, torch.float32)
