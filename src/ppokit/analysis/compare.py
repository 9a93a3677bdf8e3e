"""ppokit against Stable-Baselines3's PPO: same hyperparameters, env, seeds and env steps.

:func:`to_sb3` (:mod:`ppokit.analysis.sb3`) maps a :class:`~ppokit.config.RunConfig` field by
field onto SB3's ``PPO(...)`` arguments (the mapping and every difference that cannot be
matched: ``docs/compare.md``). :func:`compare` trains both libraries on every seed in worker
processes (:func:`ppokit.analysis.jobs.run_jobs`, as experiments do), evaluates both final
policies with ppokit's protocol (:func:`ppokit.classic.evaluation.evaluate`: deterministic, 20
episodes, fresh envs with the same seeds), and writes::

    OUT/ppokit/seed-<s>/      an ordinary ppokit run folder (+ result.json)
    OUT/sb3/seed-<s>/         config.toml (the ppokit config mapped), sb3_kwargs.json,
                              metrics.jsonl (per rollout: global_step, episode_return_mean,
                              time_elapsed), eval.json, model.zip, result.json
    OUT/comparison.json       per-seed scores, aggregates with 95% bootstrap CIs, timings
    OUT/comparison.md         the same as a table
    OUT/comparison.png        learning curves and final evaluations

(:mod:`ppokit.analysis.compare_result` summarizes the runs and draws the table and figure.)
Training wall-clock is measured the same way for both: the sum over updates of the time from
the start of a rollout to the end of its update (ppokit's ``time_elapsed``); env construction,
checkpoints, logging and evaluation are outside it. Running the same call again reuses the
finished runs of the same configuration.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppokit.analysis.compare_result import (
    EVAL_EPISODES,
    LIBRARIES,
    ComparisonResult,
    LibraryResult,
    RunRecord,
    figure,
    markdown,
    summarize,
)
from ppokit.analysis.jobs import run_jobs
from ppokit.analysis.sb3 import LinearSchedule, SB3Setup, SharedTrunk, to_sb3, train_sb3
from ppokit.config import RunConfig, from_dict, override, to_dict
from ppokit.errors import ConfigError
from ppokit.io import checkpoint as ckpt
from ppokit.io.run_dir import COMPARISON_JSON, COMPARISON_MD, COMPARISON_PNG, RunDir, seed_folder
from ppokit.presets import PRESETS

__all__ = [
    "EVAL_EPISODES",
    "LIBRARIES",
    "ComparisonResult",
    "LibraryResult",
    "LinearSchedule",
    "RunRecord",
    "SB3Setup",
    "SharedTrunk",
    "compare",
    "default_config",
    "figure",
    "markdown",
    "to_sb3",
]

Job = tuple[str, RunConfig]  # (library, the run's config)


def default_config(env_id: str) -> RunConfig:
    """The env's ppokit preset (read now, so a preset edited since import is used), else defaults."""
    preset = PRESETS.get(env_id)
    return override(RunConfig(), {**(preset.overrides if preset else {}), "id": env_id})


def compare(
    env_id: str,
    seeds: int | Sequence[int],
    total_steps: int,
    out_dir: str | Path,
    workers: int,
    config: RunConfig | None = None,
    on_result: Callable[[RunRecord], None] | None = None,
) -> ComparisonResult:
    """Train ppokit and SB3 on ``seeds`` (a count S: seeds 1..S) for ``total_steps`` env steps
    each, in up to ``workers`` processes; write and return the comparison.

    ``config`` defaults to :func:`default_config`; ``env_id`` and ``total_steps`` override it.
    """
    out = Path(out_dir)
    seed_list = list(range(1, seeds + 1)) if isinstance(seeds, int) else list(seeds)
    if not seed_list or len(set(seed_list)) != len(seed_list):
        raise ConfigError("seeds", f"{seeds!r}; allowed: a count >= 1 or distinct seeds")
    if workers < 1:
        raise ConfigError("workers", f"{workers}; allowed: an integer >= 1")
    base = override(config or default_config(env_id), {
        "id": env_id, "total_steps": total_steps, "eval_episodes": EVAL_EPISODES, "eval_deterministic": True,
        "eval_every": 0, "progress": False, "tensorboard": False})  # fmt: skip
    jobs = [(lib, override(base, {"seed": s, "run_dir": str(out / lib / seed_folder(s))}).validate())
            for s in seed_list for lib in LIBRARIES]  # fmt: skip  # alternating: load drift hits both alike
    records = run_jobs(jobs, workers, _run_job, on_result, finished=_saved_record)
    result = summarize(base, seed_list, out, records)
    out.mkdir(parents=True, exist_ok=True)
    ckpt.atomic_write_text(out / COMPARISON_JSON, json.dumps(result.to_dict(), indent=2))
    ckpt.atomic_write_text(out / COMPARISON_MD, markdown(result))
    figure(result, out / COMPARISON_PNG)
    return result


def _saved_record(job: Job) -> RunRecord | None:
    """The record of a run an earlier call finished with the same config; None for a run to
    train (a half-written run folder is removed: it starts again)."""
    _, config = job
    run_dir = RunDir(Path(str(config.run_dir)))
    if run_dir.result.is_file():
        data = json.loads(run_dir.result.read_text())
        if not _same_config(data.pop("config"), config):
            raise ConfigError("out", f"{run_dir.root} holds a run of another configuration; pick another --out")
        return RunRecord(**data)
    shutil.rmtree(run_dir.root, ignore_errors=True)
    return None


def _same_config(saved: dict[str, Any], config: RunConfig) -> bool:
    """Whether a saved config dict is ``config`` (fields added since take their defaults)."""
    try:
        return from_dict(saved) == config
    except ConfigError:  # a field that no longer exists
        return False


def _run_job(job: Job) -> RunRecord:
    """Worker: train one library on one seed with one torch thread; save its result.json."""
    library, config = job
    torch.set_num_threads(1)
    started = time.perf_counter()
    run = _train_ppokit if library == "ppokit" else train_sb3
    eval_returns, train_time, steps = run(config)
    assert config.run_dir is not None
    record = RunRecord(library, config.seed, config.run_dir, float(np.mean(eval_returns)), eval_returns,
                       train_time, steps, time.perf_counter() - started)  # fmt: skip
    payload = {"config": to_dict(config), **asdict(record)}
    ckpt.atomic_write_text(RunDir(Path(config.run_dir)).result, json.dumps(payload, indent=2))
    return record


def _train_ppokit(config: RunConfig) -> tuple[list[float], float, int]:
    from ppokit.classic.trainer import train

    result = train(config)
    assert result.evaluation is not None
    return result.evaluation.returns, result.metrics["time_elapsed"], result.global_step
