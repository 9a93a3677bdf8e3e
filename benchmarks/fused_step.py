"""One minibatch step, three ways: eager (the loss, autograd's backward, clipping, FlatAdam), the
fused step uncompiled (``classic.fused.FusedStep`` with ``compile=False``: ``torch.func``), and
the fused step compiled as one graph; against the arithmetic bound of the step.

    .venv/bin/python benchmarks/fused_step.py [--env CartPole-v1] [--minibatch 256] [--repeats 5]

The policy is the env's preset network (64x64 tanh MLPs, separate actor and critic), the
minibatch random observations with the policy's own actions, one torch thread (the fused
step gathers the minibatch's rows in shuffled order from it, as an update's step does; the
eager step takes it as it is). Printed: the
cold compile (the first call, in a fresh compile cache unless ``--warm``), then per step the
median microseconds of ``--repeats`` timed loops of 300 steps each, the speed-up over eager,
and the arithmetic bound: the step's multiply-adds (6 x minibatch x the weights of the linear
layers: forward 2, backward 4) at the GFLOP/s this machine reaches on a matmul of the
minibatch's shape.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def _timed(step: Callable[[], object], repeats: int, calls: int = 300) -> float:
    """Median microseconds per call over ``repeats`` loops of ``calls``."""
    for _ in range(20):
        step()
    loops = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            step()
        loops.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(loops)


def _matmul_gflops(rows: int, width: int, repeats: int) -> float:
    import torch

    a, b = torch.randn(rows, width), torch.randn(width, width)
    us = _timed(lambda: a @ b, repeats, 2000)
    return 2 * rows * width * width / (us * 1e-6) / 1e9


def _setup(env_id: str, n: int) -> tuple[Any, Any, Any, Any, Any]:
    """The env's preset policy, a minibatch of ``n`` random observations with the policy's own
    actions (log-probs a little off, so that ratios move), the algorithm settings, the
    coefficients and the loss."""
    import torch

    from ppokit.classic.batch import Batch
    from ppokit.classic.envs import make_vec_env
    from ppokit.classic.objective import make_minibatch_loss
    from ppokit.classic.policy import ActorCritic
    from ppokit.config import RunConfig, override
    from ppokit.core.losses import Coefs
    from ppokit.methods import METHODS
    from ppokit.presets import PRESETS, preset_for

    name = preset_for(env_id)
    overrides = PRESETS[name].overrides if name in PRESETS else {}
    config = override(RunConfig(), {**overrides, "id": env_id}).validate()
    vec = make_vec_env(config.env)
    vec.close()
    torch.manual_seed(0)
    base = ActorCritic(vec.obs_space, vec.action_space, config.policy)
    obs = torch.randn(n, *base.obs_shape)
    with torch.no_grad():
        params, values = base(obs)
        actions = base.head.sample(params)
        logprobs = base.head.log_prob(params, actions) + 0.05 * torch.randn(n)
    advantages = torch.randn(n)
    mb = Batch(obs, actions, logprobs, values, advantages, values + advantages, torch.ones(n))
    algo = config.algo
    coefs = Coefs(algo.ent_coef, algo.clip_coef, algo.clip_coef)
    return base, mb, algo, coefs, make_minibatch_loss(METHODS[algo.method], algo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--minibatch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warm", action="store_true", help="use the usual compile cache (default: a fresh one)")
    args = parser.parse_args()
    if not args.warm:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="ppokit-fused-cache-")

    import torch
    from torch import nn

    from ppokit.classic.fused import FusedStep
    from ppokit.core.optim import FlatAdam

    torch.set_num_threads(1)
    base, mb, algo, coefs, loss_fn = _setup(args.env, args.minibatch)
    n = args.minibatch
    order = torch.randperm(n)  # the fused step gathers its rows from the batch, as in an update
    eager_policy = copy.deepcopy(base)
    eager_opt = FlatAdam(eager_policy, algo.learning_rate, algo.adam_eps)

    def eager() -> None:
        loss, _ = loss_fn(eager_policy, mb, coefs)
        eager_opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        eager_opt.clip_grad_norm(algo.max_grad_norm)
        eager_opt.step()

    steps = {}
    for name, compiled in (("fused, uncompiled (torch.func)", False), ("fused, compiled (one graph)", True)):
        policy = copy.deepcopy(base)
        step = FusedStep(policy, FlatAdam(policy, algo.learning_rate, algo.adam_eps), loss_fn, compile=compiled)
        start = time.perf_counter()
        step(mb, order, coefs, algo.max_grad_norm)
        if compiled:
            print(f"compile (first call, {'warm' if args.warm else 'cold'} cache): {time.perf_counter() - start:.1f} s")
        steps[name] = step

    weights = sum(m.weight.numel() for m in base.modules() if isinstance(m, nn.Linear))
    width = max(m.weight.shape[0] for m in base.modules() if isinstance(m, nn.Linear))
    flops = 6 * n * weights
    gflops = _matmul_gflops(n, width, args.repeats)
    bound = flops / (gflops * 1e9) * 1e6
    rows = [("eager (loss, backward, clip, FlatAdam)", _timed(eager, args.repeats))]
    rows += [(name, _timed(lambda s=step: s(mb, order, coefs, algo.max_grad_norm), args.repeats)) for name, step in
             steps.items()]  # fmt: skip
    print(f"{args.env}: minibatch {n}, {weights:,} weights in linear layers, {flops / 1e6:.1f} MFLOP per step; "
          f"a {n}x{width} @ {width}x{width} matmul runs at {gflops:.1f} GFLOP/s here, so the arithmetic bound is "
          f"{bound:.0f} us")  # fmt: skip
    print("| step | us per step | speed-up over eager | x the arithmetic bound |")
    print("|---|---|---|---|")
    for name, us in rows:
        print(f"| {name} | {us:,.0f} | {rows[0][1] / us:.2f}x | {us / bound:.1f} |")


if __name__ == "__main__":
    main()
