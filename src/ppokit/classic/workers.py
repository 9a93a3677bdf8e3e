"""Asynchronous rollout workers (APPO / IMPALA style) on Ray actors (``ppokit[ray]``).

``--async-workers N`` starts N Ray actors, each with its own envs (``env.num_envs`` of them)
and a CPU copy of the policy. Each collects one rollout with the weights it was last sent and
returns it with the version of those weights; the learner takes rollouts as they arrive
(``ray.wait``), sends that worker the newest weights at once, and updates on the rollout while the
others go on collecting. So the envs never wait for the update, and the update's data comes from a
policy a few updates old:

- the PPO ratio is taken against the **behaviour** policy, the one that acted (the rollout's own
  log-probabilities), so the clip bounds the move away from what actually collected the data;
- a rollout more than ``max_policy_lag`` updates older than the learner is dropped (counted in
  ``dropped_rollouts``); ``policy_lag`` is logged per update;
- advantages come from GAE over the behaviour policy's values (no V-trace correction);
- a worker that dies (its actor lost) is replaced by a new one with a new seed
  (``worker_restarts``), and the run goes on;
- a checkpoint holds the learner; a resumed run starts new workers, whose episodes start anew
  (arrival order depends on timing, so an async run is not reproducible step for step).

Ray is used as an existing engine for the workers: the same code runs on a Ray cluster when
``ray.init`` connects to one (``RAY_ADDRESS``); on one machine ppokit starts a local instance.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from ppokit.classic.envs import EnvFactory, make_vec_env
from ppokit.classic.policy import ActorCritic
from ppokit.classic.rollout import Episodes, Rollout, RolloutState, collect
from ppokit.config import RunConfig, from_dict, to_dict
from ppokit.core.normalize import RunningNorm
from ppokit.errors import ConfigError
from ppokit.runtime import SEED_STRIDE


@dataclass
class Collected:
    """A worker's rollout: the buffer's tensors by field name, its finished episodes, and the
    version (learner update count) of the weights that collected it."""

    tensors: dict[str, Tensor]
    episodes: Episodes
    version: int


class RolloutWorker:
    """One worker (run as a Ray actor): envs, a CPU policy, one rollout per ``collect`` call."""

    def __init__(self, config: dict[str, Any], seed: int, env_factory: EnvFactory | None = None) -> None:
        torch.set_num_threads(1)
        self.config = from_dict(config)
        env = self.config.env
        self.vec = make_vec_env(env, env_factory=env_factory)
        self.policy = ActorCritic(self.vec.obs_space, self.vec.action_space, self.config.policy, env.norm_obs,
                                  env.clip_obs)  # fmt: skip
        obs, _ = self.vec.env.reset(seed=seed)
        self.state = RolloutState.start(obs)
        self.buf = Rollout.allocate(self.config.algo.num_steps, self.vec, self.policy, torch.device("cpu"))
        self.return_norm = RunningNorm((), False)  # reward scaling is refused with async workers

    def collect(self, weights: dict[str, Tensor], version: int) -> Collected:
        self.policy.load_state_dict(weights)
        algo, env = self.config.algo, self.config.env
        episodes = collect(self.policy, self.vec, self.buf, self.state, self.return_norm, algo.gamma, env.clip_reward,
                           env.info_metrics)  # fmt: skip
        parts = {f.name: getattr(self.buf, f.name) for f in fields(self.buf)}
        return Collected({name: t.clone() for name, t in parts.items() if t is not None}, episodes, version)


class WorkerPool:
    """The learner's side: N actors, one rollout in flight on each, replaced when one dies."""

    def __init__(self, config: RunConfig, seed: int, env_factory: EnvFactory | None = None) -> None:
        import ray

        self.owns_ray = not ray.is_initialized()
        if self.owns_ray and os.environ.get("RAY_ADDRESS"):  # a running cluster: its machines, its resources
            try:
                ray.init(log_to_driver=False, logging_level=logging.WARNING)
            except ConnectionError as e:
                address, why = os.environ["RAY_ADDRESS"], str(e).splitlines()[0][:100]
                raise ConfigError(
                    "async_workers", f"RAY_ADDRESS={address}: no Ray cluster to connect to ({why})"
                ) from None
        elif self.owns_ray:  # a local instance of its own
            ray.init(num_cpus=config.async_workers, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)  # fmt: skip
        self.ray, self.config, self.seed, self.env_factory = ray, config, seed, env_factory
        self.actor = ray.remote(num_cpus=1)(RolloutWorker)
        self.restarts, self.dropped, self.last_lag = 0, 0, 0
        self.workers = [self._start(i) for i in range(config.async_workers)]
        self.pending: dict[Any, int] = {}
        self.weights: tuple[int, Any] | None = None

    def _start(self, i: int) -> Any:
        seed = self.seed + (i + 1 + self.restarts * self.config.async_workers) * SEED_STRIDE
        return self.actor.remote(to_dict(self.config), seed, self.env_factory)

    def _weights(self, policy: ActorCritic, version: int) -> Any:
        """The learner's weights in Ray's object store, put once per version."""
        if self.weights is None or self.weights[0] != version:
            cpu = {k: v.detach().cpu() for k, v in policy.state_dict().items()}
            self.weights = (version, self.ray.put(cpu))
        return self.weights[1]

    def _submit(self, i: int, policy: ActorCritic, version: int) -> None:
        self.pending[self.workers[i].collect.remote(self._weights(policy, version), version)] = i

    def next_rollout(self, policy: ActorCritic, version: int) -> Collected:
        """The next rollout of at most ``max_policy_lag`` updates' lag; the worker that sent it
        is sent the current weights at once."""
        if not self.pending:
            for i in range(len(self.workers)):
                self._submit(i, policy, version)
        while True:
            (ready,), _ = self.ray.wait(list(self.pending), num_returns=1)
            i = self.pending.pop(ready)
            try:
                got: Collected = self.ray.get(ready)
            except self.ray.exceptions.RayActorError:  # the worker died: a new one, new seed
                self.restarts += 1
                self.workers[i] = self._start(i)
                self._submit(i, policy, version)
                continue
            self._submit(i, policy, version)
            if version - got.version > self.config.max_policy_lag:
                self.dropped += 1
                continue
            self.last_lag = version - got.version
            return got

    def metrics(self) -> dict[str, float]:
        """``policy_lag`` of the last rollout; ``dropped_rollouts`` and ``worker_restarts`` so far."""
        return {"policy_lag": float(self.last_lag), "dropped_rollouts": float(self.dropped),
                "worker_restarts": float(self.restarts)}  # fmt: skip

    def close(self) -> None:
        for worker in self.workers:
            self.ray.kill(worker)
        if self.owns_ray:
            self.ray.shutdown()


def fill(buf: Rollout, got: Collected) -> None:
    """Copy a worker's rollout into the learner's buffer (on the learner's device)."""
    for name, tensor in got.tensors.items():
        getattr(buf, name).copy_(tensor)
