"""One minibatch step on Hopper-sized networks with each Adam and gradient-clipping variant.

    .venv/bin/python benchmarks/adam_step.py

Two 11-64-64-3 tanh MLPs (actor and critic), a minibatch of 64: forward, backward,
``clip_grad_norm_``, ``Adam.step``. Prints the median over 5 repeats of 300 steps, in us per
step, for single-tensor Adam, foreach clipping, fused Adam, and both. One torch thread.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn


def _net() -> nn.Sequential:
    return nn.Sequential(nn.Linear(11, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 3))


def step_us(fused: bool, foreach_clip: bool | None, steps: int = 300, repeats: int = 5) -> float:
    torch.manual_seed(0)
    actor, critic = _net(), _net()
    params = [*actor.parameters(), *critic.parameters()]
    optimizer = torch.optim.Adam(params, lr=3e-4, eps=1e-5, fused=fused)
    x = torch.randn(64, 11)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            loss = actor(x).pow(2).mean() + critic(x).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 0.5, foreach=foreach_clip)
            optimizer.step()
        times.append((time.perf_counter() - start) / steps * 1e6)
    return statistics.median(times)


def main() -> None:
    torch.set_num_threads(1)
    for fused, foreach_clip in [(False, None), (False, True), (True, None), (True, True)]:
        us = step_us(fused, foreach_clip)
        print(f"fused Adam {fused!s:5}  foreach clipping {foreach_clip!s:5}  {us:6.0f} us/step")


if __name__ == "__main__":
    main()
