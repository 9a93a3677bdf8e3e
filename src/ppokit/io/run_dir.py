"""Every file name of a run folder and of an experiment folder, in one place.

A run folder::

    config.toml          the resolved configuration (``--config`` reads it back)
    metrics.jsonl        one line per update
    evals.jsonl          one line per periodic evaluation (``eval_every``)
    eval.json            the final evaluation
    diagnostics.json     the health warnings
    tensorboard/         TensorBoard event files
    checkpoints/last.pt  the checkpoint a resume reads
    checkpoints/best.pt  the best periodic evaluation's checkpoint
    result.json          a comparison run's record (``ppokit compare``)
    model/               a language-model run's final model and tokenizer (``save_pretrained``)

An experiment folder holds ``experiment.json`` (its spec), ``summary.json`` and
``runs/<variant>/seed-<s>/``, one run folder per variant and seed; a comparison folder
``comparison.json``, ``comparison.md`` and ``comparison.png``; a report is ``report.md`` or
``report.html`` beside what it reports on, with its figures in ``report/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ppokit.errors import ConfigError

CONFIG = "config.toml"
METRICS = "metrics.jsonl"
EVALS = "evals.jsonl"
FINAL_EVAL = "eval.json"
DIAGNOSTICS = "diagnostics.json"
TENSORBOARD = "tensorboard"
CHECKPOINTS = "checkpoints"
LAST = "last.pt"
BEST = "best.pt"
RESULT = "result.json"
MODEL = "model"  # a language-model run's final model and tokenizer (save_pretrained)
# Experiment, comparison and report folders.
SUMMARY = "summary.json"
COMPARISON_JSON = "comparison.json"
COMPARISON_MD = "comparison.md"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
# An experiment's spec, and the folder of its run folders: runs/<variant>/seed-<s>/.
EXPERIMENT_SPEC = "experiment.json"
RUNS = "runs"
# A report folder (<folder>/report/) and its figures; a comparison's figure.
REPORT_DIR = "report"
LEARNING_CURVES_PNG = "learning_curves.png"
DIAGNOSTICS_PNG = "diagnostics.png"
KL_PER_UPDATE_PNG = "kl_per_update.png"
COMPARISON_PNG = "comparison.png"
# What an SB3 run folder of a comparison holds besides config, metrics, eval and result.
SB3_KWARGS = "sb3_kwargs.json"
SB3_MODEL = "model.zip"
SB3_VECNORMALIZE = "vecnormalize.pkl"


@dataclass(frozen=True)
class RunDir:
    """The paths of one run folder."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def evals(self) -> Path:
        return self.root / EVALS

    @property
    def final_eval(self) -> Path:
        return self.root / FINAL_EVAL

    @property
    def diagnostics(self) -> Path:
        return self.root / DIAGNOSTICS

    @property
    def tensorboard(self) -> Path:
        return self.root / TENSORBOARD

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    @property
    def last(self) -> Path:
        return self.checkpoints / LAST

    @property
    def best(self) -> Path:
        return self.checkpoints / BEST

    @property
    def result(self) -> Path:
        return self.root / RESULT

    @property
    def model(self) -> Path:
        return self.root / MODEL


def checkpoint_path(path: Path) -> Path:
    """A checkpoint file as given, or a run folder's last checkpoint."""
    return RunDir(path).last if path.is_dir() else path


def seed_folder(seed: int) -> str:
    """The name of a seed's run folder in an experiment or a comparison."""
    return f"seed-{seed}"


def run_folder_of(checkpoint: Path) -> Path:
    """The run folder a checkpoint file lives in (``<run>/checkpoints/<name>.pt``)."""
    return checkpoint.parent.parent


def check_writable(path: Path, field: str, folder: bool = True) -> None:
    """ConfigError naming ``field`` unless ``path`` can be written: a folder (or, with
    ``folder=False``, a file) that exists as the other kind, an empty path, or a place whose
    nearest existing parent is not a writable folder. Checked before any work."""
    import os

    if str(path) in ("", "."):
        raise ConfigError(field, f"{str(path)!r} would write into the current folder; allowed: a folder path")
    try:
        if path.exists() and path.is_dir() != folder:
            kind = "a file" if folder else "a folder"
            raise ConfigError(field, f"{path} is {kind}; allowed: {'a folder' if folder else 'a file'} path")
        parent = path if path.exists() and folder else path.parent  # an existing file is replaced in its folder
        while not parent.exists():
            parent = parent.parent
        writable = parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)
    except OSError as e:  # a parent this user may not even look into
        raise ConfigError(field, f"{path} cannot be written ({type(e).__name__}: {e.strerror})") from None
    if not writable:
        raise ConfigError(field, f"{path} cannot be written ({parent} is not a writable folder)")
