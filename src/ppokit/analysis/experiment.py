"""Multi-seed experiments: one configuration (or a grid of them) over S seeds.

Layout of an experiment folder::

    EXP/experiment.json                the spec: base config, grid, seeds
    EXP/runs/<variant>/seed-<s>/       one ordinary run folder per (variant, seed)
    EXP/summary.json                   final-evaluation aggregates per variant

``<variant>`` is ``base`` without a grid, else ``key=value[,key=value...]``. Runs go to
worker processes (:func:`ppokit.analysis.jobs.run_jobs`, up to the number of cores, one torch
thread each). Running the same command again resumes the experiment: finished runs are kept,
interrupted runs resume from their checkpoint, missing runs start.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ppokit.analysis.jobs import run_jobs
from ppokit.config import RunConfig, from_dict, override, to_dict
from ppokit.errors import ConfigError
from ppokit.io import checkpoint as ckpt
from ppokit.io.run_dir import CONFIG, DIAGNOSTICS, EVALS, EXPERIMENT_SPEC, METRICS, RUNS, SUMMARY, RunDir, seed_folder

SPEC_FILE = EXPERIMENT_SPEC


@dataclass(frozen=True)
class RunSpec:
    variant: str
    seed: int
    config: RunConfig

    @property
    def run_dir(self) -> Path:
        assert self.config.run_dir is not None
        return Path(self.config.run_dir)


def variant_name(assignment: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in assignment.items()) if assignment else "base"


def plan_runs(out: Path, base: RunConfig, grid: dict[str, list[Any]], seeds: list[int]) -> list[RunSpec]:
    """Every (variant, seed) run with its validated config; errors before any work starts."""
    if not seeds:
        raise ConfigError("seeds", "no seeds; allowed: one or more")
    if len(set(seeds)) != len(seeds):
        raise ConfigError("seeds", f"{seeds} repeats a seed")
    keys = list(grid)
    runs = []
    for values in itertools.product(*(grid[k] for k in keys)):
        assignment = dict(zip(keys, values, strict=True))
        name = variant_name(assignment)
        for seed in seeds:
            run_dir = out / RUNS / name / seed_folder(seed)
            config = override(base, {**assignment, "seed": seed, "run_dir": str(run_dir), "progress": False})
            runs.append(RunSpec(name, seed, config.validate()))
    return runs


def load_or_write_spec(out: Path, base: RunConfig, grid: dict[str, list[Any]], seeds: list[int]) -> None:
    """Write the spec of a new experiment; for an existing one, insist it is the same spec."""
    spec = {"base": to_dict(override(base, {"run_dir": None, "seed": 0})), "grid": grid, "seeds": seeds}
    path = out / SPEC_FILE
    if path.exists():
        existing = json.loads(path.read_text())
        # Rebuilt through the config classes: fields added to ppokit since take their defaults.
        existing["base"] = to_dict(from_dict(existing["base"]))
        if existing != json.loads(json.dumps(spec)):
            raise ConfigError(
                "out", f"{out} holds an experiment with another spec; resume it with the same flags or pick another"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    ckpt.atomic_write_text(path, json.dumps(spec, indent=2))


def run_status(run: RunSpec) -> str:
    if RunDir(run.run_dir).final_eval.is_file():
        return "done"
    if RunDir(run.run_dir).last.is_file():
        return "interrupted"
    return "new"


def _execute(run: RunSpec) -> tuple[str, int, float]:
    """Worker: train (or resume) one run with one torch thread; return its final eval mean."""
    import torch

    from ppokit.classic.trainer import train

    torch.set_num_threads(1)
    if run_status(run) == "interrupted":
        result = train(resume=run.run_dir)
    else:
        if run.run_dir.exists():  # a run that died before its first checkpoint: start it again
            for leftover in (METRICS, EVALS, CONFIG, DIAGNOSTICS):
                (run.run_dir / leftover).unlink(missing_ok=True)
        result = train(run.config)
    assert result.evaluation is not None
    return run.variant, run.seed, result.evaluation.mean


def run_experiment(
    out: Path,
    runs: list[RunSpec],
    workers: int,
    on_result: Callable[[str, int, float], None] | None = None,
) -> dict[str, Any]:
    """Run every run that is not done, in up to ``workers`` processes; write summary.json."""
    todo = [r for r in runs if run_status(r) != "done"]  # an interrupted run resumes in _execute
    report = None if on_result is None else lambda result: on_result(*result)
    run_jobs(todo, workers, _execute, report)
    summary = summarize(runs)
    ckpt.atomic_write_text(out / SUMMARY, json.dumps(summary, indent=2))
    return summary


def summarize(runs: list[RunSpec]) -> dict[str, Any]:
    """Per variant: the final deterministic-eval means of its seeds and their aggregates."""
    from ppokit.analysis.stats import aggregate

    variants: dict[str, list[float]] = {}
    for run in runs:
        evaluation = json.loads(RunDir(run.run_dir).final_eval.read_text())
        variants.setdefault(run.variant, []).append(float(evaluation["eval_return_mean"]))
    out: dict[str, Any] = {}
    for name, scores in variants.items():
        estimates = aggregate(np.asarray(scores))
        out[name] = {
            "scores": scores,
            **{k: {"point": e.point, "low": e.low, "high": e.high} for k, e in estimates.items()},
        }
    return out


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)
