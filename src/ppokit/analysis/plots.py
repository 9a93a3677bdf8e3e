"""Figures of runs and experiments: learning curves, training diagnostics, KL per update.

A *group* is one configuration: its name and the run folders of its seeds. Every figure
takes ``groups: Mapping[str, Sequence[Path]]`` and a PNG path, draws on a
``matplotlib.figure.Figure`` of its own (the Agg renderer; no pyplot, no global state) and
returns the path.

Across seeds, each seed's per-update curve is smoothed by a centred moving average over
``SMOOTH_FRACTION`` of its updates (:func:`smooth`; null/NaN values are skipped), then
interpolated linearly onto a common grid of ``GRID_POINTS`` x values (:func:`on_grid`; no
extrapolation: a seed counts only inside its own x range). The thick line is the mean over
seeds and the band its 95% percentile-bootstrap confidence interval over seeds
(:func:`mean_band`: the method of ``stats.bootstrap_ci``, vectorized over all grid points at
once, because one ``bootstrap_ci`` call per point and metric takes seconds per figure). Both
are drawn only where every seed of the group is defined, so the line never jumps when a
seed drops out; runs of different lengths (and wall-clock times) show as thin per-seed
lines beyond it. With one seed there is no band.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import Formatter, FuncFormatter

from ppokit.analysis.curves import (
    FloatArray,
    Groups,
    RunData,
    eval_points,
    group_curves,
    load_groups,
    mean_band,
)

XAxis = Literal["global_step", "time_elapsed"]

DPI = 120
# Okabe & Ito (2008), "Color universal design": distinguishable with every common colour-vision
# deficiency. Yellow last: it is faint on white.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
X_LABELS: dict[str, str] = {"global_step": "environment steps", "time_elapsed": "training wall-clock time (s)"}
# (metric, panel title, y label) of the diagnostics panel.
DIAGNOSTICS: tuple[tuple[str, str, str], ...] = (
    ("approx_kl", "Approx KL (k3)", "nats"),
    ("clip_fraction", "Clip fraction", "fraction of samples"),
    ("explained_variance", "Explained variance of V", "1 - Var(R - V) / Var(R)"),
    ("entropy", "Policy entropy", "nats"),
    ("policy_loss", "Policy loss (clipped surrogate)", "loss"),
    ("value_loss", "Value loss", "squared return error"),
    ("learning_rate", "Learning rate", "Adam step size"),
    ("grad_norm", "Gradient norm (before clipping)", "L2 norm"),
    ("clip_coef", "Clip range epsilon", "epsilon"),
    ("kl_from_init", "KL from the initial policy", "nats"),
)
NON_NEGATIVE = frozenset(
    {"approx_kl", "clip_fraction", "learning_rate", "grad_norm", "value_loss", "clip_coef", "kl_from_init"}
)
# Health-check thresholds drawn on the diagnostics panel: metric -> keys of [diagnostics].
THRESHOLDS: dict[str, tuple[str, ...]] = {
    "approx_kl": ("kl_max",),
    "clip_fraction": ("clip_fraction_min", "clip_fraction_max"),
    "explained_variance": ("explained_variance_min",),
    "grad_norm": ("grad_norm_max",),
}
DEFAULT_KL_MAX = 0.05
KL_FLOOR = 1e-9


# --- drawing helpers -------------------------------------------------------------------------


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained", facecolor="white")


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor="white", bbox_inches="tight")  # a wide legend widens the image
    return path


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _short(value: float, _pos: int | None = None) -> str:
    """Tick label: 20000 -> 20k, 1500000 -> 1.5M."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.4g}{suffix}"
    return f"{value:.4g}"


class CompactFormatter(Formatter):
    """Tick labels without matplotlib's offset text ("1e-4" above the axis, which collides
    with the title): plain numbers, or scientific notation on every tick for tiny or huge
    values, with the fewest decimals that still write every tick exactly."""

    def __init__(self) -> None:
        self.ticks: list[float] = []

    def set_locs(self, locs: list[float]) -> None:
        self.ticks = [float(v) for v in locs]

    def __call__(self, x: float, pos: int | None = None) -> str:
        locs = [v for v in self.ticks if v != 0] or [x]
        scale = max(abs(v) for v in locs)
        kind = "e" if scale < 1e-2 or scale >= 1e5 else "f"
        step = float(np.min(np.diff(sorted(self.ticks)))) if len(self.ticks) > 1 else scale
        for decimals in range(10):
            if all(abs(float(f"{v:.{decimals}{kind}}") - v) <= 1e-3 * step for v in locs):
                break
        if x == 0:
            return "0"
        return f"{x:.{decimals}{kind}}".replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")


def _style_x(ax: Axes, x: str) -> None:
    ax.set_xlabel(X_LABELS.get(x, x))
    if x == "global_step":
        ax.xaxis.set_major_formatter(FuncFormatter(_short))
    ax.grid(True, alpha=0.3, linewidth=0.6)


def _draw_mean_band(ax: Axes, grid: FloatArray, curves: FloatArray, color: str, label: str | None) -> None:
    mean, low, high = mean_band(curves)
    ax.fill_between(grid, low, high, color=color, alpha=0.2, linewidth=0)
    ax.plot(grid, mean, color=color, linewidth=1.8, label=label)


def _no_data(ax: Axes) -> None:
    ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="0.5")


def _has_data(curves: FloatArray) -> bool:
    return bool(np.isfinite(curves).any())


def _label(name: str, runs: Sequence[RunData]) -> str:
    return f"{name} (n={len(runs)} seed{'s' if len(runs) != 1 else ''})"


def env_ids(loaded: Mapping[str, Sequence[RunData]]) -> str:
    """The env ids of the runs, comma-separated."""
    ids = sorted({str(r.config.get("env", {}).get("id", "?")) for rs in loaded.values() for r in rs})
    return ", ".join(ids)


def _threshold_line(ax: Axes, value: float, text: str) -> None:
    """A dotted horizontal threshold that does not stretch the axis to reach it."""
    ylim = ax.get_ylim()
    ax.axhline(value, color="0.35", linestyle=":", linewidth=1.2, label=text)
    ax.set_ylim(ylim)


def _legend_below(fig: Figure, handles: list[Any], labels: list[str], max_cols: int = 4) -> None:
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), max_cols), frameon=False)


# --- figures ---------------------------------------------------------------------------------


def learning_curves(
    groups: Groups,
    path: Path,
    x: XAxis | Sequence[XAxis] = ("global_step", "time_elapsed"),
    threshold: float | None = None,
) -> Path:
    """Episode return of each group against env steps and wall-clock time (one panel per ``x``).

    Solid: training episodes (``episode_return_mean``, sampled actions), thin per seed, thick
    the mean over seeds with its 95% bootstrap CI band. Dashed with markers: the periodic
    evaluations (``evals.jsonl``) and the final one (``eval.json``), mean over seeds. Dotted
    grey: ``threshold``, when given.
    """
    xs: list[XAxis] = [x] if isinstance(x, str) else list(x)
    loaded = load_groups(groups)
    fig = _figure(6.0 * len(xs) if len(xs) > 1 else 10.0, 6.0)
    axes = fig.subplots(1, len(xs), squeeze=False)[0]
    any_eval = False
    for ax, key in zip(axes, xs, strict=True):
        for i, (name, runs) in enumerate(loaded.items()):
            color = _color(i)
            grid, curves = group_curves(runs, key, "episode_return_mean")
            for seed_curve in curves if len(runs) > 1 else ():
                ax.plot(grid, seed_curve, color=color, linewidth=0.7, alpha=0.35)
            _draw_mean_band(ax, grid, curves, color, _label(name, runs))
            any_eval |= _draw_evals(ax, runs, key, color)
        if threshold is not None:
            ax.axhline(threshold, color="0.35", linestyle=":", linewidth=1.4, label=f"threshold {threshold:g}")
        _style_x(ax, key)
        ax.set_ylabel("episode return")
        ax.set_title(f"Return vs {X_LABELS[key].replace(' (s)', '')}")
    handles, labels = axes[0].get_legend_handles_labels()
    handles.append(Line2D([], [], color="0.2", linewidth=1.8))
    seeds = any(len(runs) > 1 for runs in loaded.values())
    labels.append("training return (smoothed)" + (": mean, 95% CI; thin: each seed" if seeds else ""))
    if any_eval:
        handles.append(Line2D([], [], color="0.2", linestyle="--", marker="o", markersize=4))
        labels.append("evaluation return (periodic, final)" + (": mean" if seeds else ""))
    _legend_below(fig, handles, labels, max_cols=3)
    fig.suptitle(f"Learning curves: {env_ids(loaded)}", fontsize="large")
    return _save(fig, path)


def _draw_evals(ax: Axes, runs: Sequence[RunData], x: str, color: str) -> bool:
    """Mean evaluation return over the seeds at each eval step that every seed reached.

    Seeds evaluate at the same env steps (``eval_every``), so points are matched by step; on
    the wall-clock axis a point sits at the seeds' mean time of that step.
    """
    per_run = [eval_points(r) for r in runs]
    steps = sorted(set.intersection(*(set(p) for p in per_run)))
    if not steps:
        return False
    coordinate = 0 if x == "global_step" else 1
    xs = [float(np.mean([p[s][coordinate] for p in per_run])) for s in steps]
    ys = [float(np.mean([p[s][2] for p in per_run])) for s in steps]
    ax.plot(xs, ys, color=color, linestyle="--", marker="o", markersize=3.5, linewidth=1.3)
    return True


def diagnostics_panel(groups: Groups, path: Path) -> Path:
    """Small multiples of the training diagnostics against env steps, one colour per group.

    Each panel: mean over seeds with a 95% bootstrap CI band. Dotted grey: the health
    check's warning threshold (``[diagnostics]`` of the first run), where it is in view.
    """
    loaded = load_groups(groups)
    cols = math.ceil(len(DIAGNOSTICS) / 2)
    fig = _figure(3.75 * cols, 7.5)
    axes = fig.subplots(2, cols, sharex=True).ravel()
    thresholds = next(iter(loaded.values()))[0].config.get("diagnostics", {})
    for ax, (metric, title, unit) in zip(axes, DIAGNOSTICS, strict=True):
        drawn = False
        for i, (name, runs) in enumerate(loaded.items()):
            grid, curves = group_curves(runs, "global_step", metric)
            if _has_data(curves):
                _draw_mean_band(ax, grid, curves, _color(i), _label(name, runs))
                drawn = True
        if not drawn:
            _no_data(ax)
        elif thresholds.get("health_checks", thresholds.get("enabled", True)):  # older runs: "enabled"
            for key in THRESHOLDS.get(metric, ()):
                if isinstance(thresholds.get(key), int | float):
                    _threshold_line(ax, float(thresholds[key]), "health-check warning threshold")
        if drawn and metric in NON_NEGATIVE:  # from 0, a little below so a line at 0 stays visible
            ax.set_ylim(bottom=-0.02 * ax.get_ylim()[1])
        ax.set_title(title, fontsize="medium")
        ax.set_ylabel(unit)
        _style_x(ax, "global_step")
        ax.yaxis.set_major_formatter(CompactFormatter())
    for ax in axes[:cols]:
        ax.set_xlabel("")
    handles, labels = _unique_legend(axes)
    _legend_below(fig, handles, labels)
    fig.suptitle(f"Training diagnostics: {env_ids(loaded)} (mean over seeds, 95% CI band)", fontsize="large")
    return _save(fig, path)


def _unique_legend(axes: Sequence[Axes]) -> tuple[list[Any], list[str]]:
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    return list(seen.values()), list(seen)


def kl_per_update(groups: Groups, path: Path) -> Path:
    """Mean KL per update for each group on a log scale, with the kl_max threshold.

    The KL is ``approx_kl_final`` (what the whole update did to the policy, on the whole
    batch) where the run logged it, else ``approx_kl`` (the mean over minibatch steps).
    Zeros (a policy that stopped moving) count in the mean; the log axis clips them.

    x is the update index (one rollout and its K epochs), so configurations with different
    epochs K compare update for update. Band: 95% bootstrap CI over seeds. Dotted grey: the
    diagnostics' ``kl_max`` (default 0.05); dash-dot in the group's colour: its ``target_kl``.
    """
    loaded = load_groups(groups)
    fig = _figure(10.0, 6.0)
    ax = fig.subplots()
    kl_max: set[float] = set()
    for i, (name, runs) in enumerate(loaded.items()):
        color = _color(i)
        kls = [_update_kl(run) for run in runs]
        updates = max(len(kl) for kl in kls)
        curves = np.full((len(runs), updates), np.nan)
        for s, kl in enumerate(kls):
            curves[s, : kl.size] = kl
        _draw_mean_band(ax, np.arange(1, updates + 1, dtype=np.float64), curves, color, _label(name, runs))
        kl_max.add(float(runs[0].config.get("diagnostics", {}).get("kl_max", DEFAULT_KL_MAX)))
        target = runs[0].config.get("algo", {}).get("target_kl")
        if isinstance(target, int | float):
            ax.axhline(float(target), color=color, linestyle="-.", linewidth=1.0, label=f"{name}: target_kl {target}")
    for value in sorted(kl_max):
        ax.axhline(value, color="0.35", linestyle=":", linewidth=1.4, label=f"kl_max = {value:g} (warning threshold)")
    ax.set_yscale("log", nonpositive="clip")
    ax.set_ylim(bottom=max(ax.get_ylim()[0], KL_FLOOR))  # below this, KL is float noise of a still policy
    ax.set_xlabel("update (one rollout + its epochs)")
    ax.set_ylabel("KL(pi_old || pi_new) of the update (k3), nats, log scale")
    ax.set_title(f"KL per update: {env_ids(loaded)} (mean over seeds, 95% CI band)")
    ax.grid(True, which="major", alpha=0.3, linewidth=0.6)
    _legend_below(fig, *ax.get_legend_handles_labels(), max_cols=3)
    return _save(fig, path)


def _update_kl(run: RunData) -> FloatArray:
    kl = run.column("approx_kl_final")
    return kl if np.isfinite(kl).any() else run.column("approx_kl")
