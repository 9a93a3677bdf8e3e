"""Typed hooks: how benchmarks, tests and users watch (or stop) training without patching.

``train(config, hooks=Hooks(on_rollout=[f]))`` calls ``f(event)`` after every rollout, with
the rollout, its batch and the state, before the update uses them; ``on_update`` after every
update with its metrics; ``on_eval`` after every periodic evaluation (``eval_every``) with its
record; ``on_start`` once, with the state, just before the first update of this call (after a
resume: the first update after the checkpoint). A hook reads; to stop a run early it raises,
and what was checkpointed stays (``stop_after`` stops cleanly with a checkpoint).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ppokit.classic.batch import Batch
from ppokit.classic.rollout import Episodes, Rollout

if TYPE_CHECKING:  # the state imports the trainer's parts; a hook only reads it
    from ppokit.classic.objective import MinibatchLoss
    from ppokit.classic.state import TrainState


@dataclass(frozen=True)
class RolloutEvent:
    """A rollout has been collected and turned into a batch; the update has not run yet."""

    state: TrainState
    rollout: Rollout
    episodes: Episodes
    batch: Batch
    loss_fn: MinibatchLoss  # what the update will call per minibatch (compiled with ``compile``)


@dataclass(frozen=True)
class UpdateEvent:
    """An update has run; ``metrics`` is what is logged for it."""

    state: TrainState
    metrics: dict[str, float]


@dataclass(frozen=True)
class EvalEvent:
    """A periodic evaluation (``eval_every``) has run; ``record`` is its line of evals.jsonl."""

    state: TrainState
    record: dict[str, float]


@dataclass(frozen=True)
class Hooks:
    on_start: Sequence[Callable[[TrainState], None]] = field(default_factory=tuple)
    on_rollout: Sequence[Callable[[RolloutEvent], None]] = field(default_factory=tuple)
    on_update: Sequence[Callable[[UpdateEvent], None]] = field(default_factory=tuple)
    on_eval: Sequence[Callable[[EvalEvent], None]] = field(default_factory=tuple)

    def start(self, state: TrainState) -> None:
        for hook in self.on_start:
            hook(state)

    def rollout(self, event: RolloutEvent) -> None:
        for hook in self.on_rollout:
            hook(event)

    def updated(self, event: UpdateEvent) -> None:
        for hook in self.on_update:
            hook(event)

    def evaluated(self, event: EvalEvent) -> None:
        for hook in self.on_eval:
            hook(event)
