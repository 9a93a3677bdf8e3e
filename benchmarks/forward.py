"""The actor-critic's forward pass: ppokit's MLP against the same layers as ``nn.Sequential``.

    .venv/bin/python benchmarks/forward.py [--repeats 5] [--calls 2000]

Times, on one torch thread, the rollout's forward (inference mode, a batch of 1 and of 8
observations) and the update's forward + backward (a minibatch of 64), for Hopper's sizes
(11 observations, 3 actions, 64x64 tanh trunks). Both networks hold the same weights; the
``nn.Sequential`` one calls a module per layer. Prints the median over repeats of the mean
time per call, in microseconds, and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from ppokit.classic.policy import ActorCritic
from ppokit.config import PolicyConfig


def sequential_twin(policy: ActorCritic) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """The same network as nn.Sequential trunks and nn.Linear heads, sharing the weights."""

    def trunk(layers: nn.ModuleList) -> nn.Sequential:
        return nn.Sequential(*[m for layer in layers for m in (layer, nn.Tanh())])

    actor, critic = trunk(policy.actor_trunk.layers), trunk(policy.critic_trunk.layers)

    def forward(x: Tensor) -> tuple[Tensor, Tensor]:
        return policy.actor_out(actor(x)), policy.critic_out(critic(x)).squeeze(-1)

    return forward


def per_call_us(fn: Callable[[Tensor], tuple[Tensor, Tensor]], x: Tensor, calls: int, backward: bool) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        if backward:
            params, value = fn(x)
            (params.sum() + value.sum()).backward()  # type: ignore[no-untyped-call]  # torch stub gap
        else:
            with torch.inference_mode():
                fn(x)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    obs_space = gym.spaces.Box(-np.inf, np.inf, (11,), np.float32)
    policy = ActorCritic(obs_space, gym.spaces.Box(-1.0, 1.0, (3,), np.float32), PolicyConfig())
    twin = sequential_twin(policy)
    probe = torch.randn(5, 11)
    assert all(torch.equal(a, b) for a, b in zip(policy(probe), twin(probe), strict=True))  # the same function
    print(f"{'case':<28} {'ppokit (us)':>12} {'nn.Sequential (us)':>19} {'ratio':>6}")
    for label, batch, backward in (("rollout forward, batch 1", 1, False), ("rollout forward, batch 8", 8, False),
                                   ("update fwd+bwd, batch 64", 64, True)):  # fmt: skip
        x = torch.randn(batch, 11)
        ours, theirs = [], []
        for _ in range(args.repeats):  # alternating, so both see the same machine load
            ours.append(per_call_us(policy, x, args.calls, backward))
            theirs.append(per_call_us(twin, x, args.calls, backward))
        mine, ref = statistics.median(ours), statistics.median(theirs)
        print(f"{label:<28} {mine:>12.1f} {ref:>19.1f} {mine / ref:>6.2f}")


if __name__ == "__main__":
    main()
