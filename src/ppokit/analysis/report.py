"""The report of a run or an experiment: configuration, final evaluation, figures, health.

``write_report(folder)`` writes ``folder/report/`` with ``report.md`` and the PNG figures it
links (``learning_curves.png``, ``diagnostics.png``, ``kl_per_update.png``); with
``fmt="html"`` also ``report.html``, one self-contained file with the figures embedded.
A language-model run (``config.toml`` with an ``[lm]`` table) gets its own overview,
evaluation, training and figure sections (:mod:`ppokit.analysis.lm_sections`:
``lm_training.png``, ``lm_updates.png``) between the same configuration and health sections.

The report is built as a list of blocks (heading, text, table, image, collapsible code;
:mod:`ppokit.analysis.render`) and rendered to Markdown or HTML, so both formats say the same
thing. What it reports on is read by :mod:`ppokit.analysis.subject`; the sections come from
:mod:`ppokit.analysis.report_sections` (overview, configuration, final evaluation, health) and
:mod:`ppokit.analysis.training_sections` (learning speed, trust region, figures). Across seeds
it reports the mean, median and interquartile mean with 95% percentile-bootstrap confidence
intervals (``ppokit.analysis.stats``; Agarwal et al. 2021), never a bare mean +- std.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from ppokit.analysis.lm_sections import lm_eval_section, lm_figures_section, lm_overview, lm_training_section
from ppokit.analysis.render import Block, render_html, render_markdown
from ppokit.analysis.report_sections import config_section, diagnostics_section, final_eval_section, overview
from ppokit.analysis.subject import Subject, load_subject
from ppokit.analysis.training_sections import figures_section, scores_section, trust_region_section
from ppokit.errors import ConfigError
from ppokit.io.checkpoint import atomic_write_text
from ppokit.io.run_dir import REPORT_DIR, REPORT_HTML, REPORT_MD

__all__ = ["Format", "Subject", "load_subject", "render_html", "render_markdown", "write_report"]

Format = Literal["md", "html"]


def _blocks(subject: Subject, out: Path, threshold: float | None) -> list[Block]:
    """Every section in reading order; the figures are drawn into ``out`` on the way."""
    if subject.lm:
        return [
            *lm_overview(subject),
            *config_section(subject),
            *lm_eval_section(subject),
            *lm_training_section(subject),
            *lm_figures_section(subject, out),
            *diagnostics_section(subject),
        ]
    return [
        *overview(subject),
        *config_section(subject),
        *final_eval_section(subject),
        *scores_section(subject, threshold),
        *trust_region_section(subject),
        *figures_section(subject, out, threshold),
        *diagnostics_section(subject),
    ]


def write_report(path: Path | str, fmt: str = "md", threshold: float | None = None) -> Path:
    """Write ``path/report/`` for a run or experiment folder; return the report file.

    ``fmt="md"`` writes ``report.md`` and the figures; ``"html"`` also writes ``report.html``
    (figures embedded) and returns it. ``threshold``: a return for steps-to-threshold.
    """
    if fmt not in ("md", "html"):
        raise ConfigError("format", f"{fmt!r}; allowed: md, html")
    subject = load_subject(Path(path))
    out = subject.folder / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    blocks = _blocks(subject, out, threshold)
    atomic_write_text(out / REPORT_MD, render_markdown(blocks))
    if fmt == "html":
        atomic_write_text(out / REPORT_HTML, render_html(blocks, out))
        return out / REPORT_HTML
    return out / REPORT_MD
