"""Faults a run must survive: kill -9 at any moment and a write torn by it, then resume; a
bad TOML value refused on the command line in one line."""

from __future__ import annotations

import importlib.util
import json
import math
import random
import signal
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import ppokit as ppokit_api
from tests.conftest import tiny_config
from tests.integration.test_cli import TINY, assert_one_line_error, ppokit, signal_after


def _updates(metrics: Path) -> list[float]:
    return [json.loads(line)["update"] for line in metrics.read_text().splitlines()]


def _kill_after(cmd: list[str], metrics: Path, lines: int) -> None:
    delay = random.Random(lines).uniform(0.0, 0.2)  # somewhere inside an update, a checkpoint or a write
    code, _, _ = signal_after(cmd, metrics, lines, signal.SIGKILL, delay)
    assert code == -signal.SIGKILL


def test_kill_9_mid_run_then_resume_finishes_with_every_update_once(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "ppokit", "train", *TINY, "--total-steps", str(64 * 40), "--checkpoint-every", "1",
           "--run-dir", str(run)]  # fmt: skip
    _kill_after(cmd, run / "metrics.jsonl", 5)
    result = ppokit("train", "--resume", str(run))
    assert result.returncode == 0, result.stderr
    assert _updates(run / "metrics.jsonl") == [float(u) for u in range(1, 41)]  # none lost, none twice


def test_kill_9_of_a_language_model_run_then_resume(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "ppokit", "lm", "train", "--sft-steps", "2", "--steps", "12", "--save-every", "1",
           "--eval-prompts", "8", "--run-dir", str(run)]  # fmt: skip
    _kill_after(cmd, run / "metrics.jsonl", 3)
    result = ppokit("lm", "train", "--resume", str(run))
    assert result.returncode == 0, result.stderr
    assert _updates(run / "metrics.jsonl") == [float(u) for u in range(1, 13)]


def test_a_torn_last_line_of_metrics_is_dropped_on_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    ppokit_api.train(tiny_config(run), stop_after=2)
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"global_step": 192, "upda')  # the write a crash cut short
    ppokit_api.train(resume=run)
    assert _updates(run / "metrics.jsonl") == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_a_toml_string_where_a_bool_is_expected_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('[env]\nnorm_obs = "false"\n')
    assert_one_line_error(ppokit("train", "--config", str(config), *TINY), "env.norm_obs", "got 'false' (str)",
                          "expected true or false")  # fmt: skip


def test_an_env_whose_package_is_missing_is_one_line(tmp_path: Path) -> None:
    import gymnasium as gym

    from ppokit.errors import ConfigError

    gym.register("ppokit-test/Missing-v0", entry_point="no_such_package_for_ppokit.envs:Env")
    try:
        with pytest.raises(
            ConfigError, match=r"env.id: ppokit-test/Missing-v0 needs module 'no_such_package_for_ppokit'"
        ):
            ppokit_api.train(tiny_config(tmp_path / "run", id="ppokit-test/Missing-v0"))
    finally:
        gym.registry.pop("ppokit-test/Missing-v0")


def test_checkpoint_damage_is_named(tmp_path: Path) -> None:
    """A flipped byte (the checksum), NaN weights, an update counter past the run, a part of the
    wrong kind: each refused in one line; a version-4 file (no checksum) still loads."""
    import torch

    from ppokit.errors import CheckpointError
    from ppokit.io import checkpoint as ckpt

    run = tmp_path / "run"
    ppokit_api.train(tiny_config(run), stop_after=2)
    last = run / "checkpoints" / "last.pt"
    good = last.read_bytes()
    raw = bytearray(good)
    raw[len(raw) // 2] ^= 0x10
    last.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupt"):
        ppokit_api.train(resume=run)
    last.write_bytes(good)
    saved = ckpt.load(run)

    def damaged(part: str, key: str | None, value: object) -> dict[str, object]:
        state = {**saved["state"], part: value if key is None else {**saved["state"][part], key: value}}
        return {**saved, "state": state}

    cases = [("policy", "critic_out.bias", torch.tensor([math.nan]), "holds NaN or inf"),
             ("update", None, 10**9, "update 1000000000"),
             ("rollout", "obs", torch.zeros(3), r"state.rollout.obs is a tensor \(3,\)"),
             ("rng", "python", [3], r"state.rng.python is \[3\]; expected a list of 3")]  # fmt: skip
    for part, key, value, message in cases:
        ckpt.save(last, damaged(part, key, value))
        with pytest.raises(CheckpointError, match=message):
            ppokit_api.train(resume=run)
    ckpt.save(last, damaged("policy", "critic_out.bias", torch.tensor([math.inf])))
    with pytest.raises(CheckpointError, match=r"policy weight critic_out.bias holds NaN or inf"):
        ppokit_api.load(last)
    torch.save({**saved, "version": 4}, last)  # an older file, before checksums
    assert ckpt.load(run)["state"]["update"] == 2
    assert ppokit_api.train(resume=run).updates == 6


def test_paths_that_cannot_be_written_or_read_are_one_line_before_any_work(tmp_path: Path) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert_one_line_error(ppokit("train", *TINY, "--run-dir", str(a_file)), "run_dir", "is a file")
    assert_one_line_error(ppokit("train", *TINY, "--run-dir", ""), "run_dir", "current folder")
    assert_one_line_error(ppokit("train", "--config", str(tmp_path), *TINY), "config", "cannot be read")
    run = tmp_path / "run"
    ppokit_api.train(tiny_config(run), stop_after=1)
    before = sorted(p.name for p in run.iterdir())
    assert_one_line_error(ppokit("eval", str(run), "--output", str(tmp_path)), "output", "is a folder")
    assert sorted(p.name for p in run.iterdir()) == before  # nothing was evaluated or written
    if importlib.util.find_spec("transformers") is not None:
        assert_one_line_error(ppokit("lm", "train", "--run-dir", str(a_file)), "lm.run_dir", "is a file")


class _GoesBad(gym.Wrapper):  # type: ignore[type-arg]
    """CartPole whose observation (or reward) turns NaN after ``after`` steps of this env."""

    def __init__(self, after: int, what: str) -> None:
        super().__init__(gym.make("CartPole-v1"))
        self.after, self.what, self.steps = after, what, 0

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.steps > self.after:
            if self.what == "observation":
                obs = np.full_like(obs, np.nan)
            else:
                reward = math.inf
        return obs, reward, terminated, truncated, info


@pytest.mark.parametrize(
    ("what", "named"), [("observation", "observation in env "), ("reward", "reward (inf) in env ")]
)
def test_a_non_finite_env_value_is_named_where_it_enters(tmp_path: Path, what: str, named: str) -> None:
    from ppokit.errors import NonFiniteEnvError
    from ppokit.io import checkpoint as ckpt

    run = tmp_path / "run"
    config = tiny_config(run, vectorization="sync", checkpoint_every=1)  # 16 steps per env and update
    with pytest.raises(NonFiniteEnvError) as info:
        ppokit_api.train(config, env_factory=lambda: _GoesBad(40, what))
    assert str(info.value).startswith(f"CartPole-v1 during update 3 (after 128 env steps): the env returned a "
                                      f"non-finite {named}")  # fmt: skip
    assert info.value.exit_code == 3 and ckpt.load(run)["state"]["update"] == 2  # the last good checkpoint


def test_a_fresh_run_in_the_folder_of_one_killed_before_its_first_checkpoint_starts_clean(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"global_step": 64, "update": 1.0}\n{"global_step": 128, "upd')
    ppokit_api.train(tiny_config(run))
    assert _updates(run / "metrics.jsonl") == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # no update twice


def test_grids_and_workers_are_refused_alike(tmp_path: Path) -> None:
    out = str(tmp_path / "exp")
    assert_one_line_error(ppokit("experiment", "--out", out, "--set", "update_epochs=1,4,1"), "set", "lists 1 twice")
    assert_one_line_error(ppokit("experiment", "--out", out, "--set", "update_epochs=1,4", "--set",
                                 "algo.update_epochs=2"), "set", "set twice")  # fmt: skip
    assert_one_line_error(ppokit("experiment", "--out", out, "--workers", "0"), "workers", ">= 1")
    assert_one_line_error(ppokit("compare", "--out", out, "--steps", "1000", "--workers", "0"), "workers", ">= 1")


class _ScalarObs(gym.Env):  # type: ignore[type-arg]
    observation_space = gym.spaces.Box(-1.0, 1.0, shape=(), dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
        return np.float32(0.0), {}

    def step(self, action: Any) -> Any:
        return np.float32(0.0), 0.0, False, False, {}


class _WrongShape(_ScalarObs):
    observation_space = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
        return np.zeros(3, np.float32), {}

    def step(self, action: Any) -> Any:
        return np.zeros(5, np.float32), 0.0, False, False, {}  # not what the space declares


@pytest.mark.parametrize(
    ("factory", "message"), [(_ScalarObs, "is a scalar"), (_WrongShape, "do not fit its observation space")]
)
def test_observation_spaces_and_shapes_the_env_breaks_are_one_line(tmp_path: Path, factory: Any, message: str) -> None:
    from ppokit.errors import ConfigError

    with pytest.raises(ConfigError, match=f"observation_space: .*{message}"):
        ppokit_api.train(tiny_config(tmp_path / "run", vectorization="sync"), env_factory=factory)


@pytest.mark.parametrize(
    "overrides",
    [{"id": "Acrobot-v1"}, {"id": "MountainCar-v0"}, {"id": "MountainCarContinuous-v0"},
     {"health_checks": False, "allow_unsafe": True},
     {"eval_every": 64}],
)  # fmt: skip
def test_valid_checkpoints_resume_however_their_envs_and_settings_vary(
    tmp_path: Path, overrides: dict[str, Any]
) -> None:
    """The checks of a saved state refuse damage, not the ordinary: envs whose snapshots change
    dtypes and containers as they run, runs whose health rules are off, runs with a best eval."""
    run = tmp_path / "run"
    ppokit_api.train(tiny_config(run, checkpoint_every=1, **overrides), stop_after=2)
    assert ppokit_api.train(resume=run).updates == 6


def test_an_env_table_given_as_text_in_toml_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('env = "Pendulum-v1"\n')
    assert_one_line_error(ppokit("train", "--config", str(config), *TINY), "env", "expected a table")
