"""One update's epochs with the compiled fused step, timed; ``--src`` takes ppokit from another
checkout, so two versions can be timed side by side (alternate the two commands).

    git worktree add /tmp/old 52427a6      # the version before the step gathered its own rows
    .venv/bin/python benchmarks/fused_update.py --src /tmp/old/src \
        [--env Hopper-v5 --minibatch 64 --batch 2048 --epochs 10]
    .venv/bin/python benchmarks/fused_update.py [the same options]

The env's network with ppokit's defaults, a batch of ``--batch`` random observations with the
policy's own actions, ``update_policy`` with a ``FusedStep`` (one torch thread, a compile cache
of its own per source folder, so the timed updates load or reuse the graph): the median
milliseconds of 5 updates after a first one. Defaults: CartPole's preset update (20 epochs of
one 256-row minibatch).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, default=Path(__file__).resolve().parents[1] / "src")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--minibatch", type=int, default=256)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    sys.path.insert(0, str(args.src))
    key = hashlib.sha1(str(args.src.resolve()).encode()).hexdigest()[:8]
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = f"/tmp/ppokit-fused-update-{key}"
    import torch

    from ppokit.classic.batch import Batch
    from ppokit.classic.envs import make_vec_env
    from ppokit.classic.fused import FusedStep
    from ppokit.classic.objective import make_minibatch_loss
    from ppokit.classic.policy import ActorCritic
    from ppokit.classic.update import update_policy
    from ppokit.config import RunConfig, override
    from ppokit.core.losses import Coefs
    from ppokit.core.optim import FlatAdam
    from ppokit.core.update import UpdatePlan
    from ppokit.methods import METHODS

    torch.set_num_threads(1)
    config = override(RunConfig(), {"id": args.env}).validate()
    vec = make_vec_env(config.env)
    vec.close()
    torch.manual_seed(0)
    policy = ActorCritic(vec.obs_space, vec.action_space, config.policy)
    obs = torch.randn(args.batch, *policy.obs_shape)
    with torch.no_grad():
        params, values = policy(obs)
        actions = policy.head.sample(params)
        logprobs = policy.head.log_prob(params, actions) + 0.05 * torch.randn(args.batch)
    advantages = torch.randn(args.batch)
    batch = Batch(obs, actions, logprobs, values, advantages, values + advantages, torch.ones(args.batch))
    algo = config.algo
    coefs = Coefs(algo.ent_coef, algo.clip_coef, algo.clip_coef)
    loss_fn = make_minibatch_loss(METHODS[algo.method], algo)
    optimizer = FlatAdam(policy, algo.learning_rate, algo.adam_eps)
    fused = FusedStep(policy, optimizer, loss_fn)
    plan = UpdatePlan(args.epochs, args.minibatch, algo.max_grad_norm)
    generator = torch.Generator().manual_seed(0)

    def update() -> None:
        update_policy(policy, optimizer, batch, loss_fn=loss_fn, coefs=coefs, plan=plan, generator=generator,
                      fused=fused)  # fmt: skip

    update()  # compiles, or loads the cached graph
    times = []
    for _ in range(5):
        start = time.perf_counter()
        update()
        times.append(time.perf_counter() - start)
    steps = args.batch // args.minibatch * args.epochs
    print(f"{args.src}: {args.env}: {statistics.median(times) * 1e3:.1f} ms per update ({steps} steps)")


if __name__ == "__main__":
    main()
