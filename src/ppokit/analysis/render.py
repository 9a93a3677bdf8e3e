"""A report as blocks (heading, text, table, image, collapsible code), rendered to Markdown or HTML.

The sections of a report build blocks, not markup, so the Markdown and the HTML report say
the same thing; only this module knows either syntax.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


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
