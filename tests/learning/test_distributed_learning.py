"""Two data-parallel processes (``ppokit train --nproc 2``, gloo) learn with the presets.

Two ranks at the preset's env steps take half the updates of one process, each on twice the
batch. Seeds 1-4 (docs/distributed.md): CartPole 500, 500, 402.3, 500 (threshold 350); Pendulum
-201.3, -175.4, -181.4, -173.0 (threshold -250, the single-process suite's). One fixed seed each.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.learning


@pytest.mark.parametrize(("env_id", "threshold"), [("CartPole-v1", 350.0), ("Pendulum-v1", -250.0)])
def test_two_ranks_reach_the_threshold_with_the_preset(tmp_path: Path, env_id: str, threshold: float) -> None:
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "ppokit", "train", "--nproc", "2", "--env.id", env_id, "--seed", "1",
                           "--run-dir", str(run), "--no-progress", "--no-tensorboard"],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    evaluation = json.loads((run / "eval.json").read_text())
    assert len(evaluation["returns"]) == 20 and evaluation["eval_return_mean"] >= threshold, evaluation["returns"]
    assert json.loads((run / "diagnostics.json").read_text())["total_warnings"] == 0  # healthy
