"""The report's sections about what was run and how it ended: overview, configuration, final
evaluation, health diagnostics.

Each section takes the :class:`~ppokit.analysis.subject.Subject` and returns blocks, for a run
and for an experiment alike (an experiment's tables get a configuration column and CIs over
seeds), so that :func:`ppokit.analysis.report.write_report` only puts them in order.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

import numpy as np

from ppokit.analysis import curves, plots, stats
from ppokit.analysis.curves import RunData
from ppokit.analysis.render import Block, Code, Heading, Table, Text
from ppokit.analysis.report_format import ci, num
from ppokit.analysis.subject import Subject
from ppokit.config import RunConfig, to_dict
from ppokit.io.run_dir import CONFIG, DIAGNOSTICS, FINAL_EVAL

MAX_RANGES = 4  # update ranges listed per seed and rule before "... (+N more)"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


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


def overview(s: Subject) -> list[Block]:
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


def _defaults(s: Subject) -> dict[str, Any]:
    """ppokit's defaults, flat: the LM config's for an LM run (its ``[lm]`` table)."""
    if s.lm:
        from ppokit.lm.config import LMConfig  # no transformers in it

        return _flat({"lm": {k: v for k, v in asdict(LMConfig()).items() if v is not None}})
    return _flat(to_dict(RunConfig()))


def config_section(s: Subject) -> list[Block]:
    defaults = _defaults(s)
    ignore = {"run_dir", "lm.run_dir"} | ({"seed", "lm.seed"} if s.kind == "experiment" else set())
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
    return [*blocks, Code(f"Full configuration ({CONFIG})", (s.folder / CONFIG).read_text())]


def final_eval_section(s: Subject) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Final evaluation")]
    finals = [r.final_eval for rs in s.groups.values() for r in rs if r.final_eval is not None]
    if not finals:
        return [*blocks, Text(f"No run has finished yet (no {FINAL_EVAL}).")]
    mode = "deterministic" if finals[0].get("deterministic", True) else "sampled"
    episodes = int(finals[0].get("eval_episodes", len(finals[0].get("returns", []))))
    if s.kind == "run":
        f = finals[0]
        header = ["episodes", "actions", "return mean ± std", "min", "max", "mean length"]
        blocks += [
            Text("Episodes on separate evaluation envs after training:"),
            Table(header, [[str(episodes), mode, *_eval_cells(f)]]),
        ]
        return blocks + _periodic_evals(next(iter(s.groups.values()))[0]) + _videos(s)
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
        row = [name, str(len(values)), ci(agg["mean"]), ci(agg["median"]), ci(agg["iqm"]),
               ", ".join(num(v) for v in values)]  # fmt: skip
        if compare:
            row.append("(reference)" if name == reference else ci(stats.difference_ci(values, scores[reference])))
        rows.append(row)
    return [*blocks, Table(header, rows)]


def _eval_cells(e: dict[str, Any]) -> list[str]:
    """return mean ± std, min, max, mean length."""
    mean_std = f"{num(e.get('eval_return_mean'))} ± {num(e.get('eval_return_std'))}"
    return [mean_std, *(num(e.get(k)) for k in ("eval_return_min", "eval_return_max", "eval_length_mean"))]


def _periodic_evals(run: RunData, max_rows: int = 20) -> list[Block]:
    """The run's periodic evaluations (evals.jsonl), at most ``max_rows`` evenly spaced."""
    if "global_step" not in run.evals:
        return []
    n = len(run.evals["global_step"])
    keep = sorted({int(i) for i in np.linspace(0, n - 1, min(n, max_rows)).round()})
    rows = []
    for i in keep:
        e = {k: float(v[i]) for k, v in run.evals.items()}
        rows.append([f"{e['global_step']:,.0f}", num(e.get("time_elapsed")), *_eval_cells(e)])
    header = ["env step", "training time (s)", "return mean ± std", "min", "max", "mean length"]
    return [Heading(3, "Periodic evaluations"), Table(header, rows)]


def _ranges(episodes: list[dict[str, Any]]) -> str:
    spans = [f"{e['first_update']}-{e['last_update']}" if e["last_update"] != e["first_update"]
             else str(e["first_update"]) for e in episodes]  # fmt: skip
    extra = f" (+{len(spans) - MAX_RANGES} more)" if len(spans) > MAX_RANGES else ""
    return ", ".join(spans[:MAX_RANGES]) + extra


def diagnostics_section(s: Subject) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Health diagnostics")]
    runs = [r for rs in s.groups.values() for r in rs]
    if all(r.diagnostics is None for r in runs):
        return [*blocks, Text(f"No {DIAGNOSTICS}: the health checks were off (or the run predates them).")]
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
    unit = "step" if s.lm else "update"  # an LM run's episodes count RL steps
    header = ["rule", "warnings", f"{unit}s affected", f"{unit} ranges"]
    if s.kind == "experiment":
        header = ["configuration", "rule", "seeds warned", *header[1:]]
    blocks += [
        Text(f"Rules that warned (one warning per stretch of {unit}s in the condition that outlasted its patience):"),
        Table(header, rows),
        Heading(3, "Advice"),
    ]
    return [*blocks, Table(["rule", "condition", "advice"], [[k, c, a] for k, (c, a) in advice.items()])]


def _videos(s: Subject) -> list[Block]:
    """The run's videos (``videos/*.mp4``: ``ppokit eval --video``), linked from the report folder."""
    videos = sorted((s.folder / "videos").glob("*.mp4"))
    if not videos:
        return []
    links = ", ".join(f"[{v.name}](../videos/{v.name})" for v in videos)
    return [Text(f"Videos of the policy: {links}.")]
