"""The report of a real (tiny) experiment and of a single run; clear errors for other folders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import ppokit
from ppokit.analysis import stats
from ppokit.analysis.report import write_report
from ppokit.config import override, to_dict
from ppokit.errors import ConfigError
from tests.conftest import tiny_config
from tests.unit.test_plots import assert_png_has_content

FIGURES = ("learning_curves.png", "diagnostics.png", "kl_per_update.png")
KL_WARNING = {
    "condition": "approx KL above 0.05",
    "advice": "the policy moves too far per update: lower the learning rate",
    "patience": 2,
    "warnings": 1,
    "updates_affected": 3,
    "episodes": [{"rule": "kl_high", "first_update": 2, "last_update": 4, "worst": 0.09, "warned": True}],
}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ppokit experiment``'s layout: two seeds of one configuration, with periodic evals.

    seed-1's diagnostics.json is replaced by one with a KL warning, seed-2's by a quiet one,
    so that the health section has known content.
    """
    root = tmp_path_factory.mktemp("experiment")
    for seed in (1, 2):
        config = tiny_config(root / "runs" / "base" / f"seed-{seed}", seed=seed, eval_every=128)
        ppokit.train(config)
    base = to_dict(override(config, {"run_dir": None, "seed": 0}))
    (root / "experiment.json").write_text(json.dumps({"base": base, "grid": {}, "seeds": [1, 2]}))
    quiet = {**KL_WARNING, "warnings": 0, "updates_affected": 0, "episodes": []}
    for seed, rule in ((1, KL_WARNING), (2, quiet)):
        diagnostics = {"total_warnings": rule["warnings"], "rules": {"kl_high": rule}}
        (root / "runs" / "base" / f"seed-{seed}" / "diagnostics.json").write_text(json.dumps(diagnostics))
    return root


def test_experiment_report(experiment: Path) -> None:
    path = write_report(experiment, threshold=30.0)
    assert path == experiment / "report" / "report.md"
    text = path.read_text()
    scores = [
        json.loads((experiment / "runs" / "base" / f"seed-{s}" / "eval.json").read_text())["eval_return_mean"]
        for s in (1, 2)
    ]
    estimates = stats.aggregate(np.asarray(scores))
    for name in ("mean", "median", "iqm"):
        e = estimates[name]
        assert f"{e.point:,.1f} [{e.low:,.1f}, {e.high:,.1f}]" in text  # the final-eval CI, as computed by stats
    assert "| configuration | seeds | mean [95% CI] | median [95% CI] | IQM [95% CI] |" in text
    assert re.search(r"\| base \| 2 \| ", text)
    assert "seeds reaching 30" in text and "AUC" in text
    assert "<details><summary>Full base configuration (TOML)</summary>" in text
    assert "| algo.num_steps | 16 | 128 |" in text  # a non-default setting
    assert "| base | kl_high | 1/2 | 1 | 3 | seed-1: 2-4 |" in text
    assert "lower the learning rate" in text
    for figure in FIGURES:
        assert f"]({figure})" in text
        assert_png_has_content(experiment / "report" / figure)


def test_run_report_in_html(experiment: Path) -> None:
    run = experiment / "runs" / "base" / "seed-2"
    path = write_report(run, fmt="html")
    assert path == run / "report" / "report.html"
    page = path.read_text()
    assert page.count('src="data:image/png;base64,') == len(FIGURES)
    assert "No health warnings" in page
    assert "return mean ± std" in page and "Periodic evaluations" in page
    markdown = (run / "report" / "report.md").read_text()
    final = json.loads((run / "eval.json").read_text())
    assert f"{final['eval_return_mean']:,.1f} ± {final['eval_return_std']:,.1f}" in markdown
    assert "<details><summary>Full configuration (config.toml)</summary>" in markdown


def test_report_refuses_folders_it_cannot_read(tmp_path: Path, experiment: Path) -> None:
    with pytest.raises(ConfigError, match="neither a run folder"):
        write_report(tmp_path)
    with pytest.raises(ConfigError, match="not a folder"):
        write_report(tmp_path / "missing")
    (tmp_path / "config.toml").write_text("seed = 1\n")
    with pytest.raises(ConfigError, match="no metrics"):
        write_report(tmp_path)
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(ConfigError, match="no metrics"):
        write_report(tmp_path)
    empty = tmp_path / "empty-experiment"
    empty.mkdir()
    (empty / "experiment.json").write_text(json.dumps({"base": {}, "grid": {}, "seeds": [1]}))
    with pytest.raises(ConfigError, match="no metrics"):
        write_report(empty)
    with pytest.raises(ConfigError, match="format"):
        write_report(experiment, fmt="pdf")


def test_report_has_a_trust_region_table(tmp_path: Path) -> None:
    from ppokit.classic.trainer import train
    from tests.conftest import tiny_config

    train(tiny_config(tmp_path / "run", method="ppo-kl"))
    text = write_report(tmp_path / "run").read_text()
    section = text.split("## Trust region", 1)[1].split("##", 1)[0]
    assert "| mean KL per update | largest KL of an update |" in section
    row = section.strip().splitlines()[-1]
    assert "n/a" not in row and float(row.strip("| ").split(" | ")[0]) > 0.0
