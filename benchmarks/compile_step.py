"""What ``torch.compile`` buys on Hopper-sized networks: a minibatch step and a rollout step.

    .venv/bin/python benchmarks/compile_step.py [--repeats 5] [--steps 300] [--warm-cache]

One torch thread, two 11-64-64 tanh trunks with a 3-dim Gaussian head (Hopper's sizes):

- **minibatch step** (minibatch 64): ``update.minibatch_loss`` (the function ``--compile``
  compiles), backward, gradient clipping, fused Adam; eager and with the loss compiled.
- **rollout step** (4 observations): forward, sample, log-probability, as ``collect`` does per
  env step; eager and compiled (ppokit does not compile it: this shows why).

Prints each compile's time (the first call) and the median over repeats of the mean time per
step, in microseconds. The inductor cache goes to a fresh temporary folder, so the compile
times are a cold start's, unless ``--warm-cache``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

if "--warm-cache" not in sys.argv:  # before torch is imported, so that inductor reads it
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="ppokit-inductor-")

import gymnasium as gym
import numpy as np
import torch

from ppokit.classic.policy import ActorCritic
from ppokit.config import AlgoConfig, PolicyConfig
from ppokit.core.update import Batch, Coefs, LossFn, minibatch_loss


def _policy() -> ActorCritic:
    torch.manual_seed(0)
    obs_space = gym.spaces.Box(-np.inf, np.inf, (11,), np.float32)
    return ActorCritic(obs_space, gym.spaces.Box(-1.0, 1.0, (3,), np.float32), PolicyConfig())


def _batch(policy: ActorCritic, size: int = 64) -> Batch:
    obs = torch.randn(size, 11)
    with torch.no_grad():
        params, values = policy(obs)
        actions = policy.head.sample(params)
        logprobs = policy.head.log_prob(params, actions)
    advantages = torch.randn(size)
    return Batch(obs, actions, logprobs, values, advantages, values + advantages, torch.ones(size))


def _timed(step: Callable[[], object], steps: int, repeats: int) -> tuple[float, float]:
    """(seconds of the first call, median over repeats of the mean us per call after it)."""
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    means = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        means.append((time.perf_counter() - start) / steps * 1e6)
    return first, statistics.median(means)


def minibatch_step(loss_fn: LossFn) -> Callable[[], object]:
    policy = _policy()
    batch, algo = _batch(policy), AlgoConfig()
    coefs = Coefs(algo.ent_coef, algo.clip_coef)
    params = list(policy.parameters())
    optimizer = torch.optim.Adam(params, lr=3e-4, eps=1e-5, fused=True)

    def step() -> None:
        loss, _ = loss_fn(policy, batch, algo, coefs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]  # torch stub gap
        torch.nn.utils.clip_grad_norm_(params, algo.max_grad_norm)
        optimizer.step()

    return step


def rollout_step(compiled: bool) -> Callable[[], object]:
    policy, obs = _policy(), torch.randn(4, 11)

    def act(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        params, value = policy(x)
        action = policy.head.sample(params)
        return action, policy.head.log_prob(params, action), value

    fn = torch.compile(act) if compiled else act

    def step() -> None:
        with torch.inference_mode():
            fn(obs)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warm-cache", action="store_true", help="use the usual inductor cache")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cases = [
        ("minibatch step, eager", minibatch_step(minibatch_loss)),
        ("minibatch step, loss compiled", minibatch_step(torch.compile(minibatch_loss))),
        ("rollout step, eager", rollout_step(False)),
        ("rollout step, compiled", rollout_step(True)),
    ]
    print(f"{'case':<32} {'first call (s)':>15} {'per step (us)':>14}")
    for label, step in cases:
        first, per_step = _timed(step, args.steps, args.repeats)
        print(f"{label:<32} {first:>15.2f} {per_step:>14.0f}", flush=True)


if __name__ == "__main__":
    main()
