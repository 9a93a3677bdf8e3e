"""The report's sections about how training went, from the per-update metrics: learning speed,
trust region, figures.

Like :mod:`ppokit.analysis.report_sections`, each takes the
:class:`~ppokit.analysis.subject.Subject` and returns blocks; across seeds a value is its mean
with a 95% bootstrap CI (:func:`ppokit.analysis.report_format.spread`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ppokit.analysis import plots, stats
from ppokit.analysis.curves import FloatArray, RunData
from ppokit.analysis.render import Block, Heading, Image, Table, Text
from ppokit.analysis.report_format import spread
from ppokit.analysis.subject import Subject
from ppokit.io.run_dir import DIAGNOSTICS_PNG, KL_PER_UPDATE_PNG, LEARNING_CURVES_PNG

FIGURES = (
    (LEARNING_CURVES_PNG, "Learning curves"),
    (DIAGNOSTICS_PNG, "Training diagnostics"),
    (KL_PER_UPDATE_PNG, "Approx KL per update"),
)


def scores_section(s: Subject, threshold: float | None) -> list[Block]:
    """Area under the training-return curve, final training return, steps to the threshold."""
    header = ["configuration", "seeds", "AUC: average return over training", "final training return (last 10%)"]
    if threshold is not None:
        header += [f"seeds reaching {threshold:g}", "median steps to reach it"]
    rows = []
    for name, runs in s.groups.items():
        curves = [_return_curve(r) for r in runs]
        auc = [stats.area_under_curve(x, y) for x, y in curves]
        final = [stats.final_score(x, y) for x, y in curves]
        row = [spread(auc, s.kind), spread(final, s.kind)]
        if threshold is not None:
            reached = [stats.steps_to_threshold(x, y, threshold) for x, y in curves]
            hits = [float(v) for v in reached if v is not None]
            median = float(np.median([math.inf if v is None else float(v) for v in reached]))
            steps = f"{median:,.0f}" if math.isfinite(median) else "not reached"
            row += [f"{len(hits)}/{len(runs)}", steps] if s.kind == "experiment" else [steps]
        rows.append([name, str(len(runs)), *row] if s.kind == "experiment" else row)
    if s.kind == "run":
        header = header[2:4] + ([f"steps to reach {threshold:g}"] if threshold is not None else [])
    text = (
        "From the training episodes' return per update (`episode_return_mean`, sampled actions, "
        "unsmoothed) against env steps. AUC is the area under that curve divided by its step span "
        "(the average return over training: higher means it learned sooner)."
    )
    if threshold is not None:
        text += (
            f" Steps to threshold: the first update whose return reached {threshold:g}; unreached seeds count as never."
        )
    else:
        text += " Pass a threshold (`ppokit report DIR --threshold R`) for steps-to-threshold."
    if s.kind == "experiment":
        text += " Across seeds: mean [95% bootstrap CI]."
    return [Heading(2, "Learning speed"), Text(text), Table(header, rows)]


def trust_region_section(s: Subject) -> list[Block]:
    """How far each update moved the policy, and how far training moved it from the start."""
    header = ["configuration", "seeds", "mean KL per update", "largest KL of an update",
              "updates with KL > 0.05", "final KL from the initial policy"]  # fmt: skip
    rows = []
    for name, runs in s.groups.items():
        per_update = [_kl_per_update(r) for r in runs]
        means = [float(np.nanmean(k)) if np.isfinite(k).any() else math.nan for k in per_update]
        peaks = [float(np.nanmax(k)) if np.isfinite(k).any() else math.nan for k in per_update]
        over = [float(np.mean(k[np.isfinite(k)] > 0.05)) if np.isfinite(k).any() else math.nan for k in per_update]
        init = [_last_finite(r.column("kl_from_init")) for r in runs]
        rows.append([name, str(len(runs)), spread(means, s.kind, 3), spread(peaks, s.kind, 3),
                     spread(over, s.kind, 2), spread(init, s.kind, 3)])  # fmt: skip
    if s.kind == "run":
        header, rows = header[2:], [row[2:] for row in rows]
    text = (
        "KL(pi_old || pi_new) that each update caused, measured on the whole batch after the "
        "update (`approx_kl_final`; `approx_kl` for runs that lack it), and the exact "
        "KL(pi || pi_initial) after the last update (`kl_from_init`)."
    )
    if s.kind == "experiment":
        text += " Across seeds: mean [95% bootstrap CI]."
    return [Heading(2, "Trust region"), Text(text), Table(header, rows)]


def _kl_per_update(run: RunData) -> FloatArray:
    kl = run.column("approx_kl_final")
    return kl if np.isfinite(kl).any() else run.column("approx_kl")


def _last_finite(values: FloatArray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite[-1]) if finite.size else math.nan


def _return_curve(run: RunData) -> tuple[FloatArray, FloatArray]:
    """(env steps, training return) per update, keeping only strictly increasing steps."""
    steps, values = run.column("global_step"), run.column("episode_return_mean")
    keep = np.isfinite(steps) & (steps > np.concatenate([[-np.inf], np.fmax.accumulate(steps)[:-1]]))
    return steps[keep], values[keep]


def figures_section(s: Subject, out: Path, threshold: float | None) -> list[Block]:
    """Draw the figures into ``out`` (the report folder) and return the blocks that show them."""
    groups = {name: [r.path for r in runs] for name, runs in s.groups.items()}
    across = "thick: the mean over seeds with its 95% bootstrap CI band; thin: the seeds"
    if s.kind == "run":
        across = "the run (no band: one seed)"
    plots.learning_curves(groups, out / FIGURES[0][0], threshold=threshold)
    plots.diagnostics_panel(groups, out / FIGURES[1][0])
    plots.kl_per_update(groups, out / FIGURES[2][0])
    return [
        Heading(2, "Figures"),
        Image(*FIGURES[0]),
        Text(
            f"Solid: return of the training episodes (sampled actions), smoothed over 2% of training: {across}. "
            "Dashed: evaluation returns (periodic and final)."
        ),
        Image(*FIGURES[1]),
        Text(
            f"Smoothed over 2% of training; {across}. Dotted grey: the health checks' warning thresholds (if in view)."
        ),
        Image(*FIGURES[2]),
        Text(
            "Approx KL between the policy before and after each update (one rollout and its epochs), log scale; "
            "dotted: the `kl_max` warning threshold."
        ),
    ]
