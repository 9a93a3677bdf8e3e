"""Metric accumulation over an update's minibatch steps, and the critic's fit.

Every metric of an update is the mean over all minibatch steps taken, never the last one's.
The accumulator keeps the running sums on the device and syncs with the host once, at the end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Stacked:
    """Named scalar metrics already stacked into one float64 vector, in the order of ``names``
    (a compiled step returns its metrics so: the stacking is inside its graph)."""

    names: tuple[str, ...]
    vector: Tensor

    @classmethod
    def of(cls, values: Mapping[str, Tensor]) -> Stacked:
        return cls(tuple(values), torch.stack([v.detach() for v in values.values()]).double())


class MeanAccumulator:
    """Sums named scalar tensors step by step; ``means()`` divides by the steps, one host sync.

    Every step must name the same metrics (the first step fixes them)."""

    def __init__(self) -> None:
        self.names: tuple[str, ...] = ()
        self.steps = 0
        self._totals: Tensor | None = None

    def add(self, values: Mapping[str, Tensor] | Stacked) -> None:
        stacked = values if isinstance(values, Stacked) else Stacked.of(values)
        if self._totals is None:
            self.names, self._totals = stacked.names, stacked.vector.clone()
        else:
            if stacked.names != self.names:
                raise ValueError(f"MeanAccumulator: got metrics {stacked.names}, expected {self.names}")
            self._totals += stacked.vector
        self.steps += 1

    def means(self) -> dict[str, float]:
        """Each metric's mean over the steps added (empty before the first)."""
        if self._totals is None:
            return {}
        return dict(zip(self.names, (self._totals / self.steps).tolist(), strict=True))


def explained_variance(y_pred: Tensor, y_true: Tensor, mask: Tensor) -> float:
    """1 - Var[y - y_pred] / Var[y] over the masked samples: 1 is perfect, 0 no better than a
    constant, < 0 worse. NaN when Var[y] is 0 or nothing is unmasked."""
    m = mask.bool()
    y, p = y_true[m].double(), y_pred[m].double()
    if y.numel() == 0:
        return float("nan")
    var_y = y.var(unbiased=False)
    if var_y == 0:
        return float("nan")
    return float(1.0 - (y - p).var(unbiased=False) / var_y)


def correlation(y_pred: Tensor, y_true: Tensor, mask: Tensor) -> float:
    """Pearson's correlation of ``y_pred`` and ``y_true`` over the masked samples: whether the
    predictions track the targets at all, whatever their scale (a critic that learns follows its
    targets' ups and downs long before it fits their size). NaN when either side is constant or
    nothing is unmasked."""
    m = mask.bool()
    y, p = y_true[m].double(), y_pred[m].double()
    if y.numel() == 0:
        return float("nan")
    y, p = y - y.mean(), p - p.mean()
    scale = torch.sqrt(y.square().sum() * p.square().sum())
    return float((y * p).sum() / scale) if scale > 0 else float("nan")
