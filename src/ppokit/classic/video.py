"""Videos of a trained policy: episodes recorded to MP4 with ``imageio`` and its bundled ffmpeg.

Gymnasium envs are recorded from their own ``rgb_array`` rendering, one env stepped by the
policy as ``ppokit.load(...).act`` acts (normalization applied, actions mapped to the space).
Atari games step in ale-py's vector env, which does not render: their video is what the agent
sees, the newest 84x84 frame of each observation. Small frames (MinAtar's 10x10 grids) are
scaled up by whole pixels so that a player shows them sharp. ``videos/`` of a run folder holds
its videos; the report lists them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from ppokit.classic.envs import VecEnv, make_vec_env
from ppokit.classic.games import is_atari, register_namespace
from ppokit.classic.policy import ActorCritic
from ppokit.classic.stepping import EpisodeTracker, step_envs
from ppokit.config import EnvConfig
from ppokit.errors import ConfigError

VIDEO_FPS = 30
MIN_SIDE = 160  # frames smaller than this are scaled up by a whole factor


@dataclass(frozen=True)
class Recording:
    path: Path
    frames: int
    returns: list[float]


def record(act: Any, env_config: EnvConfig, path: Path, episodes: int = 1, seed: int = 0) -> Recording:
    """Record ``episodes`` episodes of ``act`` (observations ``[B, *shape]`` -> actions ``[B, ...]``
    for the env) on ``env_config``'s env to ``path``; ConfigError when imageio is missing."""
    try:
        import imageio
        import imageio_ffmpeg  # noqa: F401  # the ffmpeg binary imageio writes MP4 with
    except ImportError as e:
        raise ConfigError("video", f"videos need {e.name}, which is not installed; allowed: pip install "
                                   "'ppokit[video]'") from None  # fmt: skip
    register_namespace(env_config.id)
    atari = is_atari(gym.spec(env_config.id))
    path.parent.mkdir(parents=True, exist_ok=True)
    frames, returns = 0, []
    with imageio.get_writer(path, fps=VIDEO_FPS, macro_block_size=2) as writer:

        def write(frame: np.ndarray) -> None:
            nonlocal frames
            writer.append_data(to_rgb(frame))  # type: ignore[attr-defined]  # the ffmpeg writer's method
            frames += 1

        for episode in range(episodes):
            play = _play_atari if atari else _play_rendered
            returns.append(play(act, env_config, seed + episode, write))
    return Recording(path, frames, returns)


def record_policy(policy: ActorCritic, vec: VecEnv, env_config: EnvConfig, path: Path, seed: int) -> Recording:
    """One episode of ``policy``'s deterministic actions (mapped to ``vec``'s action space)."""
    device = next(policy.parameters()).device

    def act(obs: np.ndarray) -> np.ndarray:
        actions = policy.act(torch.as_tensor(obs, dtype=vec.obs_dtype, device=device), deterministic=True)
        return vec.to_env_actions(actions.cpu().numpy())

    return record(act, env_config, path, seed=seed)


def _play_rendered(act: Any, env_config: EnvConfig, seed: int, write: Any) -> float:
    env = gym.make(env_config.id, render_mode="rgb_array")
    try:
        obs, _ = env.reset(seed=seed)
        write(env.render())
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(np.asarray(obs)[None])[0])
            total += float(reward)
            write(env.render())
            done = bool(terminated or truncated)
        return total
    finally:
        env.close()


def _play_atari(act: Any, env_config: EnvConfig, seed: int, write: Any) -> float:
    vec = make_vec_env(env_config, num_envs=1)
    try:
        obs, _ = vec.env.reset(seed=seed)
        write(obs[0, -1])
        tracker = EpisodeTracker.for_envs(1)
        while True:
            step = step_envs(vec, np.asarray(act(obs)), tracker)
            obs = step.obs
            write(obs[0, -1])
            if step.finished is not None:
                return float(step.finished.returns[0])
    finally:
        vec.close()


def to_rgb(frame: Any) -> np.ndarray:
    """An ``[H, W, 3]`` uint8 frame of even sides from an env's frame: float frames in [0, 1]
    scaled to 255, grayscale repeated over three channels, small frames scaled up."""
    image = np.asarray(frame)
    if image.dtype.kind == "f":
        image = np.clip(image * 255.0 if image.max(initial=0.0) <= 1.0 else image, 0, 255)
    image = image.astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    factor = math.ceil(MIN_SIDE / min(image.shape[:2]))
    if factor > 1:
        image = image.repeat(factor, axis=0).repeat(factor, axis=1)
    pad = ((0, image.shape[0] % 2), (0, image.shape[1] % 2), (0, 0))  # H.264's 4:2:0 needs even sides
    return np.pad(image, pad) if any(p[1] for p in pad) else image
