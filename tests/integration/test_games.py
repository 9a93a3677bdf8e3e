"""Pixel games for real: ale-py's preprocessing as ppokit configures it, episodic life on a real
Atari game, MinAtar's grids, a short Atari and MinAtar run through the trainer, evaluation,
report and resume, and the games' bad input."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import ppokit
from ppokit.classic import games
from ppokit.classic.envs import make_vec_env
from ppokit.classic.stepping import EpisodeTracker, step_envs
from ppokit.config import EnvConfig
from ppokit.errors import ConfigError
from ppokit.presets import PRESETS
from tests.conftest import tiny_config

pytest.importorskip("ale_py")
pytest.importorskip("minatar")


def test_frame_skip_takes_the_max_of_the_last_two_frames() -> None:
    """ale-py's vector env at full size (no resize), against a frame-by-frame AtariEnv: each
    step is 4 frames of the action and its frame is the pixel-wise max of the last two."""
    from ale_py import AtariVectorEnv
    from ale_py.env import AtariEnv

    vec = AtariVectorEnv("breakout", 1, num_threads=1, stack_num=1, img_height=210, img_width=160, noop_max=0,
                         use_fire_reset=False, repeat_action_probability=0.0, reward_clipping=False)  # fmt: skip
    single = AtariEnv("breakout", frameskip=1, obs_type="grayscale", repeat_action_probability=0.0)
    obs, _ = vec.reset(seed=0)
    frame, _ = single.reset(seed=0)
    np.testing.assert_array_equal(obs[0, 0], frame)
    differs_from_last = 0
    for action in [1, 2, 2, 3, 3, 0, 1, 2] * 5:
        obs, *_ = vec.step(np.array([action]))
        frames = [single.step(action)[0] for _ in range(games.ATARI_FRAME_SKIP)]
        np.testing.assert_array_equal(obs[0, 0], np.maximum(frames[-1], frames[-2]))
        differs_from_last += int(not np.array_equal(obs[0, 0], frames[-1]))
    assert differs_from_last > 0  # the max mattered (flickering objects), so the check has teeth
    vec.close()
    single.close()


def test_atari_ids_get_the_standard_stack() -> None:
    vec = make_vec_env(EnvConfig(id="ALE/Breakout-v5", num_envs=2))
    assert vec.obs_space.shape == (4, 84, 84) and vec.obs_space.dtype == np.uint8
    obs, info = vec.env.reset(seed=3)
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    # After a reset the stack holds the first frame only: the older slots are empty.
    assert (obs[:, :3] == 0).all() and (obs[:, 3] > 0).any(axis=(1, 2)).all()
    frame = info["episode_frame_number"].copy()
    obs2, *_, info = vec.env.step(np.zeros(2, np.int64))
    assert (info["episode_frame_number"] - frame == games.ATARI_FRAME_SKIP).all()
    np.testing.assert_array_equal(obs2[:, 2], obs[:, 3])  # the stack shifts by one frame per step
    vec.close()


def test_sticky_actions_and_limits_come_from_the_id(monkeypatch: pytest.MonkeyPatch) -> None:
    import ale_py

    made: list[dict[str, Any]] = []
    monkeypatch.setattr(ale_py, "AtariVectorEnv", lambda game, n, **kw: made.append({"game": game, **kw}))
    games.register_namespace("ALE/Pong-v5")
    import gymnasium as gym

    games.make_atari(gym.spec("ALE/Pong-v5"), 2)
    games.make_atari(gym.spec("PongNoFrameskip-v4"), 2)
    assert [m["repeat_action_probability"] for m in made] == [0.25, 0.0]  # Machado et al.'s v5; v4 has none
    assert all(m["game"] == "pong" and m["frameskip"] == 4 and m["max_num_frames_per_episode"] == 108_000
               and not m["reward_clipping"] and not m["episodic_life"] for m in made)  # fmt: skip


def test_episodic_life_on_breakout_ends_lives_for_the_learner_and_games_for_the_episode() -> None:
    """Random play until a game ends: each lost life is flagged while the game goes on, the
    game ends (terminated) only with its last life, and the episode's return counts every life."""
    vec = make_vec_env(EnvConfig(id="ALE/Breakout-v5", num_envs=1, episodic_life=True))
    _, info = vec.env.reset(seed=1)
    tracker, rng = EpisodeTracker.for_envs(1), np.random.default_rng(0)
    lives, lost, game_return = [int(info["lives"][0])], 0, 0.0
    for _ in range(5000):
        step = step_envs(vec, rng.integers(0, vec.action_space.n, 1), tracker)
        game_return += float(step.reward[0])
        lost += int(step.info["life_lost"][0])
        if step.info["life_lost"][0]:
            assert not step.terminated[0] and step.info["lives"][0] == lives[-1] - 1
        lives.append(int(step.info["lives"][0]))
        if step.finished is not None:
            break
    assert step.finished is not None and step.terminated[0] and lives[-1] == 0
    assert lost == 4  # Breakout's five lives: four lost on the way, the fifth ends the game
    assert step.finished.returns.tolist() == [game_return]
    vec.close()


def test_minatar_ids_register_on_first_use() -> None:
    vec = make_vec_env(EnvConfig(id="MinAtar/Breakout-v1", num_envs=2))
    assert vec.obs_space.shape == (10, 10, 4) and vec.obs_dtype == torch.bool
    obs, _ = vec.env.reset(seed=0)
    assert obs.dtype == bool and obs.shape == (2, 10, 10, 4)
    vec.close()


def test_atari_smoke_trains_evaluates_reports_and_resumes(tmp_path: Path) -> None:
    """A few thousand Pong steps with the Atari preset: no threshold, the whole system."""
    preset = {**PRESETS["atari"].overrides, "total_steps": 1024, "num_envs": 2, "num_steps": 256}
    config = tiny_config(tmp_path / "run", id="ALE/Pong-v5", **preset, eval_episodes=1, checkpoint_every=1)
    first = ppokit.train(config, stop_after=1)
    with pytest.warns(UserWarning, match="episodes in flight .* restart"):  # ale-py's state is not plain data
        result = ppokit.train(resume=first.run_dir)
    lines = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["update"] for line in lines] == [1.0, 2.0]
    assert all(np.isfinite(line["policy_loss"]) and np.isfinite(line["value_loss"]) for line in lines)
    assert result.evaluation is not None and -21.0 <= result.evaluation.mean <= 21.0  # a real Pong score
    policy = ppokit.load(result.run_dir)
    action = policy.act(np.zeros((2, 4, 84, 84), np.uint8))
    assert action.shape == (2,)
    cli = [sys.executable, "-m", "ppokit"]
    evaluated = subprocess.run([*cli, "eval", str(result.run_dir), "--episodes", "1"], capture_output=True, text=True)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "return" in evaluated.stdout
    reported = subprocess.run([*cli, "report", str(result.run_dir)], capture_output=True, text=True)
    assert reported.returncode == 0, reported.stderr
    assert "ALE/Pong-v5" in (result.run_dir / "report" / "report.md").read_text()


def test_minatar_run_resumes_exactly(tmp_path: Path) -> None:
    """MinAtar's envs are plain Python state: a stopped and resumed run logs what an unbroken one logs."""
    overrides = {"id": "MinAtar/Breakout-v1", "total_steps": 1024, "num_envs": 4, "num_steps": 64,
                 "minibatch_size": 128, "checkpoint_every": 1}  # fmt: skip
    straight = ppokit.train(tiny_config(tmp_path / "straight", **overrides))
    ppokit.train(tiny_config(tmp_path / "resumed", **overrides), stop_after=2)
    resumed = ppokit.train(resume=tmp_path / "resumed")

    def logged(run: Path) -> list[dict[str, float]]:
        lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in line.items() if k not in ("sps", "time_elapsed")} for line in lines]

    assert logged(resumed.run_dir) == logged(straight.run_dir)


# --- Bad input -----------------------------------------------------------------------------------


def test_a_missing_game_package_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def without_ale(name: str, *args: Any) -> Any:
        if name == "ale_py":
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(games.importlib, "import_module", without_ale)
    with pytest.raises(ConfigError, match=r"ALE/Pong-v5 needs the ale_py package.*pip install 'ppokit\[atari\]'"):
        games.register_namespace("ALE/Pong-v5")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env", "ALE/Pongg-v5"], "env.id: unknown Gymnasium environment 'ALE/Pongg-v5'; did you mean ALE/Pong-v5"),
        (["--env", "ALE/Pong-v5", "--vectorization", "sync"], "vectorization: got sync for ALE/Pong-v5; allowed"),
        (["--env", "MinAtar/Breakout-v1", "--encoder", "nature-cnn"], "encoder: nature-cnn needs images of at least"),
        (["--env", "CartPole-v1", "--episodic-life"], "episodic_life: got true for an env whose step info has no"),
    ],
)
def test_bad_game_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "ppokit", "train", *args, "--run-dir", str(run)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not run.exists()  # refused before any work
