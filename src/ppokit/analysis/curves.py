"""Run folders as data: metrics and evaluations loaded into arrays, and curves across seeds.

Across seeds, each seed's per-update curve is smoothed by a centred moving average over
``SMOOTH_FRACTION`` of its updates (:func:`smooth`; null/NaN values are skipped), then
interpolated linearly onto a common grid of ``GRID_POINTS`` x values (:func:`on_grid`; no
extrapolation: a seed counts only inside its own x range). The mean over seeds comes with
its 95% percentile-bootstrap confidence interval over seeds (:func:`mean_band`: the method
of ``stats.bootstrap_ci``, vectorized over all grid points at once, because one
``bootstrap_ci`` call per point and metric takes seconds per figure).
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ppokit.errors import ConfigError
from ppokit.io.run_dir import CONFIG, METRICS, RunDir

FloatArray = npt.NDArray[np.float64]
Groups = Mapping[str, Sequence[Path]]

GRID_POINTS = 200
SMOOTH_FRACTION = 0.02  # of a run's updates, for the moving average of noisy per-update metrics


# --- reading run folders ---------------------------------------------------------------------


@dataclass(frozen=True)
class RunData:
    """What a run folder holds, as arrays: one entry per update (NaN where null)."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, FloatArray]
    evals: dict[str, FloatArray]  # periodic evaluations (evals.jsonl); empty when there are none
    final_eval: dict[str, Any] | None  # eval.json; None while the run is unfinished
    diagnostics: dict[str, Any] | None  # diagnostics.json; None when diagnostics were off

    def column(self, key: str) -> FloatArray:
        """Metric ``key`` per update; all NaN when the run did not log it."""
        n = len(next(iter(self.metrics.values())))
        return self.metrics.get(key, np.full(n, np.nan))


def is_run(path: Path) -> bool:
    return RunDir(path).config.is_file() and RunDir(path).metrics.is_file()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file; a torn last line (a run killed mid-write) is skipped."""
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return [r for r in records if isinstance(r, dict)]


def _columns(records: list[dict[str, Any]]) -> dict[str, FloatArray]:
    keys = dict.fromkeys(k for r in records for k, v in r.items() if v is None or isinstance(v, int | float))
    return {k: np.array([_number(r.get(k)) for r in records], dtype=np.float64) for k in keys}


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def _json_file(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def load_run(path: Path) -> RunData:
    """Read a run folder; ConfigError when it is not one or has no metrics yet."""
    path = Path(path)
    run_dir = RunDir(path)
    if not is_run(path):
        raise ConfigError("run", f"{path} is not a run folder (it needs {CONFIG} and {METRICS})")
    records = read_jsonl(run_dir.metrics)
    if not records:
        raise ConfigError("run", f"{path}/{METRICS} holds no metrics (did training finish an update?)")
    try:
        config = tomllib.loads(run_dir.config.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("run", f"{path}/{CONFIG} is not valid TOML ({e})") from None
    evals = read_jsonl(run_dir.evals) if run_dir.evals.is_file() else []
    return RunData(
        path=path,
        config=config,
        metrics=_columns(records),
        evals=_columns(evals) if evals else {},
        final_eval=_json_file(run_dir.final_eval),
        diagnostics=_json_file(run_dir.diagnostics),
    )


def load_groups(groups: Groups) -> dict[str, list[RunData]]:
    loaded = {name: [load_run(p) for p in paths] for name, paths in groups.items() if paths}
    if not loaded:
        raise ConfigError("groups", "no run folders to plot")
    return loaded


# --- curves across seeds ---------------------------------------------------------------------


def smooth(y: FloatArray, window: int) -> FloatArray:
    """Centred moving average over ``window`` points (odd; shrinks at the ends), NaN-aware.

    A point that is NaN stays NaN (no value is invented where none was logged).
    """
    if window <= 1 or y.size == 0:
        return y.copy()
    half = window // 2
    finite = np.isfinite(y)
    sums = np.concatenate([[0.0], np.cumsum(np.where(finite, y, 0.0))])
    counts = np.concatenate([[0], np.cumsum(finite)])
    i = np.arange(y.size)
    lo, hi = np.maximum(i - half, 0), np.minimum(i + half + 1, y.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (sums[hi] - sums[lo]) / (counts[hi] - counts[lo])
    return np.where(finite, out, np.nan)


def smoothing_window(updates: int) -> int:
    """The odd number of updates that ``SMOOTH_FRACTION`` of ``updates`` spans (at least 1)."""
    return 2 * int(SMOOTH_FRACTION * updates / 2) + 1


def on_grid(x: FloatArray, y: FloatArray, grid: FloatArray) -> FloatArray:
    """``y(x)`` interpolated linearly at ``grid``; NaN outside the finite points' x range."""
    ok = np.isfinite(x) & np.isfinite(y)
    order = np.argsort(x[ok], kind="stable")
    xs, ys = x[ok][order], y[ok][order]
    out = np.full(grid.shape, np.nan)
    if xs.size == 0:
        return out
    inside = (grid >= xs[0]) & (grid <= xs[-1])
    out[inside] = np.interp(grid[inside], xs, ys)
    return out


def mean_band(
    curves: FloatArray, confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Mean over seeds of ``curves [S, G]`` and its percentile-bootstrap CI, per grid point.

        mean_g = (1 / S) sum_s curves[s, g]
        band_g = the (1 -+ confidence) / 2 percentiles of mean_g over resamples of the S seeds

    Each resample draws S seeds with replacement (the same draw for every grid point, which
    keeps the band smooth). All three are NaN where any seed is undefined (NaN), and the
    band also when there is a single seed.
    """
    if curves.ndim != 2:
        raise ValueError(f"curves: expected [seeds, grid], got shape {curves.shape}")
    seeds = curves.shape[0]
    mean = curves.mean(axis=0)
    idx = np.random.default_rng(seed).integers(0, seeds, size=(n_resamples, seeds))
    alpha = 100 * (1 - confidence) / 2
    low, high = np.percentile(curves[idx].mean(axis=1), [alpha, 100 - alpha], axis=0)  # over [B, G]
    undefined = ~np.isfinite(mean) | (seeds < 2)
    low[undefined], high[undefined] = np.nan, np.nan
    return mean, low, high


def common_grid(xs: Sequence[FloatArray], points: int = GRID_POINTS) -> FloatArray:
    finite = [x[np.isfinite(x)] for x in xs]
    finite = [x for x in finite if x.size]
    if not finite:
        return np.zeros(0)
    lo, hi = min(float(x.min()) for x in finite), max(float(x.max()) for x in finite)
    return np.linspace(lo, hi, points) if hi > lo else np.array([lo])


def group_curves(runs: Sequence[RunData], x: str, y: str, smoothed: bool = True) -> tuple[FloatArray, FloatArray]:
    """``(grid [G], curves [S, G])``: each seed's metric ``y`` (smoothed) against ``x`` on a common grid."""
    grid = common_grid([r.column(x) for r in runs])
    curves = []
    for r in runs:
        values = r.column(y)
        if smoothed:
            values = smooth(values, smoothing_window(values.size))
        curves.append(on_grid(r.column(x), values, grid))
    return grid, np.stack(curves)


def final_eval_mean(run: RunData) -> float:
    """The mean return of the run's final evaluation (eval.json); NaN when it has none."""
    return _number((run.final_eval or {}).get("eval_return_mean"))


def eval_points(run: RunData) -> dict[float, tuple[float, float, float]]:
    """global_step -> (time_elapsed, return mean) of the periodic evaluations and the final one.

    The final evaluation (``eval.json``) is placed at the run's last update.
    """
    points: dict[float, tuple[float, float, float]] = {}
    for step, time, ret in zip(
        run.evals.get("global_step", ()),
        run.evals.get("time_elapsed", ()),
        run.evals.get("eval_return_mean", ()),
        strict=False,
    ):
        points[float(step)] = (float(step), float(time), float(ret))
    if run.final_eval is not None:
        step, time = float(run.column("global_step")[-1]), float(run.column("time_elapsed")[-1])
        points.setdefault(step, (step, time, final_eval_mean(run)))
    return {k: v for k, v in points.items() if all(math.isfinite(x) for x in v)}
