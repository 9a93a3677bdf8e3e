"""``ppokit eval --video``: an MP4 that decodes to one frame per step (plus the reset's), for
rendered Gymnasium envs, MinAtar's grids (scaled up) and Atari (the agent's frames); the report
links it; bad input is one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ppokit
from ppokit.analysis.report import write_report
from ppokit.classic.video import record, to_rgb
from ppokit.config import EnvConfig
from ppokit.errors import ConfigError
from tests.conftest import tiny_config

imageio = pytest.importorskip("imageio")
pytest.importorskip("imageio_ffmpeg")


def _frames(path: Path) -> tuple[int, tuple[int, int]]:
    reader = imageio.get_reader(path)
    try:
        return reader.count_frames(), tuple(reader.get_meta_data()["size"])
    finally:
        reader.close()


def test_eval_video_of_cartpole_has_a_frame_per_step(tmp_path: Path) -> None:
    run = ppokit.train(tiny_config(tmp_path / "run")).run_dir
    done = subprocess.run([sys.executable, "-m", "ppokit", "eval", str(run), "--episodes", "1", "--video"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    video = run / "videos" / "eval.mp4"
    line = next(line for line in done.stdout.splitlines() if line.startswith("Video:"))
    episode_return = float(line.rsplit("return ", 1)[1].rstrip(")"))  # CartPole: 1 per step
    count, size = _frames(video)
    assert count == int(episode_return) + 1 == int(line.split("(")[1].split(" frames")[0])
    assert size == (600, 400)  # CartPole's own rendering
    write_report(run)
    assert "[eval.mp4](../videos/eval.mp4)" in (run / "report" / "report.md").read_text()


def test_minatar_grids_are_scaled_up_and_atari_records_what_the_agent_sees(tmp_path: Path) -> None:
    pytest.importorskip("minatar")
    pytest.importorskip("ale_py")
    rng = np.random.default_rng(0)
    minatar = record(lambda obs: rng.integers(0, 3, len(obs)), EnvConfig(id="MinAtar/Breakout-v1"),
                     tmp_path / "minatar.mp4", episodes=2)  # fmt: skip
    assert len(minatar.returns) == 2 and _frames(minatar.path) == (minatar.frames, (160, 160))  # 10x10, 16x
    atari = record(lambda obs: np.ones(len(obs), np.int64), EnvConfig(id="ALE/Pong-v5"), tmp_path / "pong.mp4")
    assert atari.returns[0] == -21.0  # always FIRE, the paddle never moves: the opponent scores every point
    assert _frames(atari.path) == (atari.frames, (168, 168))  # the 84x84 frame, twice


def test_frames_become_even_sided_rgb_bytes() -> None:
    assert to_rgb(np.full((5, 7), 0.5)).shape == (160, 224, 3)  # a float grid: scaled by 32, to 255
    assert int(to_rgb(np.full((5, 7), 0.5)).max()) == 127
    assert to_rgb(np.zeros((201, 301, 3), np.uint8)).shape == (202, 302, 3)  # padded to even sides


def test_missing_imageio_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "imageio", None)  # import imageio raises ImportError
    with pytest.raises(ConfigError, match=r"videos need imageio.*pip install 'ppokit\[video\]'"):
        record(lambda obs: obs, EnvConfig(), tmp_path / "x.mp4")


def test_a_video_path_that_is_a_folder_is_refused_before_the_evaluation(tmp_path: Path) -> None:
    run = ppokit.train(tiny_config(tmp_path / "run")).run_dir
    done = subprocess.run([sys.executable, "-m", "ppokit", "eval", str(run), "--video", str(tmp_path)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "video: " in done.stderr and "is a folder" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not list(run.glob("eval-*.json"))  # nothing evaluated


def test_train_video_every_records_into_the_run_folder(tmp_path: Path) -> None:
    result = ppokit.train(tiny_config(tmp_path / "run", video_every=3))  # 6 updates: videos at 3 and 6
    videos = sorted(p.name for p in (result.run_dir / "videos").glob("*.mp4"))
    assert videos == ["update-000003.mp4", "update-000006.mp4"]
    count, size = _frames(result.run_dir / "videos" / videos[-1])
    assert count >= 2 and size == (600, 400)
