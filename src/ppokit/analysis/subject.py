"""What a report is about: a run folder or an experiment folder, read into groups of runs.

A run is one group of one run; an experiment one group per configuration (variant), its
seeds' runs in it, in the grid's order, so that every section lists them alike.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ppokit.analysis import curves
from ppokit.analysis.curves import RunData
from ppokit.errors import ConfigError
from ppokit.io.run_dir import CONFIG, EXPERIMENT_SPEC, METRICS, RUNS


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

    @property
    def lm(self) -> bool:
        """A language-model run (or experiment of them): its config.toml has an ``[lm]`` table."""
        return isinstance(self.config.get("lm"), dict)


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
    if (path / CONFIG).is_file():
        raise ConfigError("report", f"{path} has no {METRICS}: the run has not logged an update yet")
    if not (path / EXPERIMENT_SPEC).is_file():
        raise ConfigError(
            "report",
            f"{path} is neither a run folder ({CONFIG} + {METRICS}) nor an experiment folder ({EXPERIMENT_SPEC})",
        )
    try:
        spec = json.loads((path / EXPERIMENT_SPEC).read_text())
    except json.JSONDecodeError as e:
        raise ConfigError("report", f"{path}/{EXPERIMENT_SPEC} is not valid JSON ({e})") from None
    grid = dict(spec.get("grid") or {})
    groups, skipped = _load_variants(path, grid)
    if not groups:
        raise ConfigError(
            "report", f"{path} is an experiment with no metrics yet (no run under {RUNS}/ logged an update)"
        )
    return Subject(
        "experiment", path, dict(spec.get("base") or {}), groups, grid, list(spec.get("seeds") or []), skipped
    )


def _load_variants(path: Path, grid: dict[str, list[Any]]) -> tuple[dict[str, list[RunData]], list[Path]]:
    """The runs of each variant folder under ``path/runs``, and the run folders without metrics yet."""
    groups: dict[str, list[RunData]] = {}
    skipped: list[Path] = []
    order = _variant_names(grid)  # the grid's order (1, 4, 10, 30), not the folders' (1, 10, 30, 4)
    rank = lambda p: (order.index(p.name) if p.name in order else len(order), _natural(p.name))
    variants = sorted((p for p in (path / RUNS).glob("*") if p.is_dir()), key=rank)
    for variant in variants:
        for toml in sorted(variant.rglob(CONFIG), key=lambda p: _natural(str(p))):
            try:
                groups.setdefault(variant.name, []).append(curves.load_run(toml.parent))
            except ConfigError:
                skipped.append(toml.parent)
    return groups, skipped
