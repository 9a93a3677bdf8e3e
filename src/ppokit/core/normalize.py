"""Running mean and variance that can be merged, and the normalizer module that holds them.

A statistic is ``(mean, var, count)``; two statistics of disjoint data combine exactly into
the statistic of their union (Chan, Golub & LeVeque 1979, "Updating formulae and a pairwise
algorithm for computing sample variances"). Adding a batch is merging the batch's own
statistic, so one formula serves a rollout's step-by-step updates and, later, several
processes combining what each of them saw.

Pure torch and numpy: nothing here knows about environments.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn


@dataclass
class MeanVar:
    """Running mean and (population) variance as host (numpy float64) arrays: the per-step path.

    A rollout steps the normalizers of observations and returns once per env step on host
    data; numpy does that in a few microseconds where a dozen tiny torch ops take ~100.
    ``RunningNorm`` hands its statistics out with ``to_host`` and takes them back with
    ``load_host`` once per rollout, so its buffers stay the saved source of truth.
    """

    mean: np.ndarray
    var: np.ndarray
    count: float

    @classmethod
    def empty(cls, shape: tuple[int, ...]) -> MeanVar:
        """The statistic of no data: merging it changes nothing."""
        return cls(np.zeros(shape), np.ones(shape), 0.0)

    @classmethod
    def of(cls, x: np.ndarray, shape: tuple[int, ...]) -> MeanVar:
        """The statistic of a batch ``[..., *shape]``: every leading index is one sample."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, *shape)
        if x.shape[0] == 0:
            return cls.empty(shape)
        return cls(x.mean(0), x.var(0), float(x.shape[0]))

    def merge(self, other: MeanVar) -> MeanVar:
        """The statistic of the union of the data of ``self`` and ``other`` (``chan_merge``).

        Both sides must describe *disjoint* data: merging two statistics that share a history
        (two processes that both started from the same saved statistic) counts it twice, so
        processes should exchange the statistics of their new data only.
        """
        if other.count == 0:
            return MeanVar(self.mean, self.var, self.count)
        if self.count == 0:  # exactly ``other`` (the formula would round mu_a + (mu_b - mu_a))
            return MeanVar(other.mean, other.var, other.count)
        return MeanVar(*chan_merge(self.mean, self.var, self.count, other.mean, other.var, other.count))

    def since(self, earlier: MeanVar) -> MeanVar:
        """The statistic of the data merged into ``earlier`` to make this one: ``merge`` undone
        (``earlier.merge(self.since(earlier))`` is ``self``). Processes that start a rollout from
        the same statistic exchange these, so that no one's history is counted twice. With
        n = n_a + n_b, mu_b = (n mu - n_a mu_a) / n_b and, from Chan's formula,
        var_b = (n var - n_a var_a - delta^2 n_a n_b / n) / n_b with delta = mu_b - mu_a."""
        count = self.count - earlier.count
        if count <= 0:
            return MeanVar.empty(self.mean.shape)
        mean = (self.count * self.mean - earlier.count * earlier.mean) / count
        delta = mean - earlier.mean
        m2 = self.count * self.var - earlier.count * earlier.var - delta * delta * earlier.count * count / self.count
        return MeanVar(mean, np.maximum(m2 / count, 0.0), count)

    def update(self, x: np.ndarray) -> None:
        """Merge a batch ``[..., *shape]`` into this statistic, in place: ``merge`` with the
        batch's statistic, without building it (this runs once per env step)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, *self.mean.shape)
        if x.shape[0] == 0:
            return
        merged = chan_merge(self.mean, self.var, self.count, x.mean(0), x.var(0), float(x.shape[0]))
        self.mean, self.var, self.count = merged

    def normalize(self, x: np.ndarray, clip: float) -> np.ndarray:
        """(x - mu) / sigma clipped to [-clip, clip], as float32 (``RunningNorm.forward``)."""
        out: np.ndarray = np.clip((x - self.mean) / np.sqrt(self.var + 1e-8), -clip, clip).astype(np.float32)
        return out

    def std(self) -> float:
        """sqrt(var + 1e-8) of a scalar statistic (the return normalizer)."""
        return float(np.sqrt(float(self.var) + 1e-8))


def chan_merge(
    mean_a: np.ndarray, var_a: np.ndarray, count_a: float, mean_b: np.ndarray, var_b: np.ndarray, count_b: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean, population variance and count of the union of two disjoint data sets (Chan,
    Golub & LeVeque 1979). With n = n_a + n_b, w = n_b / n and delta = mu_b - mu_a:

        mu = mu_a + delta w,    var = var_a (1 - w) + var_b w + delta^2 w (1 - w).

    ``n`` must be positive.
    """
    total = count_a + count_b
    w = count_b / total  # the weight of b in the merged statistic
    delta = mean_b - mean_a
    var = var_a * (1.0 - w) + var_b * w + delta * delta * (w * (1.0 - w))
    return mean_a + delta * w, var, total


def merge_all(stats: Iterable[MeanVar], shape: tuple[int, ...]) -> MeanVar:
    """The statistic of the union of several disjoint statistics (e.g. one per process),
    folded left to right; the empty statistic when there are none."""
    merged = MeanVar.empty(shape)
    for s in stats:
        merged = merged.merge(s)
    return merged


class RunningNorm(nn.Module):
    """Running mean and variance (Chan et al. parallel update), applied as (x - mu) / sigma.

    The statistics are float64 buffers, so they live in the owner's ``state_dict`` (a saved
    policy carries the normalization it was trained with). They start at mean 0, var 1 with a
    pseudo-count of 1e-4, as SB3's ``RunningMeanStd`` does. With ``enabled=False`` it is the
    identity and never updates.
    """

    mean: Tensor
    var: Tensor
    count: Tensor

    def __init__(self, shape: tuple[int, ...], enabled: bool, clip: float = 10.0) -> None:
        super().__init__()
        self.enabled = enabled
        self.clip = clip
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    def to_host(self) -> MeanVar:
        """A host copy of the statistics, for a rollout to update step by step."""
        return MeanVar(self.mean.cpu().numpy().copy(), self.var.cpu().numpy().copy(), float(self.count))

    @torch.no_grad()
    def load_host(self, stats: MeanVar) -> None:
        """Take back the statistics a rollout updated (one copy per buffer)."""
        self.mean.copy_(torch.as_tensor(stats.mean))
        self.var.copy_(torch.as_tensor(stats.var))
        self.count.fill_(stats.count)

    def merge_stats(self, other: MeanVar) -> None:
        """Merge the statistic of data this normalizer has not seen (another process's share
        of a rollout, say) into the buffers; a disabled normalizer ignores it."""
        if self.enabled:
            self.load_host(self.to_host().merge(other))

    def update(self, x: Tensor) -> None:
        """Merge a batch ``[..., *shape]`` of observations into the statistics."""
        self.merge_stats(MeanVar.of(x.detach().cpu().numpy(), tuple(self.mean.shape)))

    def forward(self, x: Tensor) -> Tensor:
        if not self.enabled:
            return x
        std = torch.sqrt(self.var + 1e-8)
        return ((x - self.mean) / std).clamp(-self.clip, self.clip).to(x.dtype)
