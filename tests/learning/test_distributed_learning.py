"""Two data-parallel processes (``ppokit train --nproc 2``, gloo) reach the single-process
suite's thresholds (docs/distributed.md has the seeds). CartPole: the preset split over the
ranks (4 envs and minibatches of 128 each: the preset's update), seeds 1-6 496.1-500 (threshold
475). Pendulum: the whole preset on each rank, seeds 1-4 -201.3 to -173.0 (threshold -250). One
fixed seed each.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.learning


SPLIT = ["--env.num-envs", "4", "--minibatch-size", "128"]


@pytest.mark.parametrize(("env_id", "extra", "threshold"), [("CartPole-v1", SPLIT, 475.0),
                                                             ("Pendulum-v1", [], -250.0)])  # fmt: skip
def test_two_ranks_reach_the_threshold_with_the_preset(
    tmp_path: Path, env_id: str, extra: list[str], threshold: float
) -> None:
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "ppokit", "train", "--nproc", "2", "--env.id", env_id, "--seed", "1",
                           *extra, "--run-dir", str(run), "--no-progress", "--no-tensorboard"],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    evaluation = json.loads((run / "eval.json").read_text())
    assert len(evaluation["returns"]) == 20 and evaluation["eval_return_mean"] >= threshold, evaluation["returns"]
    assert json.loads((run / "diagnostics.json").read_text())["total_warnings"] == 0  # healthy
