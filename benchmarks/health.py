"""How often are the health checks right? Seeded faults and healthy runs, with the warnings each raised.

    .venv/bin/python benchmarks/health.py [--envs CartPole-v1 Acrobot-v1] [--seeds 1 2]
                                          [--steps 50000] [--no-faults] [--no-healthy] [--json PATH]

**Seeded faults**, each from the debugging checklists PPO users follow, on every env and seed:

- ``sign_flipped``: the advantages' sign flipped before every update (a hook);
- ``no_norm_adv_reward_x1000``: no advantage normalization, rewards multiplied by 1000;
- ``lr_x100``: the learning rate 100x the env's setting;
- ``epochs_100``: 100 epochs per rollout;
- ``critic_off``: the value loss weighted 0 (a critic that cannot learn);
- ``obs_x1000``: observations multiplied by 1000, not normalized.

Each fault names the rules that would name its cause (``EXPECTED``). A fault is *detected* when
any rule warns, *named* when one of its expected rules warns; the update of the first warning
is given. **Healthy runs**: every env with its preset (if it has one) and with ppokit's plain
defaults; every warning there is a false alarm. One process per run, one torch thread, the
runs one after the other; each run's own ``diagnostics.json`` is the record.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np


@dataclass(frozen=True)
class Fault:
    overrides: dict[str, Any] = field(default_factory=dict)
    wrap: Callable[[gym.Env], gym.Env] | None = None  # applied to each env
    flip_advantages: bool = False


def _scale_rewards(env: gym.Env) -> gym.Env:
    return gym.wrappers.TransformReward(env, lambda r: 1000.0 * float(r))


def _scale_obs(env: gym.Env) -> gym.Env:
    space = env.observation_space
    assert isinstance(space, gym.spaces.Box)
    scaled = gym.spaces.Box(space.low * 1000.0, space.high * 1000.0, space.shape, np.float32)
    return gym.wrappers.TransformObservation(env, lambda o: (np.asarray(o) * 1000.0).astype(np.float32), scaled)


FAULTS: dict[str, Fault] = {
    "sign_flipped": Fault(flip_advantages=True),
    "no_norm_adv_reward_x1000": Fault({"norm_adv": False}, wrap=_scale_rewards),
    "lr_x100": Fault({"learning_rate": "x100"}),
    "epochs_100": Fault({"update_epochs": 100}),
    "critic_off": Fault({"vf_coef": 0.0}),
    "obs_x1000": Fault({"norm_obs": False}, wrap=_scale_obs),
}
EXPECTED: dict[str, set[str]] = {
    "sign_flipped": {"kl_high", "clip_fraction_high", "entropy_collapse"},
    "no_norm_adv_reward_x1000": {"grad_norm_exploding", "kl_high", "clip_fraction_high"},
    "lr_x100": {"kl_high", "clip_fraction_high", "grad_norm_exploding"},
    "epochs_100": {"kl_high", "clip_fraction_high"},
    "critic_off": {"value_broken"},
    "obs_x1000": {"grad_norm_exploding", "kl_high", "clip_fraction_high"},
}


def _run(env_id: str, seed: int, steps: int, preset: bool, fault: str | None, folder: str) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    import ppokit
    from ppokit.classic.hooks import Hooks, RolloutEvent
    from ppokit.config import RunConfig, override
    from ppokit.presets import PRESETS, preset_for

    values: dict[str, Any] = {"id": env_id}
    if preset and preset_for(env_id) != "none":
        values |= PRESETS[preset_for(env_id)].overrides
    values |= {"total_steps": steps, "seed": seed, "run_dir": folder, "progress": False, "tensorboard": False,
               "eval_episodes": 5}  # fmt: skip
    spec = FAULTS[fault] if fault else Fault()
    extra = dict(spec.overrides)
    if extra.get("learning_rate") == "x100":
        extra["learning_rate"] = min(1.0, 100 * override(RunConfig(), values).algo.learning_rate)
    values |= extra | {"allow_unsafe": True}
    env_factory = None
    if spec.wrap is not None:
        wrap = spec.wrap
        values["vectorization"] = "sync"
        env_factory = lambda: wrap(gym.make(env_id))

    def flip(event: RolloutEvent) -> None:
        event.batch.advantages.neg_()

    hooks = Hooks(on_rollout=[flip] if spec.flip_advantages else [])
    result = ppokit.train(override(RunConfig(), values).validate(), env_factory=env_factory, hooks=hooks)
    diagnostics = json.loads((result.run_dir / "diagnostics.json").read_text())
    fired = {name: [e["first_update"] + r["patience"] - 1 for e in r["episodes"]]
             for name, r in diagnostics["rules"].items() if r["warnings"]}  # fmt: skip
    score = result.evaluation.mean if result.evaluation is not None else float("nan")
    return {"env": env_id, "seed": seed, "preset": preset, "fault": fault, "fired": fired, "eval": score,
            "updates": result.updates}  # fmt: skip


def _in_fresh_process(*args: Any) -> dict[str, Any]:
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_run, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "Acrobot-v1"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--no-faults", action="store_true")
    parser.add_argument("--no-healthy", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [] if args.no_faults else [(e, s, True, f) for f in FAULTS for e in args.envs for s in args.seeds]
        if not args.no_healthy:
            jobs += [(e, s, preset, None) for e in args.envs for preset in (True, False) for s in args.seeds]
        for i, (env_id, seed, preset, fault) in enumerate(jobs):
            rows.append(_in_fresh_process(env_id, seed, args.steps, preset, fault, f"{tmp}/run-{i}"))
            print(json.dumps(rows[-1]), flush=True)
    _print_tables(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def _print_tables(rows: list[dict[str, Any]]) -> None:
    faults = [r for r in rows if r["fault"]]
    if faults:
        print("\n| fault | runs | detected | cause named | first warning (update), per run | rules that fired |")
        print("|---|---|---|---|---|---|")
        for name in FAULTS:
            mine = [r for r in faults if r["fault"] == name]
            if not mine:
                continue
            detected = sum(bool(r["fired"]) for r in mine)
            named = sum(bool(set(r["fired"]) & EXPECTED[name]) for r in mine)
            first = ", ".join(str(min(min(v) for v in r["fired"].values())) if r["fired"] else "-" for r in mine)
            fired = sorted({k for r in mine for k in r["fired"]})
            print(f"| {name} | {len(mine)} | {detected} | {named} | {first} | {', '.join(fired) or '-'} |")
    healthy = [r for r in rows if not r["fault"]]
    if healthy:
        print("\n| env | settings | runs | warnings per run | rules | final eval per run |")
        print("|---|---|---|---|---|---|")
        for env_id in dict.fromkeys(r["env"] for r in healthy):
            for preset in (True, False):
                mine = [r for r in healthy if r["env"] == env_id and r["preset"] == preset]
                if not mine:
                    continue
                counts = ", ".join(str(sum(len(v) for v in r["fired"].values())) for r in mine)
                rules = sorted({k for r in mine for k in r["fired"]})
                evals = ", ".join(f"{r['eval']:.1f}" for r in mine)
                label = "preset" if preset else "defaults"
                print(f"| {env_id} | {label} | {len(mine)} | {counts} | {', '.join(rules) or '-'} | {evals} |")


if __name__ == "__main__":
    main()
