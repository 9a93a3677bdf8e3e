"""One learner and two asynchronous rollout workers (``ppokit train --async-workers 2``, Ray)
learn CartPole with its preset.

Arrival order depends on timing, so an async run is not reproducible: four runs (seeds 1-4,
docs/distributed.md) scored 500, 348.3, 500, 500 at the preset's 100k steps; the threshold, 200,
keeps a margin below the worst of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.learning
pytest.importorskip("ray")


def test_two_async_workers_learn_cartpole(tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "ppokit", "train", "--async-workers", "2", "--seed", "1",
                           "--run-dir", str(run), "--no-progress", "--no-tensorboard"],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    evaluation = json.loads((run / "eval.json").read_text())
    assert len(evaluation["returns"]) == 20 and evaluation["eval_return_mean"] >= 200.0, evaluation["returns"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["global_step"] >= 99_000 and max(row["policy_lag"] for row in rows) >= 1
