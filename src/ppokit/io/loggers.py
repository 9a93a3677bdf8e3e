"""Where metrics go: one ``log(step, metrics)`` interface over JSONL, TensorBoard, Weights &
Biases and a live progress bar. ``metrics.jsonl`` is always written; one JSON object per update."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ppokit.io.checkpoint import atomic_write_text


class Logger(Protocol):
    def log(self, step: int, metrics: dict[str, float]) -> None: ...
    def close(self) -> None: ...


def _json_value(v: float) -> float | None:
    return v if math.isfinite(v) else None  # JSON has no NaN; null means "not defined"


def _update_of(line: str) -> float:
    """A line's update, or infinity for a line that is no JSON object (a write torn by a
    crash): dropped on resume, the update is redone."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return math.inf
    return float(record.get("update", 0)) if isinstance(record, dict) else math.inf


class JsonlLogger:
    """Appends one line per update; on resume, drops lines past the checkpoint's update."""

    def __init__(self, path: Path, keep_until_update: int | None = None) -> None:
        self.path = path
        if keep_until_update is not None and path.exists():
            kept = [line for line in path.read_text().splitlines() if _update_of(line) <= keep_until_update]
            atomic_write_text(path, "".join(line + "\n" for line in kept))
        self._file = path.open("a")

    def log(self, step: int, metrics: dict[str, float]) -> None:
        record = {"global_step": step, **{k: _json_value(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class TensorBoardLogger:
    def __init__(self, log_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when used

        self._writer = SummaryWriter(str(log_dir))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            if key != "update" and math.isfinite(value):
                self._writer.add_scalar(key, value, step)

    def close(self) -> None:
        self._writer.close()


class WandbLogger:
    """Weights & Biases: the metrics TensorBoard gets, at the same env steps; the resolved config;
    the final evaluation in the run's summary (``summary``).

    The W&B run id is derived from the run folder's absolute path, so that a resumed run goes on
    in the same W&B run (``resume="allow"``). In ``offline`` mode everything is written under
    the run folder's ``wandb/`` (``wandb sync`` uploads it later); no network is needed.
    """

    def __init__(self, folder: Path, config: dict[str, Any], project: str, entity: str | None, group: str | None,
                 tags: tuple[str, ...], mode: str) -> None:  # fmt: skip
        import wandb  # checked to be installed by validate()

        run_id = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
        self._run = wandb.init(project=project, entity=entity, group=group, tags=list(tags), mode=mode,  # type: ignore[arg-type]  # a checked literal
                               dir=str(folder), name=folder.name, id=run_id, resume="allow", config=config)  # fmt: skip

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self._run.log({k: v for k, v in metrics.items() if k != "update" and math.isfinite(v)}, step=step)

    def summary(self, values: dict[str, float]) -> None:
        self._run.summary.update({k: v for k, v in values.items() if math.isfinite(v)})

    def close(self) -> None:
        self._run.finish()


class ProgressLogger:
    """A rich progress bar with the numbers to watch: return, KL, clip fraction, steps/s."""

    def __init__(self, total_steps: int, start_step: int, console: Console | None = None) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,} steps"),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task("train", total=total_steps, completed=start_step, stats="")
        self._last_return = math.nan  # shown until a rollout finishes another episode
        self._progress.start()

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        ret = metrics.get("episode_return_mean", math.nan)
        ret = self._last_return = ret if math.isfinite(ret) else self._last_return
        stats = (
            f"return {ret:8.2f}  kl {metrics.get('approx_kl', math.nan):.4f}  "
            f"clip {metrics.get('clip_fraction', math.nan):.3f}  {metrics.get('sps', 0):,.0f} sps"
        )
        self._progress.update(self._task, completed=step, stats=stats)

    def close(self) -> None:
        self._progress.stop()


class Loggers:
    """Fans one call out to every logger."""

    def __init__(self, loggers: list[Logger]) -> None:
        self._loggers = loggers

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for logger in self._loggers:
            logger.log(step, metrics)

    def summary(self, values: dict[str, float]) -> None:
        """Final figures (the final evaluation) for the loggers that keep a summary (W&B)."""
        for logger in self._loggers:
            if isinstance(logger, WandbLogger):
                logger.summary(values)

    def close(self) -> None:
        for logger in self._loggers:
            logger.close()
