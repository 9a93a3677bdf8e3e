"""The optimizer's share of a minibatch step: torch's Adam over separate tensors vs ppokit's FlatAdam.

    .venv/bin/python benchmarks/adam_step.py [--repeats 7] [--steps 300]

On ppokit's actor-critic (two 64x64 tanh MLPs) for CartPole-v1 (minibatch 256) and Hopper-v5
(minibatch 64), one PPO minibatch step (``update.minibatch_loss``, backward, gradient
clipping at 0.5, Adam) with either

- **per-tensor**: ``torch.optim.Adam(fused=True)`` over the policy's parameters,
  ``zero_grad(set_to_none=True)`` and ``torch.nn.utils.clip_grad_norm_`` (ppokit before
  ``optim.FlatAdam``), or
- **flat**: ``ppokit.core.optim.FlatAdam`` (the parameters and gradients views into one tensor each).

Prints the median over repeats (the two alternate within each repeat) of microseconds per
step for the zeroing, the clipping and the Adam step, and for the whole step. One torch thread.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import torch

from ppokit.classic.policy import ActorCritic
from ppokit.config import RunConfig, override
from ppokit.core.optim import FlatAdam
from ppokit.core.update import Batch, Coefs, minibatch_loss
from ppokit.presets import PRESETS

PARTS = ("zero", "clip", "adam", "step")


def case(env_id: str, size: int) -> tuple[ActorCritic, Batch, RunConfig]:
    """The env's preset policy (seed 0) and a random minibatch of ``size`` samples."""
    config = override(RunConfig(), {**PRESETS[env_id].overrides, "id": env_id}).validate()
    env = gym.make(env_id)
    torch.manual_seed(0)
    policy = ActorCritic(env.observation_space, env.action_space, config.policy)
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(size, *env.observation_space.shape, generator=g)
    if isinstance(env.action_space, gym.spaces.Discrete):
        actions = torch.randint(0, int(env.action_space.n), (size,), generator=g)
    else:
        actions = torch.randn(size, *env.action_space.shape, generator=g)
    batch = Batch(obs, actions, torch.randn(size, generator=g) - 1.0, torch.randn(size, generator=g),
                  torch.randn(size, generator=g), torch.randn(size, generator=g), torch.ones(size))  # fmt: skip
    return policy, batch, config


def _stepper(kind: str, env_id: str, size: int) -> Callable[[dict[str, float]], None]:
    policy, batch, config = case(env_id, size)
    coefs = Coefs(ent=0.0, clip=0.2)
    if kind == "flat":
        flat = FlatAdam(policy, lr=3e-4, eps=1e-5)
        zero, clip, adam = flat.zero_grad, lambda: flat.clip_grad_norm(0.5), flat.step
    else:
        params = list(policy.parameters())
        torch_adam = torch.optim.Adam(params, lr=3e-4, eps=1e-5, fused=True)
        zero = lambda: torch_adam.zero_grad(set_to_none=True)
        clip, adam = lambda: torch.nn.utils.clip_grad_norm_(params, 0.5), torch_adam.step

    def step(times: dict[str, float]) -> None:
        t0 = time.perf_counter()
        loss, _ = minibatch_loss(policy, batch, config.algo, coefs)
        t1 = time.perf_counter()
        zero()
        t2 = time.perf_counter()
        loss.backward()  # type: ignore[no-untyped-call]
        t3 = time.perf_counter()
        clip()
        t4 = time.perf_counter()
        adam()
        t5 = time.perf_counter()
        for part, seconds in zip(PARTS, (t2 - t1, t4 - t3, t5 - t4, t5 - t0), strict=True):
            times[part] += seconds

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for env_id, size in (("CartPole-v1", 256), ("Hopper-v5", 64)):
        steppers = {kind: _stepper(kind, env_id, size) for kind in ("per-tensor", "flat")}
        results: dict[str, dict[str, list[float]]] = {k: {p: [] for p in PARTS} for k in steppers}
        for _ in range(args.repeats):
            for kind, step in steppers.items():
                for _ in range(30):  # warm-up
                    step(dict.fromkeys(PARTS, 0.0))
                times = dict.fromkeys(PARTS, 0.0)
                for _ in range(args.steps):
                    step(times)
                for part in PARTS:
                    results[kind][part].append(times[part] / args.steps * 1e6)
        print(f"{env_id}, minibatch {size}, median of {args.repeats} x {args.steps} steps (us per step)")
        print(f"  {'':12}" + "".join(f"{p:>9}" for p in PARTS))
        for kind, parts in results.items():
            print(f"  {kind:12}" + "".join(f"{statistics.median(parts[p]):9.0f}" for p in PARTS))


if __name__ == "__main__":
    main()
