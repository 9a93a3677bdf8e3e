"""Data-parallel language-model runs in real processes: torchrun starts two ranks on gloo
(``lm_dist_train.py``; ``ppokit lm train --nproc 2`` for the command line). One run folder,
written by rank 0, counting every rank's completions; every rank's RNGs in the checkpoint, so that
a stopped and resumed run logs exactly what the uninterrupted one logs; a resume with another
number of processes is refused in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from tests.integration.test_distributed import kill_rank_after

HELPER = str(Path(__file__).with_name("lm_dist_train.py"))
TINY = ["--steps", "4", "--sft-steps", "2", "--prompts-per-step", "4", "--group-size", "4", "--minibatch-size", "8",
        "--eval-prompts", "8", "--width", "32", "--save-every", "3"]  # fmt: skip


def torchrun(*args: str) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", HELPER, *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def lines(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def ppokit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ppokit", *args], capture_output=True, text=True, timeout=300)


def test_two_ranks_resume_exactly_and_refuse_another_world_size(tmp_path: Path) -> None:
    """PPO with LoRA adapters, a critic model of its own and the adaptive KL controller: the
    adapters, the value head and the critic train through their own wrappers, and every rank
    adapts the same coefficient. The whole run and the resume from the command line."""
    whole = tmp_path / "whole"
    settings = {"method": '"ppo"', "critic": '"model"', "kl_target": "0.01", "kl_horizon": "64", "lora_rank": "4"}
    flags = [f"--{k.replace('_', '-')}={v.strip(chr(34))}" for k, v in settings.items()]
    done = ppokit("lm", "train", "--nproc", "2", *TINY, *flags, "--run-dir", str(whole))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("ppo on sort, 4 steps") == 1  # rank 0 reports
    assert {"model", "adapter", "eval.json", "checkpoints", "reference"} <= {p.name for p in whole.iterdir()}
    torchrun(str(tmp_path / "part"), "--stop-after", "2", "--set", *(f"{k}={v}" for k, v in settings.items()))
    assert not (tmp_path / "part" / "model").exists()  # stopped: only the checkpoint
    resumed = ppokit("lm", "train", "--nproc", "2", "--resume", str(tmp_path / "part"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = lines(whole)
    assert [row["global_step"] for row in rows] == [32, 64, 96, 128]  # 2 ranks x 4 prompts x 4 completions
    assert len({row["kl_coef"] for row in rows}) == 4  # the controller moved beta every step
    assert lines(tmp_path / "part") == rows  # stopped after step 2 and resumed: the same numbers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part", "whole"]  # only rank 0 wrote
    state = torch.load(whole / "checkpoints" / "last" / "state.pt", weights_only=True)
    assert len(state["ranks"]) == 2 and state["ranks"][0]["prompts"] != state["ranks"][1]["prompts"]  # own streams
    for nproc in ("1", "3"):  # in one process, or before torchrun starts three: one line
        refused = ppokit("lm", "train", "--resume", str(whole), "--steps", "6", "--nproc", nproc)
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines() == [
            f"ppokit: error: checkpoint: written by 2 process(es), resumed with {nproc}; resume with --nproc 2: each "
            "rank samples its own prompts"
        ]


def test_a_killed_rank_restarts_the_job_from_the_last_checkpoint_and_it_finishes(tmp_path: Path) -> None:
    flags = [*TINY, "--steps", "24", "--save-every", "4"]
    whole = ppokit("lm", "train", "--nproc", "2", "--run-dir", str(tmp_path / "whole"), *flags)
    assert whole.returncode == 0, whole.stderr[-3000:]
    marker = str(os.getpid())
    env = dict(os.environ, PPOKIT_TEST_LAUNCHER=marker)  # inherited by the ranks: how the test finds rank 1
    job = subprocess.Popen([sys.executable, "-m", "ppokit", "lm", "train", "--nproc", "2", "--max-restarts", "1",
                            "--run-dir", str(tmp_path / "run"), *flags], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)  # fmt: skip
    kill_rank_after(job, tmp_path / "run" / "metrics.jsonl", 6, int(marker))  # past the checkpoint of step 4
    _, stderr = job.communicate(timeout=300)
    assert job.returncode == 0, stderr[-3000:]  # the first attempt failed (rank 1 killed): a restart finished it
    assert lines(tmp_path / "run") == lines(tmp_path / "whole")  # every step once, the same numbers
    assert (tmp_path / "run" / "eval.json").read_text() == (tmp_path / "whole" / "eval.json").read_text()


RESTARTS = "ppokit: error: max_restarts: needs --run-dir: a restarted job resumes the run folder it names"


REFUSALS = [(["--nproc", "0"], "ppokit: error: nproc: 0; allowed: an integer >= 1"),
            (["--nproc", "2", "--max-restarts", "1"], RESTARTS),
            (["--nproc", "2", "--group-size", "0"], "ppokit: error: lm.group_size")]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), REFUSALS)
def test_lm_nproc_refusals_are_one_line_before_torchrun_starts(args: list[str], message: str) -> None:
    done = ppokit("lm", "train", *TINY, *args)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith(message)
