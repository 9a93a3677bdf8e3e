"""Data-parallel training in real processes: torchrun starts two ranks on gloo (``dist_train.py``;
``ppokit train --nproc 2`` for the command line). One run folder, written by rank 0; every rank's
envs and RNGs in the checkpoint, so that a stopped and resumed run logs exactly what the
uninterrupted one logs; a resume with another number of processes is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ppokit
from ppokit.errors import CheckpointError
from ppokit.io import checkpoint as ckpt
from tests.integration.test_parallel import free_port

HELPER = str(Path(__file__).with_name("dist_train.py"))
VARYING = {"time_elapsed", "sps"}  # wall-clock figures


def torchrun(*args: str, nproc: int = 2) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", HELPER]
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def metrics(run: Path) -> list[dict[str, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in VARYING} for row in rows]


STOPS = ["--set", "norm_obs=true", "norm_reward=true", "target_kl=0.001", "learning_rate=0.01"]  # stops at 1-2 steps


@pytest.mark.parametrize("overrides", [[], STOPS],
                         ids=["plain", "normalized-target-kl"])  # fmt: skip
def test_two_ranks_resume_exactly_and_refuse_another_world_size(tmp_path: Path, overrides: list[str]) -> None:
    torchrun(str(tmp_path / "whole"), *overrides)
    torchrun(str(tmp_path / "part"), "--stop-after", "1", *overrides)
    torchrun(str(tmp_path / "part"), "--resume")
    whole = metrics(tmp_path / "whole")
    assert [row["global_step"] for row in whole] == [128, 256, 384]  # 2 ranks x 4 envs x 16 steps per update
    if overrides:  # the ranks agreed on early stops after 1 or 2 of the 4 minibatch steps (else: a deadlock)
        assert {row["kl_early_stop"] for row in whole} == {1.0} and {row["minibatch_steps"] for row in whole} <= {1, 2}
    assert metrics(tmp_path / "part") == whole  # stopped after update 1 and resumed: the same numbers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part", "whole"]  # only rank 0 wrote
    saved = ckpt.load(tmp_path / "whole")
    parts = saved["ranks"]
    assert len(parts) == 2 and not (parts[0]["rollout"]["obs"] == parts[1]["rollout"]["obs"]).all()  # own envs
    with pytest.raises(CheckpointError, match=r"written by 2 process\(es\), resumed with 1; resume with --nproc 2"):
        ppokit.train(resume=tmp_path / "whole")
    refused = subprocess.run([sys.executable, "-m", "ppokit", "train", "--resume", str(tmp_path / "whole"), "--nproc",
                              "3"], capture_output=True, text=True)  # fmt: skip
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [  # before torchrun starts: one line
        "ppokit: error: checkpoint: written by 2 process(es), resumed with 3; resume with --nproc 2: each rank's envs "
        "and RNGs are its own"
    ]


def test_nproc_starts_the_ranks_with_torchrun_and_refuses_world_sizes_that_do_not_fit(tmp_path: Path) -> None:
    flags = ["--total-steps", "512", "--num-envs", "4", "--num-steps", "16", "--minibatch-size", "32",
             "--eval-episodes", "3", "--no-progress", "--no-tensorboard"]  # fmt: skip
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "ppokit", "train", "--nproc", "2", "--run-dir", str(run), *flags],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Run folder:") == 1 and "OMP_NUM_THREADS" not in done.stderr  # rank 0 speaks
    assert [row["global_step"] for row in metrics(run)] == [128, 256, 384, 512]
    evaluation = json.loads((run / "eval.json").read_text())
    assert len(evaluation["returns"]) == 3  # dealt out: 2 episodes on rank 0, 1 on rank 1
    refusals = ((["--nproc", "2", "--run-dir", str(run)], "run_dir: " + str(run) + " already holds a run"),
                (["--nproc", "0"], "nproc: 0; allowed: an integer >= 1"),
                (["--nproc", "9"], "nproc: 9 processes take 576"),
                (["--nproc", "2", "--async-workers", "2"], "async_workers: 2 with --nproc 2"))  # fmt: skip
    for given, field in refusals:
        folder = [] if "--run-dir" in given else ["--run-dir", str(tmp_path / "bad")]
        bad = subprocess.run([sys.executable, "-m", "ppokit", "train", *given, *folder, *flags],
                             capture_output=True, text=True)  # fmt: skip
        assert bad.returncode == 2 and field in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert not (tmp_path / "bad").exists()


def test_a_rendezvous_that_never_completes_is_one_line_and_exit_2(tmp_path: Path) -> None:
    # Rank 0 of 2 as torchrun would start it, but rank 1 never comes.
    env = dict(os.environ, RANK="0", WORLD_SIZE="2", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(free_port()))  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "ppokit", "train", "--rendezvous-timeout", "2", "--run-dir",
                           str(tmp_path / "run")], capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "nproc: the 2 processes did not meet at 127.0.0.1:" in done.stderr and "within 2 s" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def _rank_pid(launcher: int, rank: int) -> int | None:
    """The pid of the process that torchrun (a child of ``launcher``) started as ``rank``."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            if f"RANK={rank}".encode() in environ and f"PPOKIT_TEST_LAUNCHER={launcher}".encode() in environ:
                return int(proc.name)
        except OSError:
            continue
    return None


def kill_rank_after(job: subprocess.Popen[str], metrics_file: Path, lines: int, launcher: int) -> None:
    """SIGKILL rank 1 of ``job`` once ``metrics_file`` has ``lines`` lines (mid-run)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not metrics_file.exists() or
                                           len(metrics_file.read_text().splitlines()) < lines):  # fmt: skip
        time.sleep(0.02)
    victim = _rank_pid(launcher, 1)
    assert victim is not None and job.poll() is None
    os.kill(victim, signal.SIGKILL)


def test_a_killed_rank_restarts_the_job_from_the_last_checkpoint_and_it_finishes(tmp_path: Path) -> None:
    flags = ["--total-steps", str(128 * 60), "--num-envs", "4", "--num-steps", "16", "--minibatch-size", "32",
             "--checkpoint-every", "5", "--eval-episodes", "2", "--no-progress", "--no-tensorboard"]  # fmt: skip
    whole = subprocess.run([sys.executable, "-m", "ppokit", "train", "--nproc", "2", "--run-dir",
                            str(tmp_path / "whole"), *flags], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert whole.returncode == 0, whole.stderr[-3000:]
    marker = str(os.getpid())
    env = dict(os.environ, PPOKIT_TEST_LAUNCHER=marker)  # inherited by the ranks: how the test finds rank 1
    job = subprocess.Popen([sys.executable, "-m", "ppokit", "train", "--nproc", "2", "--max-restarts", "1",
                            "--run-dir", str(tmp_path / "run"), *flags], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)  # fmt: skip
    kill_rank_after(job, tmp_path / "run" / "metrics.jsonl", 12, int(marker))  # past the checkpoint of update 10
    _, stderr = job.communicate(timeout=300)
    assert job.returncode == 0, stderr[-3000:]  # the first attempt failed (rank 1 killed): a restart finished it
    assert metrics(tmp_path / "run") == metrics(tmp_path / "whole")  # every update once, the same numbers


def test_two_torchrun_nodes_over_localhost_train_one_run(tmp_path: Path) -> None:
    # A multi-node run simulated on one machine: two torchrun commands, one process each, meeting
    # at a c10d rendezvous (on a cluster: one command per machine, the endpoint on node 0).
    run, port = tmp_path / "run", free_port()
    node = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
            "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "two-nodes",
            "-m", "ppokit", "train", "--total-steps", "512", "--num-envs", "4", "--num-steps", "16",
            "--minibatch-size", "32", "--eval-episodes", "2", "--no-progress", "--no-tensorboard",
            "--run-dir", str(run)]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    nodes = [subprocess.Popen(node, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]  # fmt: skip
    outputs = [n.communicate(timeout=300) for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], [err[-2000:] for _, err in outputs]
    assert sum(out.count("Run folder:") for out, _ in outputs) == 1  # one rank 0, on one of the nodes
    assert [row["global_step"] for row in metrics(run)] == [128, 256, 384, 512]
