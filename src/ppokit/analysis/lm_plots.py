"""Figures of language-model runs: the per-step metrics against the completions sampled.

Two figures of small multiples, drawn like :mod:`ppokit.analysis.plots` (one colour per
group, each seed's curve smoothed over 2% of its steps, the mean over seeds with its 95%
bootstrap band): ``lm_training.png`` (reward, success, lengths, truncation, entropy, the KL to
the reference, zero-std groups, and the critic's value loss and explained variance for ppo)
and ``lm_updates.png`` (the losses and the size of each update). For a single run, the
reward and length panels shade the range of the step's completions (``*_min``..``*_max``).
Dotted grey: the health rules' thresholds, read from the run's ``diagnostics.json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes

from ppokit.analysis.curves import Groups, RunData, group_curves, load_groups, on_grid, smooth, smoothing_window
from ppokit.analysis.plots import (
    CompactFormatter,
    _color,
    _draw_mean_band,
    _figure,
    _has_data,
    _label,
    _legend_below,
    _no_data,
    _save,
    _style_x,
    _threshold_line,
    _unique_legend,
)

X = "global_step"  # completions sampled so far
X_LABEL = "completions sampled"

# (metric, panel title, y label, whether the panel is drawn without data ("no data")).
Panel = tuple[str, str, str, bool]
TRAINING: tuple[Panel, ...] = (
    ("reward_mean", "Reward of the sampled completions", "reward", True),
    ("success", "Success rate (sampled)", "fraction", True),
    ("completion_length_mean", "Completion length", "tokens (EOS included)", True),
    ("truncated_fraction", "Cut by max_new_tokens (no EOS)", "fraction", True),
    ("entropy", "Entropy per completion token", "nats", True),
    ("kl_ref", "KL to the reference per token", "nats", True),
    ("kl_ref_seq", "KL to the reference per completion", "nats", False),
    ("zero_std_groups", "Groups with all-equal rewards", "fraction", False),
    ("value_loss", "Value loss (ppo)", "loss", False),
    ("explained_variance", "Explained variance of V (ppo)", "1 - Var(R - V) / Var(R)", False),
)
UPDATES: tuple[Panel, ...] = (
    ("policy_loss", "Policy loss (clipped surrogate)", "loss", True),
    ("loss", "Total loss", "loss", True),
    ("approx_kl", "Approx KL to the sampling policy (k3)", "nats", True),
    ("clip_fraction", "Clip fraction", "fraction of tokens", True),
    ("grad_norm", "Gradient norm (before clipping)", "L2 norm", True),
    ("kl_coef", "KL coefficient beta (ppo)", "beta", False),
)
BANDS = {"reward_mean": ("reward_min", "reward_max"), "completion_length_mean": ("completion_length_min",
                                                                                 "completion_length_max")}  # fmt: skip
SPLITS = {"clip_fraction": ("clip_fraction_low", "clip_fraction_high")}  # drawn dashed, dotted
NON_NEGATIVE = frozenset({"truncated_fraction", "zero_std_groups", "approx_kl", "clip_fraction", "grad_norm",
                          "completion_length_mean", "kl_ref_seq", "kl_coef", "value_loss"})  # fmt: skip


def lm_training(groups: Groups, path: Path) -> Path:
    """What the completions were and how far the policy moved from the reference, per step."""
    loaded = load_groups(groups)
    return _panels(loaded, _present(loaded, TRAINING), path, "Language-model training")


def lm_updates(groups: Groups, path: Path) -> Path:
    """The losses and the size of each step's update."""
    loaded = load_groups(groups)
    return _panels(loaded, _present(loaded, UPDATES), path, "Language-model updates")


def _present(loaded: Mapping[str, Sequence[RunData]], panels: Sequence[Panel]) -> list[Panel]:
    """The panels always drawn, and the optional ones some run logged."""
    return [p for p in panels if p[3] or any(np.isfinite(r.column(p[0])).any() for rs in loaded.values() for r in rs)]


def _panels(loaded: Mapping[str, Sequence[RunData]], panels: Sequence[Panel], path: Path, title: str) -> Path:
    cols = min(4, max(1, math.ceil(len(panels) / 2)))
    rows = math.ceil(len(panels) / cols)
    fig = _figure(3.75 * cols, 3.6 * rows + 0.6)
    axes: list[Axes] = list(fig.subplots(rows, cols, squeeze=False).ravel())
    thresholds = _thresholds(next(iter(loaded.values()))[0])
    for ax, (metric, panel_title, unit, _) in zip(axes, panels, strict=False):
        if not _draw_metric(ax, loaded, metric):
            _no_data(ax)
        else:
            for value in thresholds.get(metric, ()):
                _threshold_line(ax, value, "health-check warning threshold")
            if metric in NON_NEGATIVE:  # from 0, a little room above and below so a flat line stays visible
                top = ax.get_ylim()[1]
                ax.set_ylim(bottom=-0.02 * top, top=1.05 * top)
            limit = length_limit(next(iter(loaded.values()))[0])
            if metric == "completion_length_mean" and limit is not None:  # always in view: "stuck at the limit"
                ax.axhline(limit, color="0.35", linestyle="--", linewidth=1.0, label="max_new_tokens")
                ax.set_ylim(top=max(ax.get_ylim()[1], 1.05 * limit))
        ax.set_title(panel_title, fontsize="medium")
        ax.set_ylabel(unit)
        _style_x(ax, X)
        ax.set_xlabel(X_LABEL)
        ax.yaxis.set_major_formatter(CompactFormatter())
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    handles, labels = _unique_legend(axes)
    if handles:
        _legend_below(fig, handles, labels)
    fig.suptitle(f"{title}: {run_title(loaded)}", fontsize="large")
    return _save(fig, path)


def _draw_metric(ax: Axes, loaded: Mapping[str, Sequence[RunData]], metric: str) -> bool:
    drawn = False
    for i, (name, runs) in enumerate(loaded.items()):
        grid, curves = group_curves(runs, X, metric)
        if not _has_data(curves):
            continue
        color = _color(i)
        if len(runs) == 1 and metric in BANDS:
            _range_band(ax, runs[0], grid, BANDS[metric], color)
        _draw_mean_band(ax, grid, curves, color, _label(name, runs))
        for style, part in zip(("--", ":"), SPLITS.get(metric, ()), strict=False):
            part_grid, part_curves = group_curves(runs, X, part)
            if _has_data(part_curves):
                ax.plot(part_grid, part_curves.mean(axis=0), color=color, linestyle=style, linewidth=1.0,
                        label=f"{part.replace('_', ' ')}")  # fmt: skip
        drawn = True
    return drawn


def _range_band(ax: Axes, run: RunData, grid: np.ndarray, keys: tuple[str, str], color: str) -> None:
    """The smoothed min..max of the step's completions, shaded lightly."""
    low, high = (run.column(k) for k in keys)
    if not (np.isfinite(low).any() and np.isfinite(high).any()):
        return
    window = smoothing_window(low.size)
    x = run.column(X)
    low_g, high_g = (on_grid(x, smooth(v, window), grid) for v in (low, high))
    ax.fill_between(grid, low_g, high_g, color=color, alpha=0.12, linewidth=0, label="min..max of the step")


def length_limit(run: RunData) -> float | None:
    """The run's ``max_new_tokens``: its config's, or its built-in task's default."""
    lm = _lm(run)
    value = lm.get("max_new_tokens")
    if isinstance(value, int):
        return float(value)
    if lm.get("prompts"):
        return None  # a prompts file's default lives in the trainer
    try:
        from ppokit.lm.tasks import TASKS  # no torch, no transformers
    except ImportError:
        return None
    task = TASKS.get(str(lm.get("task", "")))
    return float(task.max_new_tokens) if task is not None else None


def _thresholds(run: RunData) -> dict[str, list[float]]:
    """metric -> the thresholds of the health rules on it, from the run's diagnostics.json."""
    out: dict[str, list[float]] = {}
    for info in ((run.diagnostics or {}).get("rules") or {}).values():
        metric, value = info.get("metric"), info.get("threshold")
        if isinstance(metric, str) and isinstance(value, int | float) and not isinstance(value, bool):
            out.setdefault(metric, []).append(float(value))
    return out


def run_title(loaded: Mapping[str, Sequence[RunData]]) -> str:
    """The methods and tasks of the runs: "grpo on sort"."""
    pairs = sorted({(str(_lm(r).get("method", "?")), task_name(r)) for rs in loaded.values() for r in rs})
    return ", ".join(f"{method} on {task}" for method, task in pairs)


def task_name(run: RunData) -> str:
    """The built-in task, or the prompts file the run drew from."""
    lm = _lm(run)
    return f"prompts {Path(str(lm['prompts'])).name}" if lm.get("prompts") else str(lm.get("task", "?"))


def _lm(run: RunData) -> dict[str, object]:
    table = run.config.get("lm", {})
    return table if isinstance(table, dict) else {}
