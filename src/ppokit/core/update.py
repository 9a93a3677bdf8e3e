"""The update loop every trainer shares: epochs of shuffled minibatches, one optimizer step each.

What a step optimizes is the caller's ``loss_fn``; what a batch is, the caller's too (anything
with ``len`` and ``select``). The loop owns what every PPO-family update does the same way:
one shuffle per epoch, zero / backward / clip / step per minibatch, the target-KL early stop
(checked before the step that would leave the trust region), and metrics averaged over every
step taken.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Protocol, Self, TypeVar

import torch
from torch import Tensor

from ppokit.core.metrics import MeanAccumulator, Stacked


class Minibatchable(Protocol):
    """A batch the loop can shuffle and slice: ``select`` gathers an index or views a slice."""

    @property
    def device(self) -> torch.device: ...
    def __len__(self) -> int: ...
    def select(self, index: Tensor | slice) -> Self: ...


class Optimizer(Protocol):
    """What the loop needs of an optimizer (``ppokit.core.optim.FlatAdam`` has it)."""

    def zero_grad(self) -> None: ...
    def clip_grad_norm(self, max_norm: float) -> Tensor: ...
    def step(self) -> None: ...


B = TypeVar("B", bound=Minibatchable)
D = TypeVar("D")


def select_rows(batch: D, index: Tensor | slice) -> D:
    """A dataclass batch with every tensor field indexed along its first axis (other fields,
    such as a prompt length, kept): the ``select`` of batches whose fields are all per-row."""
    rows = {f.name: value[index] for f in fields(batch)  # type: ignore[arg-type]  # batch is a dataclass
            if isinstance(value := getattr(batch, f.name), Tensor)}  # fmt: skip
    return replace(batch, **rows)  # type: ignore[type-var]  # batch is a dataclass


@dataclass(frozen=True)
class UpdatePlan:
    epochs: int
    minibatch_size: int
    max_grad_norm: float
    target_kl: float | None = None  # stop the epochs when a minibatch's KL metric exceeds this
    kl_metric: str = "approx_kl"  # the loss_fn metric the early stop reads


@dataclass
class UpdateResult:
    metrics: dict[str, float]  # each loss metric and grad_norm, averaged over the steps taken
    steps: int
    early_stop: bool


def run_epochs(
    batch: B,
    loss_fn: Callable[[B], tuple[Tensor, Mapping[str, Tensor]]],  # minibatch -> (loss, named metrics)
    optimizer: Optimizer,
    plan: UpdatePlan,
    generator: torch.Generator,
    before_epoch: Callable[[int, B], B] | None = None,
    agree: Callable[[Tensor], Tensor] | None = None,
    step: Callable[[B, Tensor], Mapping[str, Tensor] | Stacked] | None = None,
) -> UpdateResult:
    """Run ``plan.epochs`` epochs over ``batch``; ``before_epoch(epoch, batch)``, if given,
    may return a new batch before every epoch after the first (recomputed advantages).
    ``agree(kl)``, if given, turns a minibatch's KL into the one every process decides the early
    stop on (its mean over the processes of data-parallel training). ``step(batch, index)``, if
    given, is the whole minibatch step in one call on the rows ``index`` of ``batch`` (the
    gather, the loss, its gradient, clipping and the optimizer's step;
    ``ppokit.classic.fused``), returning the metrics with ``grad_norm``; it takes no target-KL
    stop (that needs the KL before the step)."""
    if step is not None and plan.target_kl is not None:
        raise ValueError("run_epochs: a fused step cannot stop on the target KL before stepping")
    size = len(batch)
    totals = MeanAccumulator()
    kl_stop = False
    for epoch in range(plan.epochs):
        if before_epoch is not None and epoch > 0:
            batch = before_epoch(epoch, batch)
        order = torch.randperm(size, generator=generator).to(batch.device)
        if step is not None:  # the step gathers its rows itself, inside its graph
            for start in range(0, size, plan.minibatch_size):
                totals.add(step(batch, order[start : start + plan.minibatch_size]))
            continue
        # One gather per epoch into shuffled order; each minibatch is then a contiguous view.
        shuffled = batch.select(order)
        for start in range(0, size, plan.minibatch_size):
            loss, metrics = loss_fn(shuffled.select(slice(start, start + plan.minibatch_size)))
            if plan.target_kl is not None:
                kl = metrics[plan.kl_metric] if agree is None else agree(metrics[plan.kl_metric])
                if float(kl) > plan.target_kl:
                    kl_stop = True  # the policy left the trust region: stop before this step
                    break
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]  # torch stub gap
            grad_norm = optimizer.clip_grad_norm(plan.max_grad_norm)
            optimizer.step()
            totals.add({**metrics, "grad_norm": grad_norm})
        if kl_stop:
            break
    return UpdateResult(totals.means(), totals.steps, kl_stop)
