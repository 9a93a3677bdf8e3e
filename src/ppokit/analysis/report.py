"""The report of a run or an experiment: configuration, final evaluation, figures, health.

``write_report(folder)`` writes ``folder/report/`` with ``report.md`` and the PNG figures it
links (``learning_curves.png``, ``diagnostics.png``, ``kl_per_update.png``); with
``fmt="html"`` also ``report.html``, one self-contained file with the figures embedded.

The report is built as a list of blocks (heading, text, table, image, collapsible code) and
rendered to Markdown or HTML, so both formats say the same thing. Across seeds it reports
the mean, median and interquartile mean with 95% percentile-bootstrap confidence intervals
(``ppokit.analysis.stats``; Agarwal et al. 2021), never a bare mean +- std.
"""

from __future__ import annotations

import base64
import html
import itertools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ppokit.analysis import curves, plots, stats
from ppokit.analysis.curves import FloatArray, RunData
from ppokit.config import RunConfig, to_dict
from ppokit.errors import ConfigError
from ppokit.io.checkpoint import atomic_write_text

Format = Literal["md", "html"]
FIGURES = (
    ("learning_curves.png", "Learning curves"),
    ("diagnostics.png", "Training diagnostics"),
    ("kl_per_update.png", "Approx KL per update"),
)
MAX_RANGES = 4  # update ranges listed per seed and rule before "... (+N more)"


# --- blocks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Image:
    file: str
    alt: str


@dataclass(frozen=True)
class Code:
    summary: str
    code: str
    lang: str = "toml"


Block = Heading | Text | Table | Image | Code


def render_markdown(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {b.text}")
        elif isinstance(b, Text):
            out.append(b.text)
        elif isinstance(b, Table):
            lines = [b.header, ["---"] * len(b.header), *b.rows]
            out.append("\n".join("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in lines))
        elif isinstance(b, Image):
            out.append(f"![{b.alt}]({b.file})")
        else:
            out.append(f"<details><summary>{b.summary}</summary>\n\n```{b.lang}\n{b.code.rstrip()}\n```\n\n</details>")
    return "\n\n".join(out) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _inline_code(escaped: str) -> str:
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", escaped)


def render_html(blocks: Sequence[Block], folder: Path) -> str:
    """One self-contained page: the figures in ``folder`` are embedded as base64 PNGs."""
    e = html.escape
    body: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{e(b.text)}</h{b.level}>")
        elif isinstance(b, Text):
            body.append(f"<p>{_inline_code(e(b.text))}</p>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{e(h)}</th>" for h in b.header)
            rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in b.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(b, Image):
            data = base64.b64encode((folder / b.file).read_bytes()).decode("ascii")
            body.append(f'<figure><img alt="{e(b.alt)}" src="data:image/png;base64,{data}"></figure>')
        else:
            body.append(f"<details><summary>{e(b.summary)}</summary><pre>{e(b.code)}</pre></details>")
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
        "th{background:#f3f3f3}img{max-width:100%}pre{background:#f6f6f6;padding:1em;overflow:auto}"
    )
    title = next((b.text for b in blocks if isinstance(b, Heading)), "ppokit report")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
        f"<style>{style}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


# --- what is being reported ------------------------------------------------------------------


@dataclass
class Subject:
    """A run (one group of one run) or an experiment (one group per configuration)."""

    kind: Literal["run", "experiment"]
    folder: Path
    config: dict[str, Any]  # the run's config, or the experiment's base config
    groups: dict[str, list[RunData]]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # run folders without metrics yet


def _variant_names(grid: dict[str, list[Any]]) -> list[str]:
    """The run folder names ``ppokit experiment`` gives the grid's variants, in grid order."""
    if not grid:
        return ["base"]
    keys = list(grid)
    return [
        ",".join(f"{k}={v}" for k, v in zip(keys, values, strict=True)) for values in itertools.product(*grid.values())
    ]


def _natural(text: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def load_subject(path: Path) -> Subject:
    """Read a run folder or an experiment folder; ConfigError (one line) for anything else."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError("report", f"{path} is not a folder")
    if curves.is_run(path):
        run = curves.load_run(path)
        return Subject("run", path, run.config, {path.name: [run]})
    if (path / "config.toml").is_file():
        raise ConfigError("report", f"{path} has no metrics.jsonl: the run has not logged an update yet")
    if not (path / "experiment.json").is_file():
        raise ConfigError(
            "report",
            f"{path} is neither a run folder (config.toml + metrics.jsonl) nor an experiment folder (experiment.json)",
        )
    try:
        spec = json.loads((path / "experiment.json").read_text())
    except json.JSONDecodeError as e:
        raise ConfigError("report", f"{path}/experiment.json is not valid JSON ({e})") from None
    groups: dict[str, list[RunData]] = {}
    skipped: list[Path] = []
    grid = dict(spec.get("grid") or {})
    order = _variant_names(grid)  # the grid's order (1, 4, 10, 30), not the folders' (1, 10, 30, 4)
    rank = lambda p: (order.index(p.name) if p.name in order else len(order), _natural(p.name))
    variants = sorted((p for p in (path / "runs").glob("*") if p.is_dir()), key=rank)
    for variant in variants:
        for toml in sorted(variant.rglob("config.toml"), key=lambda p: _natural(str(p))):
            try:
                groups.setdefault(variant.name, []).append(curves.load_run(toml.parent))
            except ConfigError:
                skipped.append(toml.parent)
    if not groups:
        raise ConfigError(
            "report", f"{path} is an experiment with no metrics yet (no run under runs/ logged an update)"
        )
    return Subject(
        "experiment", path, dict(spec.get("base") or {}), groups, grid, list(spec.get("seeds") or []), skipped
    )


# --- formatting ------------------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _num(x: float | None, digits: int = 1, significant: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}" if significant else f"{x:,.{digits}f}"


def _ci(e: stats.Estimate, digits: int = 1, significant: bool = False) -> str:
    def n(x: float) -> str:
        return _num(x, digits, significant)

    return f"{n(e.point)} [{n(e.low)}, {n(e.high)}]"


def _value(v: Any) -> str:
    return json.dumps(v)  # TOML spelling for numbers, booleans, strings and lists


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in config.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _steps(run: RunData) -> int:
    return int(np.nanmax(run.column("global_step")))


def _toml(config: dict[str, Any]) -> str:
    import tomli_w

    return str(tomli_w.dumps(config))


# --- sections --------------------------------------------------------------------------------


def _overview(s: Subject) -> list[Block]:
    runs = [r for rs in s.groups.values() for r in rs]
    env = plots.env_ids(s.groups)
    if s.kind == "run":
        r = runs[0]
        seconds = float(np.nanmax(r.column("time_elapsed")))
        text = (
            f"Run `{s.folder}`: {env}, seed {r.config.get('seed', '?')}, {_steps(r):,} env steps "
            f"({len(r.column('global_step'))} updates) in {seconds:,.1f} s of training."
        )
    else:
        finished = sum(r.final_eval is not None for r in runs)
        text = (
            f"Experiment `{s.folder}`: {_plural(len(s.groups), 'configuration')} x {_plural(len(s.seeds), 'seed')} "
            f"on {env}; {_plural(len(runs), 'run')} with metrics, {finished} finished."
        )
        if s.skipped:
            text += f" Skipped (no metrics yet): {', '.join(str(p.relative_to(s.folder)) for p in s.skipped)}."
    return [Heading(1, f"ppokit report: {s.folder.resolve().name}"), Text(text)]


def _config_section(s: Subject) -> list[Block]:
    defaults = _flat(to_dict(RunConfig()))
    ignore = {"run_dir"} | ({"seed"} if s.kind == "experiment" else set())
    varied = set(s.grid)  # flat field names; the table's keys are "section.field"
    changed = [
        [key, _value(v) + (" (varied by the grid)" if key.rsplit(".", 1)[-1] in varied else ""),
         _value(defaults[key]) if key in defaults else "(none)"]
        for key, v in _flat(s.config).items()
        if key not in ignore and (key not in defaults or defaults[key] != v)
    ]  # fmt: skip
    blocks: list[Block] = [Heading(2, "Configuration")]
    what = "run" if s.kind == "run" else "experiment's base configuration"
    if changed:
        blocks += [
            Text(f"Settings of the {what} that differ from ppokit's defaults:"),
            Table(["setting", "value", "default"], changed),
        ]
    else:
        blocks.append(Text(f"The {what} uses ppokit's defaults."))
    if s.kind == "experiment":
        rows = [[k, ", ".join(_value(v) for v in values)] for k, values in s.grid.items()]
        blocks.append(Table(["grid axis", "values"], rows) if rows else Text("No grid: one configuration."))
        blocks.append(Text(f"Seeds: {', '.join(map(str, s.seeds))}."))
        return [*blocks, Code("Full base configuration (TOML)", _toml(s.config))]
    return [*blocks, Code("Full configuration (config.toml)", (s.folder / "config.toml").read_text())]


def _final_eval_section(s: Subject) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Final evaluation")]
    finals = [r.final_eval for rs in s.groups.values() for r in rs if r.final_eval is not None]
    if not finals:
        return [*blocks, Text("No run has finished yet (no eval.json).")]
    mode = "deterministic" if finals[0].get("deterministic", True) else "sampled"
    episodes = int(finals[0].get("eval_episodes", len(finals[0].get("returns", []))))
    if s.kind == "run":
        f = finals[0]
        header = ["episodes", "actions", "return mean ± std", "min", "max", "mean length"]
        blocks += [
            Text("Episodes on separate evaluation envs after training:"),
            Table(header, [[str(episodes), mode, *_eval_cells(f)]]),
        ]
        return blocks + _periodic_evals(next(iter(s.groups.values()))[0])
    blocks.append(Text(
        f"Score of a seed: the mean return of its final evaluation ({episodes} episodes, {mode} actions). "
        "Across seeds: mean, median and interquartile mean (IQM) with 95% percentile-bootstrap "
        "confidence intervals (2,000 resamples)."
    ))  # fmt: skip
    header = ["configuration", "seeds", "mean [95% CI]", "median [95% CI]", "IQM [95% CI]", "per seed"]
    scores = {name: [v for v in (curves.final_eval_mean(r) for r in rs) if math.isfinite(v)]
              for name, rs in s.groups.items()}  # fmt: skip
    reference = next(iter(scores))
    compare = len(scores) > 1 and bool(scores[reference])
    if compare:
        header.append(f"mean - mean of {reference} [95% CI]")
    rows = []
    for name, values in scores.items():
        if not values:
            rows.append([name, "0", "n/a", "n/a", "n/a", "", *(["n/a"] if compare else [])])
            continue
        agg = stats.aggregate(np.asarray(values))
        row = [name, str(len(values)), _ci(agg["mean"]), _ci(agg["median"]), _ci(agg["iqm"]),
               ", ".join(_num(v) for v in values)]  # fmt: skip
        if compare:
            row.append("(reference)" if name == reference else _ci(stats.difference_ci(values, scores[reference])))
        rows.append(row)
    return [*blocks, Table(header, rows)]


def _eval_cells(e: dict[str, Any]) -> list[str]:
    """return mean ± std, min, max, mean length."""
    mean_std = f"{_num(e.get('eval_return_mean'))} ± {_num(e.get('eval_return_std'))}"
    return [mean_std, *(_num(e.get(k)) for k in ("eval_return_min", "eval_return_max", "eval_length_mean"))]


def _periodic_evals(run: RunData, max_rows: int = 20) -> list[Block]:
    """The run's periodic evaluations (evals.jsonl), at most ``max_rows`` evenly spaced."""
    if "global_step" not in run.evals:
        return []
    n = len(run.evals["global_step"])
    keep = sorted({int(i) for i in np.linspace(0, n - 1, min(n, max_rows)).round()})
    rows = []
    for i in keep:
        e = {k: float(v[i]) for k, v in run.evals.items()}
        rows.append([f"{e['global_step']:,.0f}", _num(e.get("time_elapsed")), *_eval_cells(e)])
    header = ["env step", "training time (s)", "return mean ± std", "min", "max", "mean length"]
    return [Heading(3, "Periodic evaluations"), Table(header, rows)]


def _scores_section(s: Subject, threshold: float | None) -> list[Block]:
    """Area under the training-return curve, final training return, steps to the threshold."""
    header = ["configuration", "seeds", "AUC: average return over training", "final training return (last 10%)"]
    if threshold is not None:
        header += [f"seeds reaching {threshold:g}", "median steps to reach it"]
    rows = []
    for name, runs in s.groups.items():
        curves = [_return_curve(r) for r in runs]
        auc = [stats.area_under_curve(x, y) for x, y in curves]
        final = [stats.final_score(x, y) for x, y in curves]
        row = [_spread(auc, s.kind), _spread(final, s.kind)]
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


def _trust_region_section(s: Subject) -> list[Block]:
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
        rows.append([name, str(len(runs)), _spread(means, s.kind, 3), _spread(peaks, s.kind, 3),
                     _spread(over, s.kind, 2), _spread(init, s.kind, 3)])  # fmt: skip
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


def _spread(values: list[float], kind: str, significant: int | None = None) -> str:
    """One run: its value; an experiment: mean [95% CI] over seeds. ``significant``: digits."""
    finite = [v for v in values if math.isfinite(v)]
    digits, sig = (significant, True) if significant is not None else (1, False)
    if not finite:
        return "n/a"
    if kind == "run":
        return _num(finite[0], digits, sig)
    return _ci(stats.bootstrap_ci(np.asarray(finite), stats.mean), digits, sig)


def _figures_section(s: Subject, out: Path, threshold: float | None) -> list[Block]:
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


def _ranges(episodes: list[dict[str, Any]]) -> str:
    spans = [f"{e['first_update']}-{e['last_update']}" if e["last_update"] != e["first_update"]
             else str(e["first_update"]) for e in episodes]  # fmt: skip
    extra = f" (+{len(spans) - MAX_RANGES} more)" if len(spans) > MAX_RANGES else ""
    return ", ".join(spans[:MAX_RANGES]) + extra


def _diagnostics_section(s: Subject) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Health diagnostics")]
    runs = [r for rs in s.groups.values() for r in rs]
    if all(r.diagnostics is None for r in runs):
        return [*blocks, Text("No diagnostics.json: the health checks were off (or the run predates them).")]
    rows, advice = [], {}
    for name, group in s.groups.items():
        by_rule: dict[str, list[tuple[RunData, dict[str, Any]]]] = {}
        for r in group:
            for rule, info in ((r.diagnostics or {}).get("rules") or {}).items():
                if info.get("warnings", 0) > 0:
                    by_rule.setdefault(rule, []).append((r, info))
                    advice[rule] = (info.get("condition", ""), info.get("advice", ""))
        for rule, hits in by_rule.items():
            where = "; ".join(
                (f"{r.path.name}: " if s.kind == "experiment" else "") + _ranges(info.get("episodes", []))
                for r, info in hits
            )
            counts = [str(sum(i.get(k, 0) for _, i in hits)) for k in ("warnings", "updates_affected")]
            if s.kind == "experiment":
                rows.append([name, rule, f"{len(hits)}/{len(group)}", *counts, where])
            else:
                rows.append([rule, *counts, where])
    if not rows:
        return [*blocks, Text("No health warnings: every health check stayed quiet in every run.")]
    header = ["rule", "warnings", "updates affected", "update ranges"]
    if s.kind == "experiment":
        header = ["configuration", "rule", "seeds warned", *header[1:]]
    blocks += [
        Text("Rules that warned (one warning per stretch of updates in the condition that outlasted its patience):"),
        Table(header, rows),
        Heading(3, "Advice"),
    ]
    return [*blocks, Table(["rule", "condition", "advice"], [[k, c, a] for k, (c, a) in advice.items()])]


# --- entry point -----------------------------------------------------------------------------


def write_report(path: Path | str, fmt: str = "md", threshold: float | None = None) -> Path:
    """Write ``path/report/`` for a run or experiment folder; return the report file.

    ``fmt="md"`` writes ``report.md`` and the figures; ``"html"`` also writes ``report.html``
    (figures embedded) and returns it. ``threshold``: a return for steps-to-threshold.
    """
    if fmt not in ("md", "html"):
        raise ConfigError("format", f"{fmt!r}; allowed: md, html")
    subject = load_subject(Path(path))
    out = subject.folder / "report"
    out.mkdir(parents=True, exist_ok=True)
    blocks: list[Block] = [
        *_overview(subject),
        *_config_section(subject),
        *_final_eval_section(subject),
        *_scores_section(subject, threshold),
        *_trust_region_section(subject),
        *_figures_section(subject, out, threshold),
        *_diagnostics_section(subject),
    ]
    atomic_write_text(out / "report.md", render_markdown(blocks))
    if fmt == "html":
        atomic_write_text(out / "report.html", render_html(blocks, out))
        return out / "report.html"
    return out / "report.md"
