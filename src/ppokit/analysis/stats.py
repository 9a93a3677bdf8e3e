"""Multi-seed statistics: robust aggregates, bootstrap confidence intervals, curve scores.

Follows Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the Statistical
Precipice" (NeurIPS; the ``rliable`` library): report the interquartile mean (IQM) over
seeds with a (stratified) percentile-bootstrap confidence interval, not a mean +- std.
Resampling is done by ``scipy.stats.bootstrap``, not by hand-written loops.

Shapes: one task's scores are a 1-D array ``[n_seeds]``; several tasks are a list of such
arrays, one per task (the seed counts may differ). A learning curve is two 1-D arrays
``(steps [T], values [T])`` with NaN where the value is undefined (no episode finished yet).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats  # type: ignore[import-untyped]  # scipy ships no py.typed; scipy-stubs is not a dependency

FloatArray = npt.NDArray[np.float64]
Statistic = Callable[[FloatArray], float]
"""An aggregate: 1-D array of per-seed scores -> float (``mean``, ``median``, ``iqm``, ...)."""
Scores = npt.ArrayLike | Sequence[npt.ArrayLike]
"""One task's scores ``[n_seeds]``, or a list of them (one 1-D array per task)."""
Method = Literal["percentile", "bca"]

# --- aggregates ------------------------------------------------------------------------------


def _as_1d(x: npt.ArrayLike, what: str) -> FloatArray:
    """``x`` as a non-empty, finite, 1-D float64 array, or a ValueError naming ``what``."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: not a numeric array ({e})") from None
    if arr.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D array of per-seed scores, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{what}: empty array (need at least one score)")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: scores must be finite, got {arr[~np.isfinite(arr)][:3].tolist()}")
    return arr


def _trim_quartiles(x: FloatArray, axis: int = -1) -> FloatArray:
    return np.asarray(stats.trim_mean(x, 0.25, axis=axis), dtype=np.float64)


def iqm(x: npt.ArrayLike) -> float:
    """Interquartile mean: the mean of the middle 50% of the scores (Agarwal et al. 2021).

        IQM(x) = mean(sorted(x)[k : n - k]),   k = floor(0.25 * n)

    ``scipy.stats.trim_mean(x, 0.25)``, as rliable computes it: whole scores are cut, so for
    n < 4 nothing is cut (the mean) and for n = 4 it is the mean of the two middle scores.
    Robust to outlier seeds, yet less noisy than the median.
    """
    return float(_trim_quartiles(_as_1d(x, "iqm")))


def mean(x: npt.ArrayLike) -> float:
    """Arithmetic mean of the scores, ``sum(x) / n``."""
    return float(np.mean(_as_1d(x, "mean")))


def median(x: npt.ArrayLike) -> float:
    """Median of the scores (mean of the two middle scores when n is even)."""
    return float(np.median(_as_1d(x, "median")))


# scipy calls the statistic on a whole batch of resamples at once (``vectorized=True``);
# these are the batch forms of the built-in aggregates. Any other statistic is applied row
# by row (correct, slower).
_ALONG_LAST_AXIS: dict[Statistic, Callable[[FloatArray], FloatArray]] = {
    mean: lambda x: np.asarray(np.mean(x, axis=-1)),
    median: lambda x: np.asarray(np.median(x, axis=-1)),
    iqm: _trim_quartiles,
}


def _along_last_axis(statistic: Statistic) -> Callable[[FloatArray], FloatArray]:
    """``statistic`` applied to every 1-D slice along the last axis of ``[..., n]``."""
    batched = _ALONG_LAST_AXIS.get(statistic)
    if batched is not None:
        return batched
    return lambda x: np.asarray(np.apply_along_axis(statistic, -1, x), dtype=np.float64)


# --- bootstrap confidence intervals ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate with its bootstrap confidence interval ``[low, high]``.

    ``n`` is the number of scores it was computed from (all tasks', both groups' seeds).
    """

    point: float
    low: float
    high: float
    confidence: float
    n: int


def _as_tasks(scores: Scores) -> list[FloatArray]:
    """Split ``scores`` into one 1-D array per task (a flat sequence is a single task)."""
    if isinstance(scores, np.ndarray):
        if scores.ndim != 1:
            raise ValueError(
                f"scores: expected a 1-D array [n_seeds] or a list of 1-D arrays (one per task), "
                f"got an array of shape {scores.shape}; pass list(matrix) for one task per row"
            )
        return [_as_1d(scores, "scores")]
    if isinstance(scores, Sequence) and len(scores) > 0 and all(np.ndim(s) == 1 for s in scores):
        return [_as_1d(s, f"scores[{i}]") for i, s in enumerate(scores)]
    return [_as_1d(scores, "scores")]  # type: ignore[arg-type]  # a flat sequence or scalar; _as_1d checks


def _check_bootstrap_args(confidence: float, n_resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")


def _bootstrap_interval(
    samples: list[FloatArray],
    combine: Callable[[list[FloatArray]], FloatArray],
    confidence: float,
    n_resamples: int,
    seed: int,
    method: Method,
) -> tuple[float, float] | None:
    """CI of ``combine(samples)`` resampling each sample independently (``paired=False``).

    ``combine`` maps the samples ``[..., n_i]`` to the statistic ``[...]``. A sample of one
    score has a single bootstrap resample, itself, so it is held fixed (scipy requires two
    or more). BCa falls back to percentile where it is undefined (e.g. a statistic such as
    max whose bootstrap distribution has an atom), without letting scipy's warnings leak.
    None when the bootstrap distribution is degenerate (every resample equals the data).
    """
    varying = [i for i, s in enumerate(samples) if s.size >= 2 and np.ptp(s) > 0]
    if not varying:
        return None

    def resampled_statistic(*resampled: FloatArray, axis: int = -1) -> FloatArray:
        batch_shape = resampled[0].shape[:-1]
        full = [np.broadcast_to(s, (*batch_shape, s.size)) for s in samples]
        for i, r in zip(varying, resampled, strict=True):
            full[i] = r
        return combine(full)

    def run(scipy_method: str) -> tuple[float, float]:
        result = stats.bootstrap(
            tuple(samples[i] for i in varying),
            resampled_statistic,
            n_resamples=n_resamples,
            vectorized=True,
            paired=False,
            axis=-1,
            confidence_level=confidence,
            method=scipy_method,
            rng=np.random.default_rng(seed),
        )
        return float(result.confidence_interval.low), float(result.confidence_interval.high)

    if method == "bca":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DegenerateDataWarning and the 0/0 behind it
            low, high = run("BCa")
        if math.isfinite(low) and math.isfinite(high):
            return low, high
    return run("percentile")


def bootstrap_ci(
    scores: Scores,
    statistic: Statistic,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    method: Method = "percentile",
) -> Estimate:
    """``statistic`` of the scores with a bootstrap confidence interval.

    One task (a 1-D array): resample the seeds with replacement ``n_resamples`` times and
    take the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` percentiles of the
    statistic over the resamples (percentile bootstrap, Efron & Tibshirani 1993, ch. 13).

    Several tasks (a list of 1-D arrays): the stratified bootstrap of rliable (Agarwal et al.
    2021, sec. 4): each resample draws seeds with replacement within each task independently
    and applies ``statistic`` to all tasks' scores concatenated; the point estimate is
    ``statistic(concatenate(scores))``. A task of identical scores thus adds no width. Put
    the tasks' scores on a common scale first (e.g. normalized by a reference score), or
    the task with the largest returns dominates the aggregate.

    ``method="bca"`` uses the bias-corrected and accelerated interval (Efron 1987) and falls
    back to percentile where BCa is undefined. With one score, or scores that are all equal
    within each task, the interval is degenerate: ``low = high = point``.
    """
    _check_bootstrap_args(confidence, n_resamples)
    tasks = _as_tasks(scores)
    batched = _along_last_axis(statistic)
    interval = _bootstrap_interval(
        tasks,
        lambda parts: batched(np.concatenate(parts, axis=-1)),
        confidence,
        n_resamples,
        seed,
        method,
    )
    point = float(statistic(np.concatenate(tasks)))
    low, high = interval if interval is not None else (point, point)
    return Estimate(point=point, low=low, high=high, confidence=confidence, n=sum(t.size for t in tasks))


def aggregate(
    scores: Scores,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    method: Method = "percentile",
) -> dict[str, Estimate]:
    """The ``"mean"``, ``"median"`` and ``"iqm"`` of the scores, each with its bootstrap CI.

    See ``bootstrap_ci``; the three use the same seed (common random resamples).
    """
    return {
        name: bootstrap_ci(scores, fn, confidence, n_resamples, seed, method)
        for name, fn in (("mean", mean), ("median", median), ("iqm", iqm))
    }


def difference_ci(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    statistic: Statistic = mean,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    method: Method = "percentile",
) -> Estimate:
    """``statistic(a) - statistic(b)`` for two independent groups of seeds, with its CI.

    Each resample draws seeds with replacement within ``a`` and within ``b`` independently
    (two-sample bootstrap, Efron & Tibshirani 1993, sec. 8.3). An interval that excludes 0
    says the groups differ at that confidence; ``n`` is ``len(a) + len(b)``.
    """
    _check_bootstrap_args(confidence, n_resamples)
    a_arr, b_arr = _as_1d(a, "a"), _as_1d(b, "b")
    batched = _along_last_axis(statistic)
    interval = _bootstrap_interval(
        [a_arr, b_arr],
        lambda parts: batched(parts[0]) - batched(parts[1]),
        confidence,
        n_resamples,
        seed,
        method,
    )
    point = float(statistic(a_arr)) - float(statistic(b_arr))
    low, high = interval if interval is not None else (point, point)
    return Estimate(point=point, low=low, high=high, confidence=confidence, n=a_arr.size + b_arr.size)


# --- scores of a learning curve -------------------------------------------------------------


def _as_curve(steps: npt.ArrayLike, values: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validated ``(steps, values)``: 1-D, same length, non-empty, steps strictly increasing."""
    s = np.asarray(steps, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if s.ndim != 1 or v.ndim != 1:
        raise ValueError(f"curve: steps and values must be 1-D, got shapes {s.shape} and {v.shape}")
    if s.shape != v.shape:
        raise ValueError(f"curve: steps and values differ in length: {s.size} vs {v.size}")
    if s.size == 0:
        raise ValueError("curve: empty (no points)")
    if not np.all(np.isfinite(s)) or np.any(np.diff(s) <= 0):
        raise ValueError("curve: steps must be finite and strictly increasing")
    return s, v


def final_score(steps: npt.ArrayLike, values: npt.ArrayLike, last_fraction: float = 0.1) -> float:
    """Mean of the finite values in the last ``last_fraction`` of the step span.

        window = { t : steps[t] >= steps[-1] - last_fraction * (steps[-1] - steps[0]) }

    NaN when no value in the window is finite.
    """
    if not 0.0 < last_fraction <= 1.0:
        raise ValueError(f"last_fraction must lie in (0, 1], got {last_fraction}")
    s, v = _as_curve(steps, values)
    start = s[-1] - last_fraction * (s[-1] - s[0])
    window = v[(s >= start) & np.isfinite(v)]
    return float(np.mean(window)) if window.size else math.nan


def area_under_curve(steps: npt.ArrayLike, values: npt.ArrayLike) -> float:
    """Area under the curve divided by its step span: the average value over training.

        AUC = (1 / (s_m - s_1)) * sum_k (s_{k+1} - s_k) * (v_k + v_{k+1}) / 2

    over the finite points ``(s_k, v_k)`` only (trapezoid rule; a NaN gap is bridged by a
    straight line, undefined ends are left out of the span). With one finite point it is
    that value; with none it is NaN.
    """
    s, v = _as_curve(steps, values)
    finite = np.isfinite(v)
    s_f, v_f = s[finite], v[finite]
    if v_f.size == 0:
        return math.nan
    if v_f.size == 1:
        return float(v_f[0])
    return float(np.trapezoid(v_f, s_f) / (s_f[-1] - s_f[0]))


def steps_to_threshold(steps: npt.ArrayLike, values: npt.ArrayLike, threshold: float) -> float | None:
    """The first step ``steps[t]`` with ``values[t] >= threshold``, or None if never reached.

    NaN values never reach the threshold. The step keeps the type of ``steps`` (int steps
    give an int).
    """
    _, v = _as_curve(steps, values)
    reached = np.flatnonzero(np.isfinite(v) & (v >= threshold))
    if reached.size == 0:
        return None
    step: float = np.asarray(steps)[reached[0]].item()
    return step
