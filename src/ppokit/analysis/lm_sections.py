"""The report's sections of a language-model run (a ``config.toml`` with an ``[lm]`` table):
overview, evaluation, training, figures. The configuration and health sections are the
classic report's (:mod:`ppokit.analysis.report_sections`).

Like the other sections, each takes the :class:`~ppokit.analysis.subject.Subject` and returns
blocks, for a run and for an experiment alike (across seeds a value is its mean with a 95%
bootstrap CI, :func:`ppokit.analysis.report_format.spread`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ppokit.analysis import lm_plots
from ppokit.analysis.curves import RunData
from ppokit.analysis.render import Block, Heading, Image, Table, Text
from ppokit.analysis.report_format import num, spread
from ppokit.analysis.subject import Subject
from ppokit.io.run_dir import FINAL_EVAL

LM_TRAINING_PNG = "lm_training.png"
LM_UPDATES_PNG = "lm_updates.png"
EDGE = 0.1  # the first and the last 10% of the steps
# The per-step metrics of the training table, in reading order (the ones a run logged).
TABLE_METRICS = ("reward_mean", "success", "completion_length_mean", "truncated_fraction", "entropy", "kl_ref",
                 "kl_ref_seq", "zero_std_groups", "approx_kl", "clip_fraction", "grad_norm", "value_loss",
                 "explained_variance", "kl_coef")  # fmt: skip


def _lm(run: RunData) -> dict[str, Any]:
    table = run.config.get("lm", {})
    return table if isinstance(table, dict) else {}


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def lm_overview(s: Subject) -> list[Block]:
    runs = [r for rs in s.groups.values() for r in rs]
    what = lm_plots.run_title(s.groups)
    if s.kind == "run":
        r, c = runs[0], _lm(runs[0])
        steps = len(r.column("update"))
        completions = int(np.nanmax(r.column("global_step")))
        model = f"the tiny {c.get('arch', '?')} model ({c.get('layers', '?')} x {c.get('width', '?')})"
        if c.get("model", "tiny") != "tiny":
            model = f"the model {c['model']}"
        text = (
            f"Run `{s.folder}`: {what}, {model}, seed {c.get('seed', '?')}: {c.get('sft_steps', 0)} SFT steps, then "
            f"{_plural(steps, 'RL step')} of {c.get('prompts_per_step', '?')} prompts x {c.get('group_size', '?')} "
            f"completions ({completions:,} completions)"
        )
        seconds = r.column("time_elapsed")
        text += f" in {float(np.nanmax(seconds)):,.1f} s." if np.isfinite(seconds).any() else "."
    else:
        finished = sum(r.final_eval is not None for r in runs)
        text = (
            f"Experiment `{s.folder}`: {_plural(len(s.groups), 'configuration')} x {_plural(len(s.seeds), 'seed')} "
            f"of {what}; {_plural(len(runs), 'run')} with metrics, {finished} finished."
        )
    return [Heading(1, f"ppokit report: {s.folder.resolve().name}"), Text(text)]


def lm_eval_section(s: Subject) -> list[Block]:
    """Greedy success and mean reward on fresh prompts after SFT (the reference) and after RL."""
    blocks: list[Block] = [Heading(2, "Evaluation")]
    finals = [r.final_eval for rs in s.groups.values() for r in rs if r.final_eval is not None]
    if not finals:
        return [*blocks, Text(f"No run has finished yet (no {FINAL_EVAL}).")]
    prompts = finals[0].get("eval_prompts", "?")
    blocks.append(Text(
        f"Greedy completions of {prompts} fresh prompts, the same before and after RL: the exact-success rate "
        "(n/a when the task knows no answer) and the mean reward. After SFT is the reference the RL started from."
        + (" Across seeds: mean [95% bootstrap CI]." if s.kind == "experiment" else "")
    ))  # fmt: skip
    if s.kind == "run":
        e = finals[0]
        rows = [["after SFT (the reference)", *(num(f(e), 3) for f in (_success_sft, _reward_sft))],
                ["after RL", *(num(f(e), 3) for f in (_success, _reward))],
                ["change", _signed(_success(e) - _success_sft(e)), _signed(_reward(e) - _reward_sft(e))]]  # fmt: skip
        return [*blocks, Table(["", "greedy success", "mean reward"], rows)]
    header = ["configuration", "seeds", *(label for label, _ in EXPERIMENT_EVAL)]
    rows = []
    for name, runs in s.groups.items():
        evals = [r.final_eval for r in runs if r.final_eval is not None]
        rows.append([name, str(len(evals)), *(spread([f(e) for e in evals], s.kind, 3) for _, f in EXPERIMENT_EVAL)])
    return [*blocks, Table(header, rows)]


def _success_sft(e: dict[str, Any]) -> float:
    return _get(e, "success_after_sft")


def _success(e: dict[str, Any]) -> float:
    return _get(e, "success")


def _reward_sft(e: dict[str, Any]) -> float:
    return _get(e, "reward_after_sft")


def _reward(e: dict[str, Any]) -> float:
    return _get(e, "reward")


def _success_change(e: dict[str, Any]) -> float:
    return _success(e) - _success_sft(e)


EXPERIMENT_EVAL: tuple[tuple[str, Callable[[dict[str, Any]], float]], ...] = (
    ("success after SFT", _success_sft),
    ("success after RL", _success),
    ("success change", _success_change),
    ("reward after SFT", _reward_sft),
    ("reward after RL", _reward),
)


def _get(e: dict[str, Any], key: str) -> float:
    value = e.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


def _signed(x: float) -> str:
    return f"{x:+.3f}" if math.isfinite(x) else "n/a"


def lm_training_section(s: Subject) -> list[Block]:
    """Each logged metric over the first and the last 10% of the steps, and its extremes."""
    header = ["metric", f"first {EDGE:.0%} of steps", f"last {EDGE:.0%}", "min", "max"]
    rows = []
    for name, group in s.groups.items():
        for metric in (m for m in TABLE_METRICS if any(np.isfinite(r.column(m)).any() for r in group)):
            stats = [_edge_stats(r.column(metric)) for r in group]
            cells = [spread([st[i] for st in stats], s.kind, 3) for i in range(4)]
            rows.append(([name] if s.kind == "experiment" else []) + [metric, *cells])
    if s.kind == "experiment":
        header = ["configuration", *header]
    text = (
        f"The per-step metrics (`metrics.jsonl`; definitions in docs/metrics.md, Language models): their mean over "
        f"the first and the last {EDGE:.0%} of the RL steps (at least one step each), their smallest and largest value."
    )
    if s.kind == "experiment":
        text += " Across seeds: mean [95% bootstrap CI]."
    return [Heading(2, "Training"), Text(text), Table(header, rows)]


def _edge_stats(values: np.ndarray) -> tuple[float, float, float, float]:
    """(mean of the first 10%, mean of the last 10%, min, max) of the finite values."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return math.nan, math.nan, math.nan, math.nan
    k = max(1, int(EDGE * finite.size))
    return float(finite[:k].mean()), float(finite[-k:].mean()), float(finite.min()), float(finite.max())


def lm_figures_section(s: Subject, out: Path) -> list[Block]:
    """Draw the LM figures into ``out`` (the report folder) and return the blocks that show them."""
    groups = {name: [r.path for r in runs] for name, runs in s.groups.items()}
    lm_plots.lm_training(groups, out / LM_TRAINING_PNG)
    lm_plots.lm_updates(groups, out / LM_UPDATES_PNG)
    across = "the mean over seeds with its 95% bootstrap CI band" if s.kind == "experiment" else "the run"
    return [
        Heading(2, "Figures"),
        Image(LM_TRAINING_PNG, "Language-model training"),
        Text(
            f"Per RL step against the completions sampled, smoothed over 2% of training: {across}. Shaded around "
            "the reward and the length of a single run: the smoothed min..max over the step's completions. "
            "Dotted grey: the health checks' warning thresholds (if in view)."
        ),
        Image(LM_UPDATES_PNG, "Language-model updates"),
        Text(
            "The losses and the size of each step's update, averaged over its minibatches. Clip fraction: dashed "
            "the ratios clipped below 1 - clip_low, dotted above 1 + clip_high."
        ),
    ]
