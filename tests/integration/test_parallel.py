"""The collectives of data-parallel training (``ppokit.parallel``) in two real processes on gloo:
the averaged gradient is the gradient over the union of the minibatches, the merged normalizer
statistics are those of the union of the data, the KL of the early stop is one number on every
rank, and rank 0's parameters reach every rank."""

from __future__ import annotations

import pickle
import socket
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ppokit import parallel
from ppokit.classic.batch import Batch
from ppokit.classic.objective import make_minibatch_loss
from ppokit.classic.policy import ActorCritic
from ppokit.config import AlgoConfig, PolicyConfig
from ppokit.core.losses import Coefs
from ppokit.core.normalize import MeanVar, RunningNorm
from ppokit.core.optim import FlatAdam
from ppokit.methods import METHODS

OBS = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
SIZE = 32  # each rank's minibatch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_policy(kind: str, seed: int) -> ActorCritic:
    torch.manual_seed(seed)
    space = gym.spaces.Discrete(3) if kind == "discrete" else gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    return ActorCritic(OBS, space, PolicyConfig(hidden_sizes=(16, 16)))


def make_batch(policy: ActorCritic, seed: int) -> Batch:
    """A minibatch as the behaviour policy would have produced it, advantages far from 1."""
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(SIZE, 4, generator=gen)
    with torch.no_grad():
        params, values = policy(obs)
        torch.manual_seed(seed)
        actions = policy.head.sample(params)
        logprobs = policy.head.log_prob(params, actions) + 0.3 * torch.randn(SIZE, generator=gen)  # ratios != 1
    advantages = 3.0 * torch.randn(SIZE, generator=gen)
    return Batch(obs, actions, logprobs, values, advantages, values + advantages, torch.ones(SIZE))


def gradient(policy: ActorCritic, batch: Batch, comm: parallel.Comm) -> torch.Tensor:
    """The clipped-surrogate loss's gradient (no advantage normalization: it would be per rank)."""
    algo = AlgoConfig(norm_adv=False)
    loss_fn = make_minibatch_loss(METHODS["ppo"], algo)
    optimizer = parallel.AveragedGradients(FlatAdam(policy, 1e-3, 1e-5), comm)
    optimizer.zero_grad()
    loss, _ = loss_fn(policy, batch, Coefs(0.01, 0.2, 0.2))
    loss.backward()  # type: ignore[no-untyped-call]
    optimizer.clip_grad_norm(1e9)
    return optimizer.optimizer.grad.clone()


def worker(rank: int, port: int, folder: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    comm = parallel.TorchComm()
    out: dict[str, Any] = {}
    for kind in ("discrete", "gaussian"):
        policy = make_policy(kind, seed=0)
        out[f"grad_{kind}"] = gradient(policy, make_batch(policy, seed=10 + rank), comm)
    # Normalizers: one shared start, then each rank's own data, then the merge.
    start = MeanVar.of(np.random.default_rng(0).normal(1.0, 2.0, (40, 3)), (3,))
    norm = RunningNorm((3,), enabled=True)
    norm.load_host(start)
    mine = np.random.default_rng(100 + rank).normal(rank, 1.0 + rank, (25 + 10 * rank, 3))
    host = norm.to_host()
    for row in mine:
        host.update(row[None])
    norm.load_host(host)
    parallel.sync_normalizer(comm, norm, start)
    out["norm"] = (norm.mean.numpy().copy(), norm.var.numpy().copy(), float(norm.count))
    out["kl"] = float(parallel.agreed_mean(comm, torch.tensor(0.01 + 0.02 * rank)))
    out["metrics"] = parallel.reduced_metrics(comm, {"loss": float(rank), "kl": 2.0 * rank, "length_min": 3.0 - rank,
                                                      "length_max": 5.0 + rank})  # fmt: skip
    moved = make_policy("discrete", seed=rank)  # different weights on each rank
    comm.broadcast_(moved)
    out["broadcast"] = torch.cat([p.detach().reshape(-1) for p in moved.parameters()])
    (Path(folder) / f"rank{rank}.pkl").write_bytes(pickle.dumps(out))
    parallel.shutdown()


def test_two_gloo_ranks_average_gradients_merge_statistics_and_agree(tmp_path: Path) -> None:
    mp.spawn(worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [pickle.loads((tmp_path / f"rank{r}.pkl").read_bytes()) for r in range(2)]
    for kind in ("discrete", "gaussian"):
        # The single-process gradient over the concatenated minibatch (the mean loss over 64).
        policy = make_policy(kind, seed=0)
        halves = [make_batch(policy, seed=10 + r) for r in range(2)]
        whole = Batch(*(torch.cat([getattr(h, f) for h in halves]) for f in
                        ("obs", "actions", "logprobs", "values", "advantages", "returns", "mask")))  # fmt: skip
        expected = gradient(policy, whole, parallel.Solo())
        for rank in ranks:
            torch.testing.assert_close(rank[f"grad_{kind}"], expected, rtol=1e-5, atol=1e-7)
        assert float(expected.norm()) > 0.1  # a real gradient, not zeros
    shares = [np.random.default_rng(100 + r).normal(r, 1.0 + r, (25 + 10 * r, 3)) for r in range(2)]
    union = np.concatenate([np.random.default_rng(0).normal(1.0, 2.0, (40, 3)), *shares])
    for rank in ranks:
        mean, var, count = rank["norm"]
        np.testing.assert_allclose(mean, union.mean(0), rtol=1e-10)
        np.testing.assert_allclose(var, union.var(0), rtol=1e-10)
        assert count == len(union)
    assert ranks[0]["kl"] == ranks[1]["kl"] == pytest.approx(0.02)  # (0.01 + 0.03) / 2 on both
    assert ranks[0]["metrics"] == ranks[1]["metrics"] == {"kl": 1.0, "loss": 0.5, "length_min": 2.0, "length_max": 6.0}
    torch.testing.assert_close(ranks[1]["broadcast"], ranks[0]["broadcast"], rtol=0, atol=0)
    rank1_own = torch.cat([p.detach().reshape(-1) for p in make_policy("discrete", 1).parameters()])
    assert not torch.equal(ranks[1]["broadcast"], rank1_own)  # rank 1 really had other weights
