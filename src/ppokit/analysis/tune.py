"""``ppokit tune``: hyperparameter search with Optuna over a space given in TOML.

A study folder holds ``study.db`` (Optuna's SQLite storage: a study resumes after a stop, and
several ``ppokit tune`` processes on the same folder share it; ``study.lock`` lets one at a
time create or load it), one ordinary run folder per
trial (``trials/trial-NNNN``), ``best.toml`` (the best trial's whole configuration, which
``ppokit train --config`` takes) and ``report.md`` with the optimization history, the
parameter importances (Optuna's fANOVA) and every trial. rl-baselines3-zoo's ``--optimize``
is the anchor: TPE sampling (Bergstra et al. 2011), median pruning on periodic evaluations.

The space: one TOML table per field (a short name or a dotted path)::

    [learning_rate]
    low = 1e-5
    high = 1e-2
    log = true          # log-uniform
    [update_epochs]
    low = 1             # integers when low, high (and step) are integers
    high = 20
    [ent_coef]
    choices = [0.0, 0.01]

A trial's objective is the mean return of its final evaluation (maximized); a combination the
config refuses is pruned before it trains (its reason in the trial's ``refused`` attribute). Every trial
evaluates periodically (``eval_every``; default a fifth of the run) and reports each
evaluation to the pruner, which stops trials below the median of earlier trials at the same
step. A process killed mid-trial loses only that trial's progress: finished trials are in the
database, the heartbeat marks the killed one failed once its grace period has passed and
queues its parameters again, and the same command goes on until the study has its number of
finished (complete or pruned) trials.
"""

from __future__ import annotations

import fcntl
import math
import tomllib
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ppokit.config import RunConfig, leaf_types, override, resolve, to_dict
from ppokit.errors import ConfigError
from ppokit.io.checkpoint import atomic_write_text

STUDY_NAME = "ppokit"
STUDY_DB = "study.db"
STUDY_LOCK = "study.lock"
HEARTBEAT_S = 5  # a running trial's heartbeat; one silent for GRACE_S is a dead process's
GRACE_S = 15


@dataclass(frozen=True)
class Param:
    path: str  # the field's dotted path
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] | None = None

    def suggest(self, trial: Any) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.path, list(self.choices))
        low, high = float(self.low or 0), float(self.high or 0)  # set whenever choices is not
        if all(isinstance(v, int) for v in (self.low, self.high, self.step or 1)):
            return trial.suggest_int(self.path, int(low), int(high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.path, low, high, step=self.step, log=self.log)


def load_space(path: Path) -> list[Param]:
    """The search space of a TOML file; ConfigError (field ``space``) naming what is wrong."""
    try:
        tables = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError("space", f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("space", f"{path} cannot be read ({type(e).__name__})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("space", f"{path} is not valid TOML ({e})") from None
    if not tables:
        raise ConfigError("space", f"{path} names no field; allowed: one [field] table per hyperparameter")
    return [_param(key, table) for key, table in tables.items()]


def _param(key: str, table: Any) -> Param:
    try:
        path = resolve(key)
    except ConfigError:
        raise ConfigError(
            "space", f"[{key}] is not a config field; allowed: the fields of ppokit train --help"
        ) from None
    if not isinstance(table, dict) or not (set(table) <= {"low", "high", "log", "step", "choices"}):
        raise ConfigError("space", f"[{key}] holds {table!r}; allowed: low, high (and log, step) or choices")
    if "choices" in table:
        choices = table["choices"]
        if not isinstance(choices, list) or not choices or set(table) != {"choices"}:
            raise ConfigError("space", f"[{key}] choices = {choices!r}; allowed: a non-empty list, alone")
        return Param(path, choices=tuple(choices))
    low, high = table.get("low"), table.get("high")
    numbers = [v for v in (low, high) if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) < 2 or not numbers[0] < numbers[1] or (table.get("log") and numbers[0] <= 0):
        raise ConfigError("space", f"[{key}] low = {low!r}, high = {high!r}; allowed: numbers with low < high "
                                   "(low > 0 with log = true)")  # fmt: skip
    if (isinstance(low, float) or isinstance(high, float)) and leaf_types()[path] is int:
        raise ConfigError("space", f"[{key}] is an integer field; allowed: integer low and high")
    return Param(path, low, high, bool(table.get("log", False)), table.get("step"))


def open_study(folder: Path, seed: int) -> Any:
    """The study in ``folder/study.db`` (created or loaded); ConfigError when it cannot be opened."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # ppokit prints its own summary
    folder.mkdir(parents=True, exist_ok=True)
    # Processes starting together would race to create the database's tables (a UNIQUE
    # constraint fails in one of them): one at a time creates or loads the study.
    with (folder / STUDY_LOCK).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _create_or_load(optuna, folder, seed)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _create_or_load(optuna: Any, folder: Path, seed: int) -> Any:
    try:
        with warnings.catch_warnings():  # the heartbeat is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(
                f"sqlite:///{folder.resolve() / STUDY_DB}",
                heartbeat_interval=HEARTBEAT_S,
                grace_period=GRACE_S,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
                engine_kwargs={"connect_args": {"timeout": 30}},  # several processes write the same file
            )
        return optuna.create_study(
            study_name=STUDY_NAME,
            storage=storage,
            direction="maximize",
            load_if_exists=True,
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
        )
    except Exception as e:  # SQLAlchemy's and Optuna's errors for a file that is not a study
        first = str(e).splitlines()[0][:160]
        raise ConfigError("study", f"{folder / STUDY_DB} cannot be opened as an Optuna study ({first})") from None


def tune(base: RunConfig, space: list[Param], folder: Path, trials: int) -> Any:
    """Run trials until the study has ``trials`` finished (complete or pruned) ones; return it."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    import ppokit
    from ppokit.classic.hooks import EvalEvent, Hooks

    study = open_study(folder, base.seed)
    eval_every = base.eval_every or max(base.batch_size, base.total_steps // 5)

    def objective(trial: optuna.Trial) -> float:
        values = {p.path: p.suggest(trial) for p in space}
        run_dir = folder / "trials" / f"trial-{trial.number:04d}"
        try:
            config = replace(override(base, values), run_dir=str(run_dir), eval_every=eval_every, progress=False)
            config = config.validate()
        except ConfigError as e:  # a combination the config refuses (a minibatch that does not divide the batch)
            trial.set_user_attr("refused", str(e))
            raise optuna.TrialPruned() from None

        def report(event: EvalEvent) -> None:
            trial.report(event.record["eval_return_mean"], step=int(event.record["global_step"]))
            if trial.should_prune():
                raise optuna.TrialPruned()

        result = ppokit.train(config, hooks=Hooks(on_eval=[report]))
        assert result.evaluation is not None  # a finished run evaluates
        return result.evaluation.mean

    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    if sum(t.state in finished for t in study.trials) < trials:
        study.optimize(objective, callbacks=[MaxTrialsCallback(trials, states=finished)])
    write_best(study, base, folder)
    write_report(study, folder)
    return study


def write_best(study: Any, base: RunConfig, folder: Path) -> Path | None:
    """``best.toml``: the best trial's configuration, without its run folder."""
    import tomli_w

    try:
        best = study.best_trial
    except ValueError:  # no trial has completed yet
        return None
    config = override(base, best.params)
    data = {k: v for k, v in to_dict(config).items() if k != "run_dir"}
    path = folder / "best.toml"
    header = f"# ppokit tune: trial {best.number}, final evaluation {best.value:.2f}; ppokit train --config {path}\n"
    atomic_write_text(path, header + tomli_w.dumps(data))
    return path


def write_report(study: Any, folder: Path) -> Path:
    """``report.md`` with the optimization history figure, the parameter importances and the trials."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna
    from matplotlib import pyplot as plt

    trials = study.trials
    lines = [f"# Study {folder}", "", f"{len(trials)} trials: " + ", ".join(
        f"{sum(t.state.name == s for t in trials)} {s.lower()}" for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")
    ) + "."]  # fmt: skip
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    if complete:
        best = study.best_trial
        lines += ["", f"Best: trial {best.number}, final evaluation {best.value:.2f}: "
                  + ", ".join(f"`{k}` = {v}" for k, v in best.params.items()) + " (best.toml)."]  # fmt: skip
        with warnings.catch_warnings():  # Optuna marks its matplotlib plots experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            ax = optuna.visualization.matplotlib.plot_optimization_history(study)
        figure = ax.get_figure(root=True)
        assert figure is not None
        figure.savefig(folder / "history.png", dpi=100, bbox_inches="tight")
        plt.close(figure)
        lines += ["", "![optimization history](history.png)"]
    if len(complete) >= 2 and len(study.best_trial.params) >= 1:
        importances = optuna.importance.get_param_importances(study)
        lines += ["", "| parameter | importance (fANOVA) |", "|---|---|"]
        lines += [f"| `{k}` | {v:.3f} |" for k, v in importances.items()]
    lines += ["", "| trial | state | value (pruned: its last periodic evaluation) | parameters |", "|---|---|---|---|"]
    for t in trials:
        value = f"{t.value:.2f}" if t.value is not None and math.isfinite(t.value) else ""
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
        lines.append(f"| {t.number} | {t.state.name.lower()} | {value} | {params} |")
    path = folder / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
