"""``ppokit tune``: the TOML search space, a study whose trials are run folders, best.toml that
``ppokit train --config`` takes, the report, a resumed study, two processes on one SQLite
file, a process killed mid-trial, and bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ppokit.errors import ConfigError

optuna = pytest.importorskip("optuna")

from ppokit.analysis.tune import Param, load_space, open_study  # noqa: E402  # needs optuna

SPACE = """
[learning_rate]
low = 1e-4
high = 1e-2
log = true
[update_epochs]
low = 1
high = 4
[ent_coef]
choices = [0.0, 0.01]
"""
# A tiny CartPole trial: 4 envs x 16 steps, 6 updates, a periodic evaluation every 2 updates.
TINY = ["--env", "CartPole-v1", "--preset", "none", "--num-envs", "4", "--num-steps", "16", "--minibatch-size", "32",
        "--total-steps", "384", "--eval-every", "128", "--eval-episodes", "2", "--no-tensorboard"]  # fmt: skip


def _tune(tmp_path: Path, trials: int, *extra: str) -> list[str]:
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    return [sys.executable, "-m", "ppokit", "tune", "--space", str(space), "--study", str(tmp_path / "study"),
            "--trials", str(trials), *TINY, *extra]  # fmt: skip


def _trials(tmp_path: Path) -> list[optuna.trial.FrozenTrial]:
    return open_study(tmp_path / "study", seed=1).trials


def _finished(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    return [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]


def test_space_tables_become_parameters(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(SPACE)
    assert load_space(tmp_path / "s.toml") == [
        Param("algo.learning_rate", 1e-4, 1e-2, log=True),
        Param("algo.update_epochs", 1, 4),
        Param("algo.ent_coef", choices=(0.0, 0.01)),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[learning_rate\nlow = 1", "is not valid TOML"),
        ("[learnig_rate]\nlow = 1e-4\nhigh = 1e-3", "[learnig_rate] is not a config field"),
        ("[learning_rate]\nlow = 1e-2\nhigh = 1e-4", "allowed: numbers with low < high"),
        ("[learning_rate]\nlow = 0.0\nhigh = 1e-2\nlog = true", "(low > 0 with log = true)"),
        ("[update_epochs]\nlow = 1.5\nhigh = 4", "is an integer field; allowed: integer low and high"),
        ("[ent_coef]\nchoices = [0.0]\nlow = 0", "allowed: a non-empty list, alone"),
        ("[ent_coef]\nmin = 0", "allowed: low, high (and log, step) or choices"),
        ("[ent_coef]\nchoices = []", "allowed: a non-empty list, alone"),
        ("", "names no field"),
    ],
)
def test_a_bad_space_names_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "s.toml").write_text(text)
    with pytest.raises(ConfigError) as e:
        load_space(tmp_path / "s.toml")
    assert e.value.field == "space" and message in str(e.value)


def test_a_study_of_run_folders_resumes_and_writes_best_and_report(tmp_path: Path) -> None:
    done = subprocess.run(_tune(tmp_path, 3), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    first = _trials(tmp_path)
    assert len(_finished(first)) == 3
    for t in first:
        run = tmp_path / "study" / "trials" / f"trial-{t.number:04d}"
        assert (run / "metrics.jsonl").exists() and (run / "config.toml").exists()  # an ordinary run folder
    # The same command with more trials goes on: the first three stay as they were.
    done = subprocess.run(_tune(tmp_path, 5), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    trials = _trials(tmp_path)
    assert len(_finished(trials)) == 5
    assert [(t.number, t.params, t.value) for t in trials[:3]] == [(t.number, t.params, t.value) for t in first]

    study = tmp_path / "study"
    best = max((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    trained = subprocess.run([sys.executable, "-m", "ppokit", "train", "--config", str(study / "best.toml"),
                              "--total-steps", "128", "--run-dir", str(tmp_path / "from-best")],
                             capture_output=True, text=True)  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    config = (tmp_path / "from-best" / "config.toml").read_text()
    assert f"update_epochs = {best.params['algo.update_epochs']}" in config
    assert f"learning_rate = {best.params['algo.learning_rate']}" in config
    report = (study / "report.md").read_text()
    assert f"Best: trial {best.number}" in report and "| parameter | importance (fANOVA) |" in report
    assert (study / "history.png").stat().st_size > 0


def test_two_processes_share_one_study(tmp_path: Path) -> None:
    command = _tune(tmp_path, 6)
    (tmp_path / "space.toml").write_text(SPACE)
    procs = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    trials = _trials(tmp_path)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) and len(_finished(trials)) >= 6
    folders = sorted(p.name for p in (tmp_path / "study" / "trials").iterdir())
    assert folders == [f"trial-{n:04d}" for n in sorted(numbers)]  # one run folder per trial, none shared


def test_a_process_killed_mid_trial_loses_nothing_of_the_study(tmp_path: Path) -> None:
    command = _tune(tmp_path, 4, "--total-steps", "3840")  # 60 updates a trial: time to be killed in one
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    second = tmp_path / "study" / "trials" / "trial-0001" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (second.exists() and second.read_text().count("\n") >= 5) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _trials(tmp_path)
    assert [t.state.name for t in before][:2] == ["COMPLETE", "RUNNING"]  # trial 1 died running
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    after = _trials(tmp_path)
    assert (after[0].params, after[0].value) == (before[0].params, before[0].value)  # kept as it was
    assert len(_finished(after)) >= 4


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda root: (root / "study").mkdir() or (root / "study" / "study.db").write_text("not sqlite"),
         "study: "),
        (lambda root: (root / "space.toml").unlink(), "space: "),
    ],
)  # fmt: skip
def test_bad_study_or_space_is_one_line_and_exit_2(tmp_path: Path, prepare: object, message: str) -> None:
    command = _tune(tmp_path, 1)
    prepare(tmp_path)  # type: ignore[operator]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "study" / "trials").exists()
