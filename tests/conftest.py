"""Shared fixtures: small, fast configurations."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ppokit.config import RunConfig, override

torch.set_num_threads(1)  # small networks: one thread is fastest and keeps runs reproducible


def tiny_config(run_dir: Path, **overrides: object) -> RunConfig:
    """CartPole with 4 envs x 16 steps, 2 epochs of 2 minibatches: an update takes milliseconds."""
    values: dict[str, object] = {
        "id": "CartPole-v1",
        "num_envs": 4,
        "num_steps": 16,
        "minibatch_size": 32,
        "update_epochs": 2,
        "total_steps": 64 * 6,
        "eval_episodes": 2,
        "checkpoint_every": 2,
        "progress": False,
        "tensorboard": False,
        "run_dir": str(run_dir),
        "seed": 3,
    }
    values.update(overrides)
    return override(RunConfig(), values).validate()


@pytest.fixture
def tiny(tmp_path: Path) -> RunConfig:
    return tiny_config(tmp_path / "run")
