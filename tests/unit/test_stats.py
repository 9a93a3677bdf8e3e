"""Multi-seed statistics against hand-computed values, structure and bootstrap coverage."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from ppokit.analysis.stats import (
    Estimate,
    Method,
    Statistic,
    aggregate,
    area_under_curve,
    bootstrap_ci,
    difference_ci,
    final_score,
    iqm,
    mean,
    median,
    steps_to_threshold,
)

# Any warning (scipy's DegenerateDataWarning, numpy's 0/0, ...) fails the test.
pytestmark = pytest.mark.filterwarnings("error")

RNG_SCORES = np.random.default_rng(0).normal(10.0, 2.0, size=20)

# --- aggregates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        (np.arange(1.0, 9.0), 4.5),  # n=8 cuts 2 each side: mean(3, 4, 5, 6)
        ([8.0, 1.0, 7.0, 2.0, 6.0, 3.0, 5.0, 4.0], 4.5),  # order does not matter
        ([-1000.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1000.0], 3.5),  # outliers cut: mean(2, 3, 4, 5)
        (np.arange(10.0), 4.5),  # n=10 cuts floor(2.5) = 2 each side: mean(2..7)
        ([1.0, 2.0, 3.0, 10.0], 2.5),  # n=4: mean of the two middle scores
        ([1.0, 2.0, 9.0], 4.0),  # n<4 cuts nothing: the mean
        ([7.0], 7.0),
    ],
)
def test_iqm_hand_values(scores: list[float], expected: float) -> None:
    assert iqm(scores) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("fn", "scores", "expected"),
    [
        (mean, [1.0, 2.0, 3.0, 10.0], 4.0),
        (mean, [-1.0, 1.0], 0.0),
        (median, [1.0, 2.0, 3.0, 10.0], 2.5),
        (median, [5.0, 1.0, 100.0], 5.0),
    ],
)
def test_mean_median_hand_values(fn: Statistic, scores: list[float], expected: float) -> None:
    assert fn(np.asarray(scores)) == pytest.approx(expected)


@pytest.mark.parametrize("fn", [mean, median, iqm])
@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ([], "empty"),
        (3.0, "1-D"),
        ([[1.0, 2.0], [3.0, 4.0]], "1-D"),
        ([1.0, math.nan], "finite"),
        ([1.0, math.inf], "finite"),
    ],
)
def test_aggregates_reject_bad_input(fn: Statistic, bad: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fn(bad)


# --- bootstrap_ci ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["percentile", "bca"])
@pytest.mark.parametrize("fn", [mean, median, iqm])
def test_ci_is_ordered_and_contains_the_point(fn: Statistic, method: Method) -> None:
    est = bootstrap_ci(RNG_SCORES, fn, n_resamples=1000, method=method)
    assert est.point == pytest.approx(fn(RNG_SCORES))
    assert est.low < est.point < est.high
    assert est.n == 20 and est.confidence == 0.95
    # roughly mean +- 1.96 * sd / sqrt(n) ~ +-0.9 for sd 2, n 20; not degenerate, not huge
    assert 0.8 < est.high - est.low < 3.0


def test_ci_widens_with_confidence_and_is_reproducible() -> None:
    narrow = bootstrap_ci(RNG_SCORES, mean, confidence=0.5, n_resamples=500)
    wide = bootstrap_ci(RNG_SCORES, mean, confidence=0.99, n_resamples=500)
    assert wide.low < narrow.low < narrow.high < wide.high
    assert bootstrap_ci(RNG_SCORES, mean, n_resamples=500, seed=3) == bootstrap_ci(
        RNG_SCORES, mean, n_resamples=500, seed=3
    )
    assert bootstrap_ci(RNG_SCORES, mean, n_resamples=500, seed=3) != bootstrap_ci(
        RNG_SCORES, mean, n_resamples=500, seed=4
    )


@pytest.mark.parametrize("method", ["percentile", "bca"])
@pytest.mark.parametrize(
    ("scores", "point", "n"),
    [
        ([3.5], 3.5, 1),  # one seed: scipy alone would raise
        ([0.1] * 7, 0.1, 7),  # constant: BCa alone would give NaN and warn
        ([[2.0, 2.0], [4.0, 4.0, 4.0]], 3.2, 5),  # each task constant: (4 + 12) / 5
        ([[2.0], [4.0]], 3.0, 2),
    ],
)
def test_degenerate_data_gives_a_zero_width_interval(scores: Any, point: float, n: int, method: Method) -> None:
    est = bootstrap_ci(scores, mean, method=method)
    assert est.point == pytest.approx(point)
    assert est.low == est.point == est.high
    assert (est.n, est.confidence) == (n, 0.95)


def test_bca_falls_back_to_percentile_where_undefined() -> None:
    # CartPole-like: most seeds hit the cap. Every leave-one-out median is 500, so the BCa
    # acceleration is 0/0 and scipy returns NaN with a DegenerateDataWarning.
    scores = [500.0, 500.0, 500.0, 500.0, 500.0, 480.0]
    bca = bootstrap_ci(scores, median, method="bca")
    assert bca == bootstrap_ci(scores, median, method="percentile")
    assert math.isfinite(bca.low) and bca.low < bca.high == 500.0


def test_custom_statistic_runs_row_by_row() -> None:
    spread = lambda x: float(np.max(x) - np.min(x))
    est = bootstrap_ci(RNG_SCORES, spread, n_resamples=300)
    assert est.point == pytest.approx(np.ptp(RNG_SCORES))
    assert 0.0 <= est.low < est.high <= est.point + 1e-12  # a resample's range never exceeds the data's


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"confidence": 1.0}, "confidence"), ({"confidence": 0.0}, "confidence"), ({"n_resamples": 0}, "n_resamples")],
)
def test_bootstrap_ci_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        bootstrap_ci(RNG_SCORES, mean, **kwargs)


@pytest.mark.parametrize(
    ("scores", "match"),
    [
        (np.ones((3, 4)), "list\\(matrix\\)"),
        ([np.ones(3), np.array([])], r"scores\[1\]: empty"),
        ([np.ones(3), np.array([1.0, math.nan])], r"scores\[1\]: .*finite"),
        ([1.0, [2.0, 3.0]], "numeric"),
        ([], "empty"),
    ],
)
def test_bootstrap_ci_rejects_bad_scores(scores: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        bootstrap_ci(scores, mean)


def test_flat_list_is_one_task_and_list_of_arrays_is_tasks() -> None:
    flat = bootstrap_ci([1.0, 2.0, 3.0, 4.0], mean, n_resamples=200)
    assert flat == bootstrap_ci(np.array([1.0, 2.0, 3.0, 4.0]), mean, n_resamples=200)
    assert flat.n == 4
    tasks = bootstrap_ci([[1.0, 2.0], [3.0, 4.0]], mean, n_resamples=200)
    assert tasks.n == 4 and tasks.point == pytest.approx(2.5)
    # stratified: every resample keeps two scores from each task, so the mean stays in [2, 3]
    assert 2.0 <= tasks.low < tasks.high <= 3.0
    assert flat.low < 2.0 and flat.high > 3.0  # unstratified resamples may take all four from one end


def test_stratified_constant_task_adds_no_width() -> None:
    # Task A: 5 seeds all at 0; task B: the 20 seeds of RNG_SCORES. Every stratified resample
    # is (5 * 0 + 20 * mean(B*)) / 25, so the CI is 20/25 of B's own CI. A constant task is
    # held out of the resampling, so B sees the same draws as alone and the match is exact.
    alone = bootstrap_ci(RNG_SCORES, mean, n_resamples=1000)
    both = bootstrap_ci([np.zeros(5), RNG_SCORES], mean, n_resamples=1000)
    assert both.point == pytest.approx(0.8 * np.mean(RNG_SCORES))  # mean of the concatenation
    assert both.n == 25
    assert (both.low, both.high) == pytest.approx((0.8 * alone.low, 0.8 * alone.high), rel=1e-12)


def test_stratified_tasks_of_one_seed_are_held_fixed() -> None:
    task_b = [10.0, 20.0, 30.0, 40.0]
    alone = bootstrap_ci(task_b, mean, n_resamples=500)
    both = bootstrap_ci([[100.0], task_b], mean, n_resamples=500)
    assert both.point == pytest.approx(200.0 / 5.0)
    assert (both.low, both.high) == pytest.approx((0.2 * 100.0 + 0.8 * alone.low, 0.2 * 100.0 + 0.8 * alone.high))


@pytest.mark.parametrize("method", ["percentile", "bca"])
@pytest.mark.parametrize(("confidence", "lo", "hi"), [(0.95, 0.85, 0.97), (0.8, 0.68, 0.88)])
def test_ci_coverage_is_roughly_nominal(method: Method, confidence: float, lo: float, hi: float) -> None:
    # 200 datasets of 10 normal scores with a known mean. The bootstrap CIs under-cover a
    # little at n = 10 (like a z-interval with the 1/n variance: ~0.90 for 95%). Measured
    # with these seeds: 0.895 / 0.885 (95%, percentile / BCa) and 0.770 / 0.765 (80%).
    rng = np.random.default_rng(12345)
    true_mean = 3.0
    hits = 0
    for i in range(200):
        est = bootstrap_ci(rng.normal(true_mean, 2.0, size=10), mean, confidence, 1000, seed=i, method=method)
        hits += est.low <= true_mean <= est.high
    assert lo <= hits / 200 <= hi


def test_aggregate_gives_the_three_estimates() -> None:
    out = aggregate(RNG_SCORES, n_resamples=300, seed=5)
    assert list(out) == ["mean", "median", "iqm"]
    for name, fn in (("mean", mean), ("median", median), ("iqm", iqm)):
        assert out[name] == bootstrap_ci(RNG_SCORES, fn, n_resamples=300, seed=5)


# --- difference_ci ---------------------------------------------------------------------------


def test_difference_ci_sign_for_a_clear_gap() -> None:
    rng = np.random.default_rng(1)
    better, worse = rng.normal(10.0, 1.0, size=8), rng.normal(5.0, 1.0, size=8)
    up = difference_ci(better, worse, n_resamples=500)
    down = difference_ci(worse, better, n_resamples=500)
    assert up.point == pytest.approx(np.mean(better) - np.mean(worse))
    assert 0.0 < up.low < up.point < up.high
    assert down.low < down.point < down.high < 0.0
    assert up.n == 16


@pytest.mark.parametrize("fn", [mean, iqm])
def test_difference_ci_covers_zero_for_identical_distributions(fn: Statistic) -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(0.0, 1.0, size=10), rng.normal(0.0, 1.0, size=10)
    est = difference_ci(a, b, fn, n_resamples=500)
    assert est.point == pytest.approx(fn(a) - fn(b))
    assert est.low < 0.0 < est.high
    same = difference_ci(a, a, fn, n_resamples=500)
    assert same.point == 0.0 and same.low < 0.0 < same.high


def test_difference_ci_against_one_seed_shifts_the_one_sample_ci() -> None:
    alone = bootstrap_ci(RNG_SCORES, mean, n_resamples=500)
    diff = difference_ci(RNG_SCORES, [2.0], n_resamples=500)
    assert (diff.low, diff.high) == pytest.approx((alone.low - 2.0, alone.high - 2.0))
    assert difference_ci([3.0], [2.0]) == Estimate(point=1.0, low=1.0, high=1.0, confidence=0.95, n=2)


def test_difference_ci_rejects_bad_groups() -> None:
    with pytest.raises(ValueError, match="b: empty"):
        difference_ci([1.0, 2.0], [])
    with pytest.raises(ValueError, match="a: expected a 1-D"):
        difference_ci(np.ones((2, 2)), [1.0])


# --- learning-curve scores -------------------------------------------------------------------

STEPS = np.arange(0, 101, 10)  # 0, 10, ..., 100
RAMP = STEPS / 10.0  # 0, 1, ..., 10


@pytest.mark.parametrize(
    ("values", "last_fraction", "expected"),
    [
        (RAMP, 0.1, 9.5),  # window [90, 100]: mean(9, 10)
        (RAMP, 0.25, 9.0),  # window [75, 100]: mean(8, 9, 10)
        (RAMP, 1.0, 5.0),  # the whole curve
        (np.where(STEPS == 100, math.nan, RAMP), 0.1, 9.0),  # NaN in the window is skipped
        (np.where(STEPS >= 90, math.nan, RAMP), 0.1, math.nan),  # nothing finite in the window
    ],
)
def test_final_score(values: npt.NDArray[np.float64], last_fraction: float, expected: float) -> None:
    assert final_score(STEPS, values, last_fraction) == pytest.approx(expected, nan_ok=True)


def test_final_score_window_is_relative_to_the_first_step() -> None:
    # steps 1000..2000: the last 10% is [1900, 2000], not [1800, 2000] (10% of the last step)
    assert final_score(STEPS * 10 + 1000, RAMP) == pytest.approx(9.5)
    assert final_score([5], [3.0]) == 3.0  # a single point is its own window


@pytest.mark.parametrize(
    ("steps", "values", "expected"),
    [
        (STEPS, RAMP, 5.0),  # straight line 0 -> 10: average 5
        (STEPS, np.full(11, 3.0), 3.0),
        ([0, 1, 3], [0.0, 2.0, 2.0], 5.0 / 3.0),  # areas 1 + 4 over a span of 3
        ([0, 10, 20, 30], [math.nan, 0.0, 4.0, 4.0], 3.0),  # span 10..30: areas 20 + 40 over 20
        ([0, 10, 20], [0.0, math.nan, 4.0], 2.0),  # a gap is bridged linearly
        ([0, 10, 20], [math.nan, 7.0, math.nan], 7.0),  # one finite point
        ([0, 10], [math.nan, math.nan], math.nan),
    ],
)
def test_area_under_curve(steps: list[int], values: list[float], expected: float) -> None:
    assert area_under_curve(steps, values) == pytest.approx(expected, nan_ok=True)


@pytest.mark.parametrize(
    ("values", "threshold", "expected"),
    [
        (RAMP, 5.0, 50),  # equality counts
        (RAMP, 4.5, 50),
        (RAMP, -1.0, 0),
        (RAMP, 10.5, None),  # never reached
        (np.where(STEPS <= 60, math.nan, RAMP), 3.0, 70),  # NaN never reaches
        (np.full(11, math.nan), -math.inf, None),
    ],
)
def test_steps_to_threshold(values: npt.NDArray[np.float64], threshold: float, expected: int | None) -> None:
    got = steps_to_threshold(STEPS, values, threshold)
    assert got == expected
    if expected is not None:
        assert isinstance(got, int)  # int steps give an int step


@pytest.mark.parametrize("fn", [final_score, area_under_curve])
@pytest.mark.parametrize(
    ("steps", "values", "match"),
    [
        ([0, 1, 2], [1.0, 2.0], "differ in length"),
        ([], [], "empty"),
        ([[0, 1]], [[1.0, 2.0]], "1-D"),
        ([0, 2, 1], [1.0, 2.0, 3.0], "strictly increasing"),
        ([0, 1, 1], [1.0, 2.0, 3.0], "strictly increasing"),
        ([0, math.nan], [1.0, 2.0], "finite"),
    ],
)
def test_curve_scores_reject_bad_curves(fn: Callable[[Any, Any], float], steps: Any, values: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fn(steps, values)
    with pytest.raises(ValueError, match=match):
        steps_to_threshold(steps, values, 0.0)


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5])
def test_final_score_rejects_bad_fraction(bad: float) -> None:
    with pytest.raises(ValueError, match="last_fraction"):
        final_score(STEPS, RAMP, bad)
