"""Asynchronous rollout workers on Ray actors (``--async-workers``): rollouts arrive with their
behaviour log-probabilities and policy version, the lag is bounded and logged, a dead worker is
replaced, and bad input is one line. Ray starts once for the module (``ray.init`` costs seconds
and hundreds of MB here)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import ppokit
from ppokit.classic.envs import make_vec_env
from ppokit.classic.policy import ActorCritic
from ppokit.classic.workers import WorkerPool
from tests.conftest import tiny_config

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def _ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_an_async_run_logs_lag_and_finishes_and_resumes(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", async_workers=2, total_steps=64 * 12, checkpoint_every=2)
    ppokit.train(config, stop_after=4)
    result = ppokit.train(resume=tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row["update"] for row in rows] == list(range(1, 13))  # every update once, across the stop
    assert all(0 <= row["policy_lag"] <= config.max_policy_lag for row in rows)
    assert max(row["policy_lag"] for row in rows) >= 1  # rollouts from an older policy did arrive
    assert result.evaluation is not None and rows[-1]["worker_restarts"] == 0


def test_an_async_run_with_vtrace_logs_its_importance_ratios(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", async_workers=2, vtrace=True, total_steps=64 * 8)
    result = ppokit.train(config)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and result.evaluation is not None
    lagged = [row for row in rows if row["policy_lag"] >= 1]
    assert lagged and all(row["vtrace_rho_mean"] != 1.0 for row in lagged)  # pi moved on from the worker's mu
    assert all(0.0 <= row["vtrace_rho_clipped"] <= 1.0 for row in rows)


def test_a_dead_worker_is_replaced_and_stale_rollouts_are_dropped(tmp_path: Path) -> None:
    # One worker, so that what is in flight is known: after each rollout, the next one it collects.
    config = tiny_config(tmp_path / "run", async_workers=1, max_policy_lag=0)
    vec = make_vec_env(config.env)
    vec.close()
    policy = ActorCritic(vec.obs_space, vec.action_space, config.policy)
    pool = WorkerPool(config, seed=1)
    try:
        first = pool.next_rollout(policy, version=0)
        assert first.version == 0 and first.tensors["logprobs"].shape == (16, 4)  # T x N behaviour log-probs
        ray.kill(pool.workers[0])
        for _ in range(3):  # the rollout in flight may have come back before the kill: then the next one fails
            got = pool.next_rollout(policy, version=0)
            if pool.restarts:
                break
        assert pool.restarts == 1 and got.version == 0 and torch.isfinite(got.tensors["values"]).all()
        fresh = pool.next_rollout(policy, version=3)  # the one in flight has lag 3 > 0: dropped
        assert fresh.version == 3 and pool.dropped == 1 and pool.metrics()["policy_lag"] == 0.0
    finally:
        pool.close()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--async-workers", "2", "--norm-obs"], "norm_obs: true with async_workers"),
        (["--async-workers", "2", "--algo", "grpo", "--env", "ppokit/Bandit-v0"], "async_workers: 2 with grpo"),
        (["--async-workers", "-1"], "async_workers: -1; allowed: 0 (off) or an integer >= 1"),
        (["--vtrace"], "vtrace: true corrects async workers' lagging rollouts; allowed: false, or with async_workers"),
        (["--async-workers", "2", "--vtrace", "--vtrace-clip", "0"], "vtrace_clip: 0.0; allowed: a number > 0"),
        (["--async-workers", "2", "--vtrace", "--recompute-advantages"], "vtrace: true with algo.recompute_advantages"),
        (
            ["--async-workers", "2", "--vtrace", "--algo", "reinforce"],
            "vtrace: true with reinforce, which has no critic",
        ),
    ],
)
def test_bad_async_input_is_one_line_and_exit_2(tmp_path: Path, flags: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "ppokit", "train", "--run-dir", str(tmp_path / "run"), *flags],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "run").exists()


def test_async_workers_without_ray_is_one_line_and_exit_2(tmp_path: Path) -> None:
    hide = "import sys; sys.modules['ray'] = None; from ppokit.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", hide, "train", "--async-workers", "2", "--run-dir",
                           str(tmp_path / "run")], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "async_workers: 2 needs Ray" in done.stderr and len(done.stderr.strip().splitlines()) == 1
