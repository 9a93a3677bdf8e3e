"""Several processes, one run: the collectives of data-parallel PPO (DD-PPO, Wijmans et al. 2020).

Every process (rank) runs its own envs and a copy of the policy. After each rollout the ranks
merge what their normalizers saw; in each minibatch step they average the flat gradient (one
all-reduce, ``AveragedGradients``), so the parameters stay identical; the target-KL early stop
reads the KL averaged over the ranks, so that every rank stops at the same step (a rank that
stopped alone would leave the others waiting in an all-reduce). Metrics are reduced before they
are logged, and only rank 0 writes.

``Comm`` is what the trainer calls. ``Solo`` is one process: every collective is the identity,
so a single-process run does exactly what it did before. ``TorchComm`` runs them on
``torch.distributed``'s default process group (gloo on CPU, nccl on GPU), which ``init`` sets
up from the variables ``torchrun`` exports.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from datetime import timedelta
from typing import Any, NoReturn, Protocol

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed.distributed_c10d import PrefixStore, Store

from ppokit.core.normalize import MeanVar, RunningNorm, merge_all
from ppokit.core.optim import FlatAdam
from ppokit.errors import ConfigError
from ppokit.runtime import Process

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class Comm(Protocol):
    """The collectives the trainer needs; every rank calls each one, in the same order."""

    process: Process

    def mean_(self, tensor: Tensor) -> Tensor: ...  # in place: the mean over the ranks
    def all_gather(self, obj: Any) -> list[Any]: ...  # every rank's ``obj``, in rank order
    def broadcast_(self, module: nn.Module) -> None: ...  # rank 0's parameters and buffers everywhere


class Solo:
    """One process: every collective is the identity. ``process`` may name another rank, for a
    process that runs as one rank of several without talking to the others (tests of seeding
    and of who writes)."""

    def __init__(self, process: Process | None = None) -> None:
        self.process = process or Process()

    def mean_(self, tensor: Tensor) -> Tensor:
        return tensor

    def all_gather(self, obj: Any) -> list[Any]:
        return [obj]

    def broadcast_(self, module: nn.Module) -> None:
        return None


class TorchComm:
    """The collectives on torch.distributed's default process group."""

    def __init__(self) -> None:
        self.process = Process(dist.get_rank(), dist.get_world_size())

    def mean_(self, tensor: Tensor) -> Tensor:
        dist.all_reduce(tensor)
        return tensor.div_(self.process.world_size)

    def all_gather(self, obj: Any) -> list[Any]:
        gathered: list[Any] = [None] * self.process.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast_(self, module: nn.Module) -> None:
        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)


def launched_by_torchrun() -> bool:
    """Whether this process was started by torchrun (or anything that exports its variables)."""
    return all(name in os.environ for name in TORCHRUN_VARS)


def restart_count() -> int:
    """How often torchrun has restarted this job's processes (``--max-restarts``): 0 on the first
    attempt. A restarted job resumes its run folder from the last checkpoint."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def init(device: str, timeout_s: float) -> TorchComm:
    """Join the process group torchrun set up: gloo for CPU runs, nccl for CUDA. A rendezvous
    that does not complete within ``timeout_s`` raises ConfigError (one line) instead of hanging."""
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if device.startswith("cuda"):
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    timeout = timedelta(seconds=timeout_s)
    try:
        dist.init_process_group(backend, store=_attempt_store(timeout), rank=int(os.environ["RANK"]),
                                world_size=int(os.environ["WORLD_SIZE"]), timeout=timeout)  # fmt: skip
    except (RuntimeError, TimeoutError, dist.DistStoreError) as e:
        where = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
        raise ConfigError("nproc", f"the {os.environ.get('WORLD_SIZE')} processes did not meet at {where} within "
                                   f"{timeout_s:.0f} s ({str(e).splitlines()[0][:120]})") from None  # fmt: skip
    return TorchComm()


def _attempt_store(timeout: timedelta) -> Store:
    """torchrun's store, with this attempt's own key space: after a restart (``--max-restarts``)
    the store can still hold the previous attempt's keys, and a rank that read a dead rank's
    address from them waited for a connection that never came (gloo's "connectFullMesh failed:
    Connection refused", then a hang; pytorch/pytorch#167288). Under torchrun the agent hosts the
    store (every rank a client); otherwise rank 0 does, as torch's own env:// rendezvous."""
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == str(True)
    address, port, world_size = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), int(os.environ["WORLD_SIZE"])
    store = dist.TCPStore(address, port, world_size, is_master=not agent and os.environ["RANK"] == "0",  # type: ignore[attr-defined]
                          timeout=timeout, multi_tenant=not agent)  # fmt: skip
    return PrefixStore(f"ppokit/attempt-{restart_count()}", store)


def check_restarts(max_restarts: int, has_run_dir: bool) -> None:
    """``--max-restarts``: an integer >= 0, and a run folder for a restarted job to resume."""
    if max_restarts < 0:
        raise ConfigError("max_restarts", f"{max_restarts}; allowed: an integer >= 0")
    if max_restarts and not has_run_dir:
        raise ConfigError("max_restarts", "needs --run-dir: a restarted job resumes the run folder it names")


def launch(argv: list[str], nproc: int, max_restarts: int, threads: int) -> int:
    """``ppokit ... --nproc N``: the same command (``argv`` without ``--nproc N``) under torchrun
    (``--standalone``: one machine, a free port), which starts N processes of ``threads`` torch
    threads each and stops them all if one fails; with ``max_restarts`` it starts them again, up
    to that many times. The exit code of torchrun."""
    import subprocess

    rest, given = [], iter(argv)
    for arg in given:
        if arg == "--nproc":
            next(given, None)
        elif not arg.startswith("--nproc="):
            rest.append(arg)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               f"--max-restarts={max_restarts}", "-m", "ppokit", *rest]  # fmt: skip
    env = {"OMP_NUM_THREADS": str(threads)} | dict(os.environ)  # set: torchrun would print a banner about it
    return subprocess.run(command, check=False, env=env).returncode


def shutdown() -> None:
    """Leave the process group tidily: a barrier first, so that no rank tears down while another
    is still in a collective (torch aborts at exit otherwise: "terminate called without an active
    exception")."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def exit_process(code: int) -> NoReturn:
    """End a process of a data-parallel run without the interpreter's teardown, once everything
    is written and closed: at teardown, C++ threads that torch.distributed leaves behind can
    abort the process ("terminate called without an active exception", exit -6; seen here in 1 of
    8 restarted jobs even after a barrier and destroy_process_group), and torchrun then counts a
    finished run as failed. W&B's service is waited for first (its data is written by another
    process)."""
    if "wandb" in sys.modules:
        sys.modules["wandb"].teardown()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class AveragedGradients:
    """``FlatAdam`` whose gradient is averaged over the ranks before it is clipped: one
    all-reduce of the flat gradient per minibatch step. Since each rank's loss is a mean over its
    own minibatch of the same size, the average is the gradient of the mean loss over the union of
    the minibatches; every rank then clips and steps the same gradient from the same parameters."""

    def __init__(self, optimizer: FlatAdam, comm: Comm) -> None:
        self.optimizer, self.comm = optimizer, comm

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()

    def clip_grad_norm(self, max_norm: float) -> Tensor:
        self.comm.mean_(self.optimizer.grad)
        return self.optimizer.clip_grad_norm(max_norm)

    def step(self) -> None:
        self.optimizer.step()


def agreed_mean(comm: Comm, value: Tensor) -> Tensor:
    """A scalar's mean over the ranks (the target-KL stop's KL), as a new float64 tensor."""
    return comm.mean_(value.detach().to(torch.float64).reshape(1).clone())[0]


def sync_normalizer(comm: Comm, norm: RunningNorm, before: MeanVar) -> None:
    """Give every rank the same statistics after a rollout: ``before`` (the statistics every
    rank started the rollout with) merged with the new data of every rank. Each rank sends the
    statistic of its own new data only (``since``), so nothing is counted twice."""
    if not norm.enabled:
        return
    news = comm.all_gather(norm.to_host().since(before))
    norm.load_host(merge_all([before, *news], tuple(norm.mean.shape)))


def reduced_metrics(comm: Comm, metrics: dict[str, float]) -> dict[str, float]:
    """Each metric over the ranks: the least of the ranks' ``*_min``, the greatest of their
    ``*_max``, the mean of the rest (every rank logs the same keys; NaN stays NaN)."""
    if comm.process.world_size == 1 or not metrics:
        return metrics
    keys = sorted(metrics)
    rows = torch.tensor(comm.all_gather([metrics[k] for k in keys]), dtype=torch.float64)  # [ranks, keys]
    reduce = {"_min": torch.amin, "_max": torch.amax}
    return {k: float(reduce.get(k[-4:], torch.mean)(rows[:, i])) for i, k in enumerate(keys)}


def rank_share(total: int, process: Process) -> int:
    """This rank's part of ``total`` items dealt out round-robin (evaluation episodes)."""
    return total // process.world_size + int(process.rank < total % process.world_size)


def union(parts: list[list[Any]]) -> list[Any]:
    """Every rank's list, concatenated in rank order."""
    return [item for part in parts for item in part]


def check_same_weights(comm: Comm, module: nn.Module) -> None:
    """RuntimeError unless every rank holds bit-identical parameters and buffers (checked at every
    checkpoint: ranks that drifted apart would each train a different policy, silently)."""
    if comm.process.world_size == 1:
        return
    digest = hashlib.sha256()
    for tensor in [*module.parameters(), *module.buffers()]:
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digests = comm.all_gather(digest.hexdigest())
    if len(set(digests)) > 1:
        differ = [rank for rank, d in enumerate(digests) if d != digests[0]]
        raise RuntimeError(f"data-parallel ranks {differ} hold other weights than rank 0: they drifted apart")


def any_rank(comm: Comm, flag: bool) -> bool:
    """Whether ``flag`` holds on any rank (a Ctrl-C seen by one rank stops all at the same update)."""
    return bool(comm.mean_(torch.tensor([float(flag)], dtype=torch.float64))[0] > 0)
