"""Env snapshots of Gymnasium's MuJoCo envs: a restored env continues bit for bit."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import torch

from ppokit.classic.envs import VecEnv, make_vec_env, restore, snapshot
from ppokit.config import EnvConfig

pytest.importorskip("mujoco", reason="needs the mujoco extra")


def random_actions(vec: VecEnv, steps: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, (steps, vec.num_envs, *vec.action_space.shape)).astype(np.float32)


@pytest.mark.parametrize("env_id", ["Hopper-v5", "Ant-v5", "Humanoid-v5"])
def test_restored_env_steps_exactly_like_the_original(env_id: str) -> None:
    """Through the trainer's vector env (2 sync envs, NEXT_STEP autoreset), across a checkpoint's torch round trip.

    Ant-v5 and Humanoid-v5 take their forward reward from body positions that lag the state by
    one substep, so they also check that the snapshot keeps those.
    """
    config = EnvConfig(id=env_id, num_envs=2)
    vec, fresh = make_vec_env(config), make_vec_env(config)
    vec.env.reset(seed=3)
    fresh.env.reset(seed=99)
    for actions in random_actions(vec, 10, seed=0):  # mid-episode, warm-started solver
        vec.env.step(actions)
    buffer = io.BytesIO()
    torch.save(snapshot(vec), buffer)  # as a checkpoint stores it
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)  # plain data only
    assert restore(fresh, state)
    episodes_ended = 0
    for actions in random_actions(vec, 50, seed=1):
        a, b = vec.env.step(actions), fresh.env.step(actions)
        for x, y in zip(a[:4], b[:4], strict=True):  # observations, rewards, terminated, truncated
            np.testing.assert_array_equal(x, y)
        episodes_ended += int(np.sum(a[2] | a[3]))
    if env_id != "Ant-v5":  # Ant survives random actions; the others fall and reset from the restored RNG
        assert episodes_ended > 0
    vec.close()
    fresh.close()


def mujoco_states(saved: object) -> list[dict[str, Any]]:
    """The MuJoCo parts of a snapshot: the dicts that carry a model signature."""
    if isinstance(saved, dict):
        found = [saved] if "signature" in saved else []
        return found + [d for v in saved.values() for d in mujoco_states(v)]
    if isinstance(saved, list):
        return [d for v in saved for d in mujoco_states(v)]
    return []


def test_snapshot_of_another_model_is_refused() -> None:
    config = EnvConfig(id="Hopper-v5", num_envs=2)
    vec, fresh = make_vec_env(config), make_vec_env(config)
    vec.env.reset(seed=0)
    fresh.env.reset(seed=0)
    state = snapshot(vec)
    assert state is not None
    parts = mujoco_states(state)
    assert len(parts) == 2 and {"state", "spec", "xpos", "xipos"} <= parts[0].keys()
    parts[1]["signature"] += 1
    assert not restore(fresh, state)
    vec.close()
    fresh.close()
