"""Multi-seed experiments: grid x seeds in worker processes, resume, spec checks."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import pytest

import ppokit
from ppokit.analysis import experiment as exp
from ppokit.analysis.jobs import run_jobs
from ppokit.cli import main
from ppokit.errors import ConfigError
from ppokit.flags import parse_grid
from tests.conftest import tiny_config


def test_grid_times_seeds_run_in_parallel_and_summarize(tmp_path: Path) -> None:
    base = tiny_config(tmp_path / "unused", total_steps=128)
    grid = {"update_epochs": [1, 2]}
    runs = exp.plan_runs(tmp_path / "exp", base, grid, [1, 2])
    assert [(r.variant, r.seed) for r in runs] == [
        ("update_epochs=1", 1), ("update_epochs=1", 2), ("update_epochs=2", 1), ("update_epochs=2", 2),
    ]  # fmt: skip
    assert runs[2].config.algo.update_epochs == 2 and runs[2].config.seed == 1
    exp.load_or_write_spec(tmp_path / "exp", base, grid, [1, 2])
    finished: list[tuple[str, int]] = []
    summary = exp.run_experiment(tmp_path / "exp", runs, workers=2, on_result=lambda v, s, x: finished.append((v, s)))
    assert sorted(finished) == sorted((r.variant, r.seed) for r in runs)
    assert set(summary) == {"update_epochs=1", "update_epochs=2"}
    for stats in summary.values():
        assert len(stats["scores"]) == 2
        assert stats["iqm"]["low"] <= stats["iqm"]["point"] <= stats["iqm"]["high"]
    on_disk = json.loads((tmp_path / "exp" / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    for run in runs:
        assert (run.run_dir / "eval.json").is_file()
    # Worker processes train exactly what a direct call trains.
    direct = ppokit.train(dataclasses.replace(runs[0].config, run_dir=str(tmp_path / "direct")))
    assert direct.evaluation is not None
    assert direct.evaluation.mean == summary["update_epochs=1"]["scores"][0]  # seed 1


def test_interrupted_experiment_resumes(tmp_path: Path) -> None:
    base = tiny_config(tmp_path / "unused", total_steps=256)
    runs = exp.plan_runs(tmp_path / "exp", base, {}, [1, 2])
    exp.load_or_write_spec(tmp_path / "exp", base, {}, [1, 2])
    ppokit.train(runs[0].config)  # finished before the "crash"
    ppokit.train(runs[1].config, stop_after=1)  # interrupted
    assert [exp.run_status(r) for r in runs] == ["done", "interrupted"]
    done_before = (runs[0].run_dir / "eval.json").read_text()
    finished: list[int] = []
    exp.run_experiment(tmp_path / "exp", runs, workers=1, on_result=lambda v, s, x: finished.append(s))
    assert finished == [2]  # only the unfinished run ran
    assert (runs[0].run_dir / "eval.json").read_text() == done_before
    metrics = (runs[1].run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(m)["update"] for m in metrics] == [1.0, 2.0, 3.0, 4.0]


def test_existing_experiment_with_other_spec_is_refused(tmp_path: Path) -> None:
    base = tiny_config(tmp_path / "unused")
    exp.load_or_write_spec(tmp_path / "exp", base, {}, [1, 2])
    exp.load_or_write_spec(tmp_path / "exp", base, {}, [1, 2])  # same spec: fine
    with pytest.raises(ConfigError, match="another spec"):
        exp.load_or_write_spec(tmp_path / "exp", base, {}, [1, 2, 3])


def test_every_grid_point_is_validated_before_work(tmp_path: Path) -> None:
    base = tiny_config(tmp_path / "unused")
    with pytest.raises(ConfigError, match=r"update_epochs.*--allow-unsafe"):
        exp.plan_runs(tmp_path / "exp", base, {"update_epochs": [4, 40]}, [1])
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["update_epochs=1,4,10,30"], {"update_epochs": [1, 4, 10, 30]}),
        (
            ["learning_rate=0.001,3e-4", "norm_obs=true,false"],
            {"learning_rate": [0.001, 3e-4], "norm_obs": [True, False]},
        ),
        (["target_kl=none,0.02"], {"target_kl": [None, 0.02]}),
        (["hidden_sizes=64x64,32"], {"hidden_sizes": [(64, 64), (32,)]}),
    ],
)
def test_parse_grid(items: list[str], expected: dict[str, list[object]]) -> None:
    assert parse_grid(items) == expected


@pytest.mark.parametrize(
    ("items", "message"),
    [(["epochs=1,2"], "unknown field 'epochs'"), (["update_epochs"], "KEY=V1,V2"),
     (["update_epochs=a"], "cannot read 'a' as int"), (["norm_obs=yes"], "cannot read 'yes'")],
)  # fmt: skip
def test_bad_grid_items(items: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_grid(items)


def test_experiment_cli_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "exp"
    args = ["experiment", "--out", str(out), "--seeds", "2", "--workers", "2", "--set", "update_epochs=1,2",
            "--num-envs", "4", "--num-steps", "16", "--minibatch-size", "32", "--total-steps", "128",
            "--eval-episodes", "2", "--no-tensorboard"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "4 runs (0 already done)" in printed and "update_epochs=2" in printed
    spec = json.loads((out / "experiment.json").read_text())
    assert spec["grid"] == {"update_epochs": [1, 2]} and spec["seeds"] == [1, 2]
    assert main(args) == 0  # again: resumes, nothing left to run
    assert "4 runs (4 already done)" in capsys.readouterr().out
    assert main(["experiment", "--out", str(out), "--seeds", "0"]) == 2


def test_spec_written_before_a_new_config_field_still_resumes(tmp_path: Path) -> None:
    base = tiny_config(tmp_path / "unused")
    exp.load_or_write_spec(tmp_path / "exp", base, {}, [1])
    spec_file = tmp_path / "exp" / "experiment.json"
    spec = json.loads(spec_file.read_text())
    del spec["base"]["diagnostics"]["value_warmup"]  # as written by a ppokit without that field
    spec_file.write_text(json.dumps(spec))
    exp.load_or_write_spec(tmp_path / "exp", base, {}, [1])  # the default fills in: same spec


def _meet(job: tuple[str, int]) -> tuple[int, int, bool]:
    """A job of the run_jobs tests: leave a mark in the shared folder, then wait (60 s at most)
    for a second job's mark; only jobs that run at the same time both see two marks."""
    folder, index = Path(job[0]), job[1]
    (folder / f"started-{index}").touch()
    deadline = time.monotonic() + 60.0
    while len(list(folder.glob("started-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    return index, os.getpid(), len(list(folder.glob("started-*"))) >= 2


def test_run_jobs_runs_in_parallel_and_skips_finished_jobs(tmp_path: Path) -> None:
    jobs = [(str(tmp_path), i) for i in range(4)]
    saved = {0: (0, -1, True), 2: (2, -1, True)}  # finished by an "earlier call"
    reported: list[tuple[int, int, bool]] = []
    results = run_jobs(jobs, 2, _meet, reported.append, finished=lambda job: saved.get(job[1]))
    assert results[:2] == [saved[0], saved[2]]  # the saved ones first, in job order
    new = sorted(results[2:])
    assert [index for index, _, _ in new] == [1, 3]
    assert all(met for _, _, met in new)  # both ran at once, in two worker processes
    assert len({pid for _, pid, _ in new} | {os.getpid()}) == 3
    assert sorted(reported) == new  # reported as they ended; the saved ones are not reported
    assert sorted(p.name for p in tmp_path.iterdir()) == ["started-1", "started-3"]  # nothing else ran


def test_run_jobs_with_every_job_finished_starts_no_worker(tmp_path: Path) -> None:
    reported: list[tuple[int, int, bool]] = []
    results = run_jobs([(str(tmp_path), 0)], 4, _meet, reported.append, finished=lambda job: (job[1], -1, True))
    assert results == [(0, -1, True)] and reported == []
    assert list(tmp_path.iterdir()) == []
