"""``--wandb`` in offline mode: the W&B run in the run folder holds the config, every metric that
metrics.jsonl holds at the same env steps, and the final evaluation; a resumed run goes on in
the same W&B run; without the package, one line and exit 2."""

from __future__ import annotations

import importlib.util
import json
import math
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import ppokit
from tests.conftest import tiny_config

pytest.importorskip("wandb")

BLOCK = 32 * 1024  # the .wandb file is a LevelDB log: 32 KiB blocks of checksum, length, type records


def read_wandb(path: Path) -> list[Any]:
    """The records of a ``run-*.wandb`` file, parsed as W&B's protobuf ``Record``."""
    from wandb.proto import wandb_internal_pb2

    data, pos, records, pending = path.read_bytes(), 7, [], b""  # 7: ":W&B", magic and version
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 0:
            break
        pending = chunk if kind in (1, 2) else pending + chunk  # full, first | middle, last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def _items(items: Any) -> dict[str, Any]:
    """A record's items by key (W&B writes a key as ``key`` or as a one-part ``nested_key``)."""
    return {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in items}


def _history(records: list[Any]) -> dict[int, dict[str, Any]]:
    """Each logged row by its step (the env step ppokit passes as ``step``)."""
    return {
        int(r.history.step.num): _items(r.history.item) for r in records if r.WhichOneof("record_type") == "history"
    }


def _offline_runs(run: Path) -> list[Path]:
    """The run's transaction logs, once W&B's service process has written them out: ``finish()``
    can return before the service flushes the file (CI once read a log without its run record);
    ``wandb.teardown()`` waits for the service to end."""
    import wandb

    wandb.teardown()
    return sorted(run.glob("wandb/offline-run-*/run-*.wandb"))


def test_offline_run_holds_the_config_the_metrics_and_the_final_evaluation(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", wandb=True, wandb_mode="offline", wandb_project="ppokit-tests",
                         wandb_group="smoke", wandb_tags=("tiny", "cartpole"))  # fmt: skip
    result = ppokit.train(config)
    (file,) = _offline_runs(result.run_dir)
    records = read_wandb(file)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (run.project, run.run_group, list(run.tags)) == ("ppokit-tests", "smoke", ["tiny", "cartpole"])
    logged_config = _items(run.config.update)
    assert logged_config["env"]["id"] == "CartPole-v1" and logged_config["seed"] == 3

    history = _history(records)
    lines = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert sorted(history) == [int(line["global_step"]) for line in lines]  # W&B's step is the env step
    for line in lines:
        row = history[int(line["global_step"])]
        for key, value in line.items():
            if key in ("update", "global_step") or value is None:
                continue
            assert math.isclose(row[key], value, rel_tol=1e-9, abs_tol=1e-12), key

    summary = {
        k: v for r in records if r.WhichOneof("record_type") == "summary" for k, v in _items(r.summary.update).items()
    }
    assert result.evaluation is not None
    assert summary["eval_return_mean"] == pytest.approx(result.evaluation.mean)


def test_a_resumed_run_goes_on_in_the_same_wandb_run(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", wandb=True, wandb_mode="offline", checkpoint_every=1)
    ppokit.train(config, stop_after=2)
    ppokit.train(resume=tmp_path / "run")
    first, second = _offline_runs(tmp_path / "run")
    ids = {r.run.run_id for f in (first, second) for r in read_wandb(f) if r.WhichOneof("record_type") == "run"}
    assert len(ids) == 1  # one W&B run, in two sessions
    steps = sorted([*_history(read_wandb(first)), *_history(read_wandb(second))])
    assert steps == [64 * u for u in range(1, 7)]  # every update once, in order


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="needs wandb to hide it")
def test_wandb_without_the_package_is_one_line_and_exit_2(tmp_path: Path) -> None:
    hide = "import sys; sys.modules['wandb'] = None; from ppokit.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", hide, "train", "--wandb", "--run-dir", str(tmp_path / "run")],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "wandb: true needs the wandb package" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
