"""The shared epoch loop and metric accumulator on a toy problem with no policy at all:
what the loop owns (steps, shuffling, early stop, averaging) is independent of the trainer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import pytest
import torch
from torch import Tensor

from ppokit.core.metrics import MeanAccumulator, Stacked
from ppokit.core.update import UpdatePlan, run_epochs


@dataclass
class Points:
    x: Tensor

    @property
    def device(self) -> torch.device:
        return self.x.device

    def __len__(self) -> int:
        return self.x.shape[0]

    def select(self, index: Tensor | slice) -> Self:
        return type(self)(self.x[index])


class Recorder:
    """A one-parameter 'optimizer' that records what the loop asks of it."""

    def __init__(self, w: Tensor) -> None:
        self.w, self.calls = w, []  # type: ignore[var-annotated]  # mixed records

    def zero_grad(self) -> None:
        self.calls.append("zero")
        self.w.grad = None

    def clip_grad_norm(self, max_norm: float) -> Tensor:
        self.calls.append("clip")
        assert self.w.grad is not None
        return self.w.grad.norm()

    def step(self) -> None:
        self.calls.append("step")
        with torch.no_grad():
            assert self.w.grad is not None
            self.w -= 0.1 * self.w.grad


def test_steps_shuffle_and_average_every_step() -> None:
    w = torch.zeros((), requires_grad=True)
    opt = Recorder(w)
    seen: list[list[float]] = []

    def loss_fn(mb: Points) -> tuple[Tensor, dict[str, Tensor]]:
        seen.append(mb.x.tolist())
        loss = ((w - mb.x) ** 2).mean()
        return loss, {"loss": loss.detach(), "batch_mean": mb.x.mean()}

    batch = Points(torch.arange(6, dtype=torch.float32))
    result = run_epochs(batch, loss_fn, opt, UpdatePlan(2, 3, 1.0), torch.Generator().manual_seed(0))
    assert result.steps == 4 and not result.early_stop
    assert opt.calls == ["zero", "clip", "step"] * 4
    # Each epoch covers every point once, in a shuffled order.
    assert sorted(seen[0] + seen[1]) == [0, 1, 2, 3, 4, 5] and sorted(seen[2] + seen[3]) == [0, 1, 2, 3, 4, 5]
    assert seen[0] + seen[1] != [0, 1, 2, 3, 4, 5] or seen[2] + seen[3] != [0, 1, 2, 3, 4, 5]
    # Every metric is the mean over the 4 steps, not the last step's value.
    assert result.metrics["batch_mean"] == pytest.approx(sum(sum(s) / 3 for s in seen) / 4)
    assert set(result.metrics) == {"loss", "batch_mean", "grad_norm"}


def test_early_stop_is_checked_before_the_offending_step() -> None:
    w = torch.zeros((), requires_grad=True)
    opt = Recorder(w)
    kl = iter([0.0, 0.5, 0.9])

    def loss_fn(mb: Points) -> tuple[Tensor, dict[str, Tensor]]:
        return (w * mb.x).sum(), {"approx_kl": torch.tensor(next(kl))}

    plan = UpdatePlan(epochs=3, minibatch_size=2, max_grad_norm=1.0, target_kl=0.4)
    result = run_epochs(Points(torch.ones(2)), loss_fn, opt, plan, torch.Generator().manual_seed(0))
    assert result.early_stop and result.steps == 1
    assert opt.calls == ["zero", "clip", "step"]  # the second minibatch (KL 0.5) took no step
    assert result.metrics["approx_kl"] == 0.0


def test_before_epoch_replaces_the_batch_after_the_first_epoch() -> None:
    w = torch.zeros((), requires_grad=True)
    epochs: list[int] = []

    def before(epoch: int, b: Points) -> Points:
        epochs.append(epoch)
        return Points(b.x + 10.0)

    means: list[float] = []

    def loss_fn(mb: Points) -> tuple[Tensor, dict[str, Tensor]]:
        means.append(float(mb.x.mean()))
        return (w * mb.x).sum(), {"x": mb.x.mean()}

    run_epochs(Points(torch.zeros(4)), loss_fn, Recorder(w), UpdatePlan(3, 4, 1.0), torch.Generator(), before)
    assert epochs == [1, 2] and means == [0.0, 10.0, 20.0]


def test_accumulator_means_and_refuses_changing_names() -> None:
    acc = MeanAccumulator()
    assert acc.means() == {}
    acc.add({"a": torch.tensor(1.0), "b": torch.tensor(10.0)})
    acc.add({"a": torch.tensor(3.0), "b": torch.tensor(20.0)})
    assert acc.means() == {"a": 2.0, "b": 15.0} and acc.steps == 2
    with pytest.raises(ValueError, match="expected"):
        acc.add({"a": torch.tensor(1.0)})
    # A compiled step's metrics come stacked already: the same sums, the same name check.
    acc.add(Stacked(("a", "b"), torch.tensor([5.0, 30.0], dtype=torch.float64)))
    assert acc.means() == {"a": 3.0, "b": 20.0} and acc.steps == 3
    with pytest.raises(ValueError, match="expected"):
        acc.add(Stacked(("b", "a"), torch.zeros(2, dtype=torch.float64)))
    first = Stacked.of({"x": torch.tensor(2.0)})
    fresh = MeanAccumulator()
    fresh.add(first)
    first.vector.add_(100.0)  # the accumulator keeps its own totals, not the step's tensor
    assert fresh.means() == {"x": 2.0} and first.names == ("x",) and first.vector.dtype == torch.float64


def test_select_rows_indexes_every_tensor_field_and_keeps_the_rest() -> None:
    from ppokit.core.update import select_rows

    @dataclass
    class Rows:
        a: Tensor
        b: Tensor
        start: int

    batch = Rows(torch.arange(4), torch.arange(8).view(4, 2), start=3)
    picked = select_rows(batch, torch.tensor([2, 0]))
    assert picked.a.tolist() == [2, 0] and picked.b.tolist() == [[4, 5], [0, 1]] and picked.start == 3
    assert select_rows(batch, slice(1, 3)).a.tolist() == [1, 2]
