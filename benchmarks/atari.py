"""Atari on this machine: env throughput of the two preprocessing stacks, and ppokit's PPO
against Stable-Baselines3's ``CnnPolicy`` PPO with the same settings, side by side.

    .venv/bin/python benchmarks/atari.py [--env ALE/Pong-v5] [--repeats 3] [--env-steps 20000]
                                         [--train-steps 8192] [--json PATH]

**Env throughput** (random actions, 8 envs, one core): ppokit's Atari envs (ale-py's
``AtariVectorEnv``, preprocessing in C++, one thread) against Gymnasium's wrappers
(``AtariPreprocessing`` with frame skip 4, no-op reset 30, 84x84 grayscale, then
``FrameStackObservation(4)``, in a ``SyncVectorEnv`` of ``frameskip=1`` envs).

**Training** (``--train-steps`` env steps each, the Atari preset: 8 envs x 128 steps, 4 epochs of
minibatch 256, lr 2.5e-4 annealed, clip 0.1, entropy 0.01, value coefficient 0.5, grad norm 0.5,
the Nature CNN shared by actor and critic): ppokit with TensorBoard and the progress bar off,
and SB3's ``PPO("CnnPolicy")`` on ``make_atari_env`` (its ``AtariWrapper``: no-op reset, frame
skip 4 with max, episodic life, fire reset, 84x84 grayscale, reward clipping) with
``VecFrameStack(4)``, the same hyperparameters, ``verbose=0``. Both use the id's sticky
actions (0.25 for v5). Every job runs in a fresh process (spawn), one at a time, with one torch
thread; repeats alternate ppokit and SB3. Reported: steps/s of the whole ``train()`` /
``learn()`` call (ppokit's ``time_elapsed`` at its last update: the final evaluation
after it is left out; median over repeats and the ratio of the medians), peak resident memory of
the process (``ru_maxrss``) and its growth during ``train()`` / ``learn()`` (after the imports
and, for SB3, the model's construction), and the rollout's bytes per stored observation (both keep uint8
frames: SB3 2.x's ``RolloutBuffer`` stores observations in the space's dtype).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _env_throughput(env_id: str, kind: str, steps: int, num_envs: int) -> float:
    import gymnasium as gym
    import torch

    torch.set_num_threads(1)
    from ppokit.classic.envs import make_vec_env
    from ppokit.config import EnvConfig

    if kind == "ale-py":
        env = make_vec_env(EnvConfig(id=env_id, num_envs=num_envs)).env
    else:
        from ppokit.classic.games import register_namespace

        register_namespace(env_id)

        def make() -> gym.Env:
            base = gym.make(env_id, frameskip=1)
            return gym.wrappers.FrameStackObservation(gym.wrappers.AtariPreprocessing(base, frame_skip=4), 4)

        env = gym.vector.SyncVectorEnv([make] * num_envs)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    n = env.single_action_space.n  # type: ignore[attr-defined]
    start = time.perf_counter()
    for _ in range(steps // num_envs):
        env.step(rng.integers(0, n, num_envs))
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def _ppokit(env_id: str, steps: int, folder: str) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    import ppokit
    from ppokit.config import RunConfig, override
    from ppokit.presets import PRESETS

    values = {**PRESETS["atari"].overrides, "id": env_id, "total_steps": steps, "eval_episodes": 1,
              "tensorboard": False, "progress": False, "run_dir": folder, "seed": 1}  # fmt: skip
    config = override(RunConfig(), values).validate()
    before = _maxrss_mb()
    result = ppokit.train(config)
    space = ppokit.load(result.run_dir).observation_space
    bytes_each = int(np.prod(space.shape)) * np.dtype(space.dtype).itemsize
    # time_elapsed: train() until the last update's end; the final evaluation comes after it.
    return {"sps": result.global_step / result.metrics["time_elapsed"], "maxrss_mb": _maxrss_mb(),
            "growth_mb": _maxrss_mb() - before, "bytes_per_obs": bytes_each}  # fmt: skip


def _sb3(env_id: str, steps: int, folder: str) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    from ppokit.classic.games import register_namespace

    register_namespace(env_id)
    env = VecFrameStack(make_atari_env(env_id, n_envs=8, seed=1, env_kwargs={"frameskip": 1}), n_stack=4)
    model = PPO("CnnPolicy", env, n_steps=128, batch_size=256, n_epochs=4, learning_rate=lambda p: 2.5e-4 * p,
                clip_range=0.1, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5, gamma=0.99, gae_lambda=0.95,
                verbose=0, seed=1, device="cpu")  # fmt: skip
    before = _maxrss_mb()
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    elapsed = time.perf_counter() - start
    obs = model.rollout_buffer.observations  # [n_steps * n_envs, *obs_shape] after learn()'s swap_and_flatten
    return {"sps": model.num_timesteps / elapsed, "maxrss_mb": _maxrss_mb(), "growth_mb": _maxrss_mb() - before,
            "bytes_per_obs": int(obs[0].nbytes), "sb3_obs": f"{obs.shape} {obs.dtype}"}  # fmt: skip


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _job(args: tuple[str, tuple[Any, ...]]) -> Any:
    name, params = args
    return {"env": _env_throughput, "ppokit": _ppokit, "sb3": _sb3}[name](*params)


def _in_fresh_process(name: str, *params: Any) -> Any:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_job, ((name, params),))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="ALE/Pong-v5")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--env-steps", type=int, default=20_000)
    parser.add_argument("--train-steps", type=int, default=8192)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    rows: dict[str, list[Any]] = {"ale-py": [], "gymnasium": [], "ppokit": [], "sb3": []}
    for repeat in range(args.repeats):
        for kind in ("ale-py", "gymnasium"):
            rows[kind].append(_in_fresh_process("env", args.env, kind, args.env_steps, 8))
        with tempfile.TemporaryDirectory() as tmp:
            rows["ppokit"].append(_in_fresh_process("ppokit", args.env, args.train_steps, f"{tmp}/run"))
        rows["sb3"].append(_in_fresh_process("sb3", args.env, args.train_steps, ""))
        print(f"repeat {repeat + 1}: " + ", ".join(f"{k} {v[-1]}" for k, v in rows.items()), flush=True)

    env_ale, env_gym = (statistics.median(rows[k]) for k in ("ale-py", "gymnasium"))
    print(f"\n{args.env}, medians over {args.repeats} repeats")
    print(f"env steps/s (8 envs, random actions): ale-py vector env {env_ale:,.0f}, Gymnasium wrappers "
          f"{env_gym:,.0f} ({env_ale / env_gym:.2f}x)")  # fmt: skip
    med = {k: {m: statistics.median(r[m] for r in rows[k]) for m in ("sps", "maxrss_mb", "growth_mb")}
           for k in ("ppokit", "sb3")}  # fmt: skip
    pairs = ", ".join(f"{a['sps'] / b['sps']:.2f}" for a, b in zip(rows["ppokit"], rows["sb3"], strict=True))
    print(f"training steps/s: ppokit {med['ppokit']['sps']:.0f}, SB3 {med['sb3']['sps']:.0f} "
          f"({med['ppokit']['sps'] / med['sb3']['sps']:.2f}x; per repeat {pairs})")  # fmt: skip
    mem = {k: f"{med[k]['maxrss_mb']:.0f} MB (growth in training {med[k]['growth_mb']:.0f} MB)" for k in med}
    print(f"peak memory: ppokit {mem['ppokit']}, SB3 {mem['sb3']}")
    print(f"bytes per stored observation: ppokit {rows['ppokit'][0]['bytes_per_obs']:,}, "
          f"SB3 {rows['sb3'][0]['bytes_per_obs']:,}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"env": args.env, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
