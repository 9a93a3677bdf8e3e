"""Evaluation on separate envs with the normalization frozen.

Each eval env plays a fixed quota of episodes (n split evenly over the envs), so short
episodes are not over-counted as they would be by taking "the first n that finish".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ppokit.classic.envs import EnvFactory, make_vec_env
from ppokit.classic.policy import ActorCritic
from ppokit.classic.stepping import EpisodeTracker, step_envs
from ppokit.config import EnvConfig

MAX_EVAL_ENVS = 32
EVAL_SEED_OFFSET = 1_000_003  # eval envs never share seeds with training envs


def episode_summary(prefix: str, returns: list[float], lengths: list[int]) -> dict[str, float]:
    """``{prefix}_return_mean/std/min/max``, ``{prefix}_length_mean`` (NaN without episodes)
    and ``{prefix}s`` or ``{prefix}_episodes``, the count."""
    count_key = "episodes" if prefix == "episode" else f"{prefix}_episodes"
    keys = [f"{prefix}_return_{s}" for s in ("mean", "std", "min", "max")] + [f"{prefix}_length_mean"]
    if not returns:
        return dict.fromkeys(keys, math.nan) | {count_key: 0.0}
    r = np.asarray(returns, dtype=np.float64)
    values = [r.mean(), r.std(), r.min(), r.max(), np.mean(lengths)]
    return {k: float(v) for k, v in zip(keys, values, strict=True)} | {count_key: float(len(r))}


@dataclass(frozen=True)
class EvalResult:
    returns: list[float]
    lengths: list[int]
    deterministic: bool

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    def summary(self) -> dict[str, float]:
        return episode_summary("eval", self.returns, self.lengths)

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), **self.summary()}


@torch.inference_mode()
def evaluate(
    policy: ActorCritic,
    env_config: EnvConfig,
    episodes: int,
    deterministic: bool,
    seed: int,
    env_factory: EnvFactory | None = None,
) -> EvalResult:
    num_envs = min(episodes, MAX_EVAL_ENVS)
    vec = make_vec_env(env_config, num_envs=num_envs, env_factory=env_factory)
    quota = np.full(num_envs, episodes // num_envs) + (np.arange(num_envs) < episodes % num_envs)
    returns: list[list[float]] = [[] for _ in range(num_envs)]
    lengths: list[list[int]] = [[] for _ in range(num_envs)]
    tracker = EpisodeTracker.for_envs(num_envs)
    device = next(policy.parameters()).device
    try:
        obs, _ = vec.env.reset(seed=seed + EVAL_SEED_OFFSET)
        while any(len(returns[i]) < quota[i] for i in range(num_envs)):
            action = policy.act(torch.as_tensor(obs, dtype=vec.obs_dtype, device=device), deterministic)
            step = step_envs(vec, action.cpu().numpy(), tracker)
            obs, done = step.obs, step.finished
            if done is None:
                continue
            for i, ret, length in zip(np.flatnonzero(done.ended), done.returns, done.lengths, strict=True):
                if len(returns[i]) < quota[i]:  # each env counts its first quota[i] episodes only
                    returns[i].append(float(ret))
                    lengths[i].append(int(length))
    finally:
        vec.close()
    return EvalResult(
        returns=[r for per_env in returns for r in per_env],
        lengths=[n for per_env in lengths for n in per_env],
        deterministic=deterministic,
    )
