"""A language-model run in several processes (data-parallel, ``ppokit lm train --nproc N``):
what each rank holds of its own, and the checks that keep the ranks one run.

Every rank runs the same supervised stage from the same seed (so the references agree), then
samples its own prompts and completions: rank r's RNGs are re-seeded with ``seed + r *
SEED_STRIDE`` after the stage (rank 0 keeps its streams, so one process runs as before). Group
advantages stay within a rank (a group is one prompt's completions); PPO whitens its advantages
over each rank's minibatch, as the classic trainer does. The gradient is averaged by
``DistributedDataParallel`` (``ppokit.lm.policy.replicate``); metrics are averaged over the
ranks before they are logged; rank 0 writes.
"""

from __future__ import annotations

import io
import random
from typing import Any

import torch

from ppokit.lm.checkpoint import rng_state
from ppokit.lm.policy import Policy
from ppokit.parallel import Comm, check_same_weights


def seed_rank(comm: Comm, seed: int, rng: random.Random, generator: torch.Generator) -> None:
    """Give rank r > 0 its own prompts, samples and shuffles (``Process.seed``)."""
    if comm.process.rank == 0:
        return
    own = comm.process.seed(seed)
    rng.seed(own)
    torch.manual_seed(own)
    generator.manual_seed(own)


def gathered_rngs(comm: Comm, rng: random.Random, generator: torch.Generator) -> list[dict[str, Any]]:
    """Every rank's RNG state (``rng_state``), in rank order, for the checkpoint."""
    mine = rng_state(rng, generator)
    if comm.process.world_size == 1:
        return [mine]
    buffer = io.BytesIO()
    torch.save(mine, buffer)  # tensors travel as torch's own bytes
    return [torch.load(io.BytesIO(part), weights_only=True) for part in comm.all_gather(buffer.getvalue())]


def check_replicas(comm: Comm, policy: Policy) -> None:
    """RuntimeError unless every rank's model, value head and critic are bit-identical."""
    for module in policy.trainable():
        check_same_weights(comm, module)
