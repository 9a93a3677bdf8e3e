"""Compiled runs (``RunConfig.compile``): the fused step in a whole run against the eager one,
resume, the compiled-loss fallback, and machines where torch cannot compile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ppokit
from tests.conftest import tiny_config


class _StopBeforeTheUpdate(Exception):
    pass


def test_with_a_target_kl_compile_hands_the_update_a_compiled_loss(tmp_path: Path) -> None:
    """The fused step cannot stop on the KL before stepping: with ``target_kl`` the loss alone is
    compiled. The run stops before the first update, so nothing is compiled."""
    seen: list[object] = []

    def stop(event: ppokit.RolloutEvent) -> None:
        seen.append(event.loss_fn)
        raise _StopBeforeTheUpdate

    for target_kl in (None, 0.05):
        with pytest.raises(_StopBeforeTheUpdate):
            ppokit.train(tiny_config(tmp_path / f"run-{target_kl}", compile=True, target_kl=target_kl,
                                     total_steps=128), hooks=ppokit.Hooks(on_rollout=[stop]))  # fmt: skip
    assert [hasattr(fn, "_torchdynamo_orig_callable") for fn in seen] == [False, True]  # fused: the loss stays eager


def test_a_compiled_run_trains_like_the_eager_one_and_resumes_exactly(tmp_path: Path) -> None:
    ppokit.train(tiny_config(tmp_path / "eager"))
    ppokit.train(tiny_config(tmp_path / "compiled", compile=True))
    cut = ppokit.train(tiny_config(tmp_path / "cut", compile=True), stop_after=3)
    resumed = ppokit.train(resume=tmp_path / "cut")  # compile is in the saved config: it compiles again
    timing = {"sps", "time_elapsed"}
    rows = {name: [{k: v for k, v in json.loads(line).items() if k not in timing}
                   for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
            for name in ("eager", "compiled", "cut")}  # fmt: skip
    for key in ("loss", "policy_loss", "value_loss", "entropy", "approx_kl", "grad_norm"):
        assert rows["compiled"][0][key] == pytest.approx(rows["eager"][0][key], rel=1e-4, abs=1e-6), key  # update 1
    assert cut.interrupted and resumed.evaluation is not None and len(rows["cut"]) == 6
    assert rows["cut"] == rows["compiled"]  # stopped after update 3 and resumed: the same numbers


def test_where_torch_cannot_compile_a_compiled_run_says_so_and_runs_the_eager_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A preset that compiles, on a machine without a C++ compiler: one line, then exactly the
    eager run."""
    from ppokit.classic import trainer

    monkeypatch.setattr(trainer, "compile_unavailable", lambda device: "no C++ compiler (test)")
    ppokit.train(tiny_config(tmp_path / "eager", total_steps=128))
    ppokit.train(tiny_config(tmp_path / "fallback", compile=True, total_steps=128))
    assert "compile off, the eager step runs: no C++ compiler (test)" in capsys.readouterr().err
    timing = {"sps", "time_elapsed"}
    rows = {name: [{k: v for k, v in json.loads(line).items() if k not in timing}
                   for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
            for name in ("eager", "fallback")}  # fmt: skip
    assert rows["fallback"] == rows["eager"]


def test_compile_unavailable_names_a_missing_cpp_compiler() -> None:
    """inductor reads $CXX when it is imported: a fresh process with a compiler that is not there."""
    code = "import torch; from ppokit.classic.fused import compile_unavailable as f; print(f(torch.device('cpu')))"
    env = {**os.environ, "CXX": "/nonexistent/g++"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "needs a C++ compiler" in out and "/nonexistent/g++" in out
    from ppokit.classic.fused import compile_unavailable

    assert compile_unavailable(torch.device("cpu")) is None  # this machine has one
