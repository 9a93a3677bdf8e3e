"""Process-wide side effects, each aware of its process's rank.

Under several processes (data-parallel training) each side effect means something different
per process: the seed must differ per rank so that envs do not repeat each other, only rank 0
writes the run folder, and torch's thread count is a process-wide setting that ``train()``
should restore for a library caller. ``Process()`` is the single-process default (rank 0 of 1),
under which everything is as before.
"""

from __future__ import annotations

import random
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

import numpy as np
import torch

SEED_STRIDE = 1_000_033  # rank r seeds with seed + r * SEED_STRIDE (a prime: no overlap with offsets)


@dataclass(frozen=True)
class Process:
    """This process's place among the processes of one run."""

    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if not (self.world_size >= 1 and 0 <= self.rank < self.world_size):
            raise ValueError(f"Process: rank {self.rank} of world_size {self.world_size}; allowed: 0 <= rank < size")

    @property
    def writes(self) -> bool:
        """Only rank 0 writes the run folder (config, metrics, checkpoints, evaluations)."""
        return self.rank == 0

    def seed(self, seed: int) -> int:
        """This rank's seed: ``seed`` itself on rank 0, so one process runs as before."""
        return seed + self.rank * SEED_STRIDE


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` intra-op threads (0: leave torch's setting) and restore the caller's."""
    previous = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n > 0:
            torch.set_num_threads(previous)


class GracefulInterrupt:
    """First Ctrl-C: finish the update, checkpoint, stop. Second Ctrl-C: abort at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nppokit: stopping after this update and writing a checkpoint (Ctrl-C again to abort)")

    def __enter__(self) -> GracefulInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
