"""What one minibatch step is made of: torch.profiler over ppokit's update step, op by op.

    .venv/bin/python benchmarks/step_ops.py [--env CartPole-v1] [--minibatch 256] [--steps 100] [--rows 25]

Builds the env's preset policy and random minibatch as ``adam_step.py`` does, and
``optim.FlatAdam``, runs ``--steps`` minibatch steps (``update.minibatch_loss``, backward,
clipping, Adam) under
``torch.profiler`` (after 20 untimed steps), and prints: the aten calls per step (nested
calls counted, e.g. ``aten::to`` and the ``aten::_to_copy`` inside it), the time per step
in the compute-heavy kernels (matrix products, tanh and its backward) against the rest,
and the profiler's table by self CPU time. One torch thread.
"""

from __future__ import annotations

import argparse

import torch
from adam_step import case  # the same policy and random minibatch (this folder is on sys.path)
from torch.profiler import ProfilerActivity, profile

from ppokit.core.optim import FlatAdam
from ppokit.core.update import Coefs, minibatch_loss
from ppokit.presets import PRESETS

HEAVY = ("aten::mm", "aten::addmm", "aten::tanh", "aten::tanh_backward")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1", choices=sorted(PRESETS))
    parser.add_argument("--minibatch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rows", type=int, default=25)
    args = parser.parse_args()
    torch.set_num_threads(1)
    policy, batch, config = case(args.env, args.minibatch)
    optimizer = FlatAdam(policy, config.algo.learning_rate, config.algo.adam_eps)
    coefs = Coefs(ent=config.algo.ent_coef, clip=config.algo.clip_coef)

    def step() -> None:
        loss, _ = minibatch_loss(policy, batch, config.algo, coefs)
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.clip_grad_norm(config.algo.max_grad_norm)
        optimizer.step()

    for _ in range(20):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    events = prof.key_averages()
    aten = [e for e in events if e.key.startswith("aten::")]
    total_us = sum(e.self_cpu_time_total for e in events) / args.steps
    heavy_us = sum(e.self_cpu_time_total for e in events if e.key in HEAVY) / args.steps
    print(f"{args.env}, minibatch {args.minibatch}, {args.steps} steps under the profiler (it adds its own overhead)")
    print(f"aten calls per step (nested included): {sum(e.count for e in aten) / args.steps:.0f}")
    print(f"self CPU per step: {total_us:,.0f} us, of which matrix products and tanh {heavy_us:,.0f} us")
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
