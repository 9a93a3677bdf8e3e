"""One policy update of the classic trainer: the shared epoch loop over a flattened rollout.

Every metric is averaged over all minibatch steps actually taken (a target-KL stop ends the
update early; ``minibatch_steps`` says how many were taken).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import torch
from torch import Tensor

from ppokit.classic.batch import Batch
from ppokit.classic.fused import FusedStep
from ppokit.classic.objective import MinibatchLoss, kl_after_update
from ppokit.classic.policy import ActorCritic
from ppokit.core.losses import Coefs
from ppokit.core.update import Optimizer, UpdatePlan, run_epochs

Retarget = Callable[[ActorCritic], tuple[Tensor, Tensor]]  # policy -> fresh flat (advantages, returns)


def update_policy(
    policy: ActorCritic,
    optimizer: Optimizer,
    batch: Batch,
    *,
    loss_fn: MinibatchLoss,
    coefs: Coefs,
    plan: UpdatePlan,
    generator: torch.Generator,
    initial: ActorCritic | None = None,
    retarget: Retarget | None = None,
    critic: bool = True,
    agree: Callable[[Tensor], Tensor] | None = None,
    fused: FusedStep | None = None,
) -> dict[str, float]:
    """Run the epochs of ``plan``; return the metrics averaged over the minibatch steps taken,
    ``minibatch_steps``, ``kl_early_stop``, and the KL the update caused (``kl_after_update``).

    ``retarget(policy)``, if given, returns fresh flat ``(advantages, returns)`` under the
    current critic; it runs before every epoch after the first (recomputed advantages).
    ``critic``: whether the method has one (then ``value_step`` says how far its values moved).
    ``agree``: the early stop's KL as all processes see it (``core.update.run_epochs``).
    ``fused``: the whole minibatch step as one (compiled) function (``classic.fused``) instead
    of ``loss_fn``, backward and ``optimizer``."""
    if not bool(batch.mask.any()):
        # Every step was an autoreset step (one-step episodes, T = 1): no data, no step,
        # since even a zero gradient would move Adam's parameters through its momentum.
        return {"minibatch_steps": 0.0, "kl_early_stop": 0.0, "approx_kl_final": math.nan}

    def before_epoch(epoch: int, b: Batch) -> Batch:
        assert retarget is not None
        advantages, returns = retarget(policy)
        return replace(b, advantages=advantages, returns=returns)

    step = None if fused is None else partial(fused, coefs=coefs, max_norm=plan.max_grad_norm)
    result = run_epochs(batch, lambda mb: loss_fn(policy, mb, coefs), optimizer, plan, generator,
                        before_epoch if retarget is not None else None, agree, step)  # fmt: skip
    metrics = result.metrics | {"minibatch_steps": float(result.steps), "kl_early_stop": float(result.early_stop)}
    return metrics | kl_after_update(policy, batch, initial, critic)
