"""The report of a real (tiny) language-model run folder: its own sections, figures and
numbers, through ``write_report`` and ``ppokit report``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ppokit.analysis.curves import read_jsonl
from ppokit.analysis.report import write_report
from ppokit.cli import main
from ppokit.lm.config import LMMethodName
from ppokit.lm.health import LMHealth, LMHealthConfig
from tests.unit.test_plots import assert_png_has_content

pytest.importorskip("transformers")

FIGURES = ("lm_training.png", "lm_updates.png")
STEPS = 3


def _lm_run(root: Path, method: LMMethodName) -> Path:
    from ppokit.lm.config import LMConfig
    from ppokit.lm.trainer import train

    run = root / method
    train(LMConfig(method=method, sft_steps=2, steps=STEPS, prompts_per_step=4, group_size=4, minibatch_size=16,
                   eval_prompts=8, run_dir=str(run)))  # fmt: skip
    # Health with a threshold every step crosses, so that the section has known content:
    # length_at_limit warns at step 1, one episode over steps 1-3.
    health = LMHealth(STEPS, critic=method == "ppo", config=LMHealthConfig(truncated_max=0.0, truncated_patience=1))
    for step, metrics in enumerate(read_jsonl(run / "metrics.jsonl"), start=1):
        health.observe(step, metrics)
    health.write(run / "diagnostics.json")
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lm")
    methods: tuple[LMMethodName, ...] = ("grpo", "ppo")
    return {method: _lm_run(root, method) for method in methods}


def _section(text: str, heading: str) -> str:
    return text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_lm_run_report(runs: dict[str, Path]) -> None:
    run = runs["grpo"]
    path = write_report(run)
    assert path == run / "report" / "report.md"
    text = path.read_text()
    assert "grpo on sort" in text and f"{STEPS} RL steps of 4 prompts x 4 completions" in text
    for classic in ("Learning speed", "Trust region", "Final evaluation"):
        assert f"## {classic}" not in text
    config = _section(text, "Configuration")
    assert "| lm.steps | 3 | 100 |" in config and "| lm.group_size | 4 | 8 |" in config
    assert "run_dir" not in config.split("<details>")[0]
    assert "[lm]" in config  # the full config.toml
    e = json.loads((run / "eval.json").read_text())
    evaluation = _section(text, "Evaluation")
    assert f"| after SFT (the reference) | {e['success_after_sft']:.3f} | {e['reward_after_sft']:.3f} |" in evaluation
    assert f"| after RL | {e['success']:.3f} | {e['reward']:.3f} |" in evaluation
    assert f"| change | {e['success'] - e['success_after_sft']:+.3f} |" in evaluation
    assert "8 fresh prompts" in evaluation
    rewards = np.array([m["reward_mean"] for m in read_jsonl(run / "metrics.jsonl")])
    training = _section(text, "Training")
    # first 10% of 3 steps is the first step; min and max over the steps
    assert f"| reward_mean | {rewards[0]:.3g} | {rewards[-1]:.3g} | {rewards.min():.3g} | {rewards.max():.3g} |" in (
        training
    )
    for metric in ("kl_ref", "completion_length_mean", "truncated_fraction", "zero_std_groups"):
        assert f"| {metric} |" in training
    assert "| explained_variance |" not in training  # no critic
    health = _section(text, "Health diagnostics")
    assert "| length_at_limit | 1 | 3 | 1-3 |" in health
    assert "| rule | warnings | steps affected | step ranges |" in health
    assert "missing_eos_penalty" in health  # the advice
    for figure in FIGURES:
        assert f"]({figure})" in text
        assert_png_has_content(run / "report" / figure)


def test_lm_ppo_report_shows_the_critic(runs: dict[str, Path]) -> None:
    text = write_report(runs["ppo"]).read_text()
    training = _section(text, "Training")
    assert "| explained_variance |" in training and "| value_loss |" in training and "| kl_coef |" in training
    assert "ppo on sort" in text


def test_lm_report_through_the_cli_in_html(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    run = runs["grpo"]
    assert main(["report", str(run), "--format", "html"]) == 0
    assert "report.html" in capsys.readouterr().out
    page = (run / "report" / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(FIGURES)
    assert "Evaluation" in page and "length_at_limit" in page


def test_lm_report_without_eval_or_diagnostics(runs: dict[str, Path], tmp_path: Path) -> None:
    """A run still training: metrics and config only."""
    run = tmp_path / "unfinished"
    run.mkdir()
    for name in ("config.toml", "metrics.jsonl"):
        (run / name).write_text((runs["grpo"] / name).read_text())
    text = write_report(run).read_text()
    assert "No run has finished yet (no eval.json)." in text
    assert "No diagnostics.json" in text
    assert_png_has_content(run / "report" / "lm_training.png")


def test_lm_experiment_report(runs: dict[str, Path], tmp_path: Path) -> None:
    """An experiment folder of LM runs: one row per configuration, CIs over seeds."""
    import shutil

    for method, run in runs.items():
        for seed in (1, 2):  # the same run twice: a zero-width CI
            shutil.copytree(run, tmp_path / "runs" / method / f"seed-{seed}", ignore=shutil.ignore_patterns("model"))
    spec = {"base": {"lm": {"task": "sort"}}, "grid": {"method": ["grpo", "ppo"]}, "seeds": [1, 2]}
    (tmp_path / "experiment.json").write_text(json.dumps(spec))
    text = write_report(tmp_path).read_text()
    e = json.loads((runs["ppo"] / "eval.json").read_text())
    assert f"| ppo | 2 | {e['success_after_sft']:.3g} [{e['success_after_sft']:.3g}, " in _section(text, "Evaluation")
    training = _section(text, "Training")
    assert "| ppo | explained_variance |" in training and "| grpo | explained_variance |" not in training
    assert "| grpo | length_at_limit | 2/2 | 2 | 6 |" in _section(text, "Health diagnostics")
    for figure in FIGURES:
        assert_png_has_content(tmp_path / "report" / figure)
