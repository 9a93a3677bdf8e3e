"""How often are the health checks right? Seeded faults and healthy runs, with the warnings each raised.

    .venv/bin/python benchmarks/health.py --out runs/health [--envs ...] [--healthy-envs ...]
                                          [--seeds 1 2] [--steps 50000] [--no-faults] [--no-healthy]
    .venv/bin/python benchmarks/health.py --replay runs/health [--set kl_max=0.03 ...]

**Seeded faults**, each from the debugging checklists PPO users follow, on every env of
``--envs`` with its preset (ppokit's defaults where it has none) and every seed:

- ``sign_flipped``: the advantages' sign flipped before every update (a hook);
- ``no_norm_adv_reward_x1000``: no advantage normalization, rewards multiplied by 1000;
- ``lr_x100``: the learning rate 100x the env's setting;
- ``lr_div100``: the learning rate a hundredth of the env's setting (the policy barely moves);
- ``epochs_100``: 100 epochs per rollout;
- ``ent_coef_0``: no entropy bonus (only where the env's setting has one);
- ``critic_off``: the value loss weighted 0 (a critic that cannot learn);
- ``obs_x1000``: observations multiplied by 1000, not normalized.

Each fault names the rules that would name its cause (``EXPECTED``). A fault is *detected* when
any rule warns, *named* when one of its expected rules warns; the update of the first warning
is given. **Healthy runs**: every env of ``--healthy-envs`` with its preset (if it has one) and
with ppokit's plain defaults; every warning there is a false alarm. Every run has at least
``MIN_UPDATES`` updates (more steps than ``--steps`` where the batch is large); a fault run of
more than ``MAX_MINIBATCH_STEPS`` minibatch steps is left out (LunarLander's 100 epochs).

One process per run, one torch thread, the runs one after the other. Each run's folder is kept
under ``--out`` (its metrics.jsonl, config.toml and diagnostics.json; the checkpoints are
removed), with a line per run in ``rows.jsonl``; a second call with the same ``--out`` goes on
where the first stopped. ``--replay`` runs the rules of this checkout again over the kept
metrics (``ppokit.diagnostics.replay``), with thresholds of ``--set`` if given, and prints the
same tables: rules are tuned against the measurement without training again.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

MIN_UPDATES = 12
MAX_MINIBATCH_STEPS = 100_000  # a fault run that would take more (LunarLander's 100 epochs: 307k) is left out
FAULT_ENVS = ["CartPole-v1", "Acrobot-v1", "Pendulum-v1", "LunarLander-v3", "Hopper-v5"]
HEALTHY_ENVS = [*FAULT_ENVS, "MountainCarContinuous-v0", "HalfCheetah-v5", "ppokit/Bandit-v0", "ppokit/GridWorld-v0"]


@dataclass(frozen=True)
class Fault:
    overrides: dict[str, Any] = field(default_factory=dict)
    wrap: Callable[[gym.Env], gym.Env] | None = None  # applied to each env
    flip_advantages: bool = False
    reward_scale: float = 1.0  # the wrapper's, so that evaluations are in the env's own units


def _scale_rewards(env: gym.Env) -> gym.Env:
    return gym.wrappers.TransformReward(env, lambda r: 1000.0 * float(r))


def _scale_obs(env: gym.Env) -> gym.Env:
    space = env.observation_space
    assert isinstance(space, gym.spaces.Box)
    scaled = gym.spaces.Box(space.low * 1000.0, space.high * 1000.0, space.shape, np.float32)
    return gym.wrappers.TransformObservation(env, lambda o: (np.asarray(o) * 1000.0).astype(np.float32), scaled)


FAULTS: dict[str, Fault] = {
    "sign_flipped": Fault(flip_advantages=True),
    "no_norm_adv_reward_x1000": Fault({"norm_adv": False}, wrap=_scale_rewards, reward_scale=1000.0),
    "lr_x100": Fault({"learning_rate": "x100"}),
    "lr_div100": Fault({"learning_rate": "/100"}),
    "epochs_100": Fault({"update_epochs": 100}),
    "ent_coef_0": Fault({"ent_coef": 0.0}),
    "critic_off": Fault({"vf_coef": 0.0}),
    "obs_x1000": Fault({"norm_obs": False}, wrap=_scale_obs),
}
EXPECTED: dict[str, set[str]] = {  # the rules whose advice names the fault's cause
    "sign_flipped": {"return_falling"},
    "no_norm_adv_reward_x1000": {"grad_norm_exploding", "value_broken", "critic_frozen"},
    "lr_x100": {"kl_high", "clip_fraction_high", "grad_norm_exploding", "return_falling"},
    "lr_div100": {"clip_fraction_low"},
    "epochs_100": {"kl_high", "clip_fraction_high"},
    "ent_coef_0": {"entropy_collapse"},
    "critic_off": {"critic_frozen", "value_broken"},
    "obs_x1000": {"obs_scale_high", "grad_norm_exploding"},
}


def _values(env_id: str, seed: int, steps: int, preset: bool, fault: str | None, folder: str) -> dict[str, Any] | None:
    """The run's config values, or None where the fault changes nothing (no bonus to remove)."""
    from ppokit.config import RunConfig, override
    from ppokit.presets import PRESETS, preset_for

    values: dict[str, Any] = {"id": env_id}
    if preset and preset_for(env_id) != "none":
        values |= PRESETS[preset_for(env_id)].overrides
    base = override(RunConfig(), values)
    steps = max(steps, MIN_UPDATES * base.batch_size)
    values |= {"total_steps": steps, "seed": seed, "run_dir": folder, "progress": False, "tensorboard": False,
               "eval_episodes": 5, "torch_threads": 1, "allow_unsafe": True}  # fmt: skip
    extra = dict(FAULTS[fault].overrides) if fault else {}
    if extra.get("learning_rate") == "x100":
        extra["learning_rate"] = min(1.0, 100 * base.algo.learning_rate)
    if extra.get("learning_rate") == "/100":
        extra["learning_rate"] = base.algo.learning_rate / 100
    if "ent_coef" in extra and base.algo.ent_coef == 0.0:
        return None
    epochs = extra.get("update_epochs", base.algo.update_epochs)
    if steps // base.batch_size * epochs * (base.batch_size // base.algo.minibatch_size) > MAX_MINIBATCH_STEPS:
        return None
    if fault and FAULTS[fault].wrap is not None:
        extra["vectorization"] = "sync"
    return values | extra


def _run(env_id: str, fault: str | None, values: dict[str, Any]) -> dict[str, Any]:
    import ppokit
    from ppokit.classic.hooks import Hooks, RolloutEvent
    from ppokit.config import RunConfig, override

    spec = FAULTS[fault] if fault else Fault()
    env_factory = None
    if spec.wrap is not None:
        wrap = spec.wrap
        env_factory = lambda: wrap(gym.make(env_id))

    def flip(event: RolloutEvent) -> None:
        event.batch.advantages.neg_()

    hooks = Hooks(on_rollout=[flip] if spec.flip_advantages else [])
    result = ppokit.train(override(RunConfig(), values).validate(), env_factory=env_factory, hooks=hooks)
    shutil.rmtree(result.run_dir / "checkpoints", ignore_errors=True)
    score = result.evaluation.mean / spec.reward_scale if result.evaluation is not None else float("nan")
    return {"eval": score, "updates": result.updates}


def _fired(summary: dict[str, Any]) -> dict[str, list[int]]:
    """Per rule that warned: the update of each warning (an episode warns after its patience)."""
    return {name: [e["first_update"] + r["patience"] - 1 for e in r["episodes"]]
            for name, r in summary["rules"].items() if r["warnings"]}  # fmt: skip


def _in_fresh_process(*args: Any) -> dict[str, Any]:
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_run, args)


def _jobs(args: argparse.Namespace) -> list[tuple[str, int, bool, str | None]]:
    jobs = [] if args.no_faults else [(e, s, True, f) for f in FAULTS for e in args.envs for s in args.seeds]
    if not args.no_healthy:
        jobs += [(e, s, p, None) for e in args.healthy_envs for p in (True, False) for s in args.seeds]
    return jobs


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    from ppokit.presets import preset_for

    args.out.mkdir(parents=True, exist_ok=True)
    rows_file = args.out / "rows.jsonl"
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()] if rows_file.exists() else []
    done = {r["folder"] for r in rows}
    for env_id, seed, preset, fault in _jobs(args):
        preset = preset and preset_for(env_id) != "none"  # an env without one: its defaults, once
        name = f"{env_id.replace('/', '_')}-{'preset' if preset else 'defaults'}-{fault or 'healthy'}-{seed}"
        values = _values(env_id, seed, args.steps, preset, fault, str(args.out / name))
        if name in done or values is None:
            continue
        outcome = _in_fresh_process(env_id, fault, values)
        summary = json.loads((args.out / name / "diagnostics.json").read_text())
        rows.append({"folder": name, "env": env_id, "seed": seed, "preset": preset, "fault": fault,
                     "steps": values["total_steps"], "fired": _fired(summary)} | outcome)  # fmt: skip
        done.add(name)
        with rows_file.open("a") as f:
            f.write(json.dumps(rows[-1]) + "\n")
        print(json.dumps(rows[-1]), flush=True)
    return rows


def replay_rows(folder: Path, settings: list[str]) -> list[dict[str, Any]]:
    """The rows of a measurement, each ``fired`` recomputed by this checkout's rules over the
    run's kept metrics, with the diagnostics thresholds of ``settings`` (``key=value``)."""
    from ppokit.config import from_dict, override, parse_value, resolve
    from ppokit.diagnostics import replay

    changes = {resolve(k): parse_value(resolve(k), v) for k, v in (s.split("=", 1) for s in settings)}
    rows = [json.loads(line) for line in (folder / "rows.jsonl").read_text().splitlines()]
    for row in rows:
        run = folder / row["folder"]
        config = override(from_dict(tomllib.loads((run / "config.toml").read_text())), changes)
        lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        row["fired"] = _fired(replay(config, lines).summary())
    return rows


def refused(run: Path) -> str | None:
    """The field that ``ppokit train`` names when it refuses the run's config without
    ``--allow-unsafe`` (a fault caught before any work), or None."""
    from ppokit.config import from_dict, override
    from ppokit.errors import ConfigError

    config = override(from_dict(tomllib.loads((run / "config.toml").read_text())), {"allow_unsafe": False})
    try:
        config.validate()
    except ConfigError as e:
        return e.field
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="the measurement's folder (kept; a second call goes on)")
    parser.add_argument("--replay", type=Path, help="a measurement's folder: run the rules again over it")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="diagnostics thresholds (replay)")
    parser.add_argument("--envs", nargs="+", default=FAULT_ENVS, help="envs of the seeded faults")
    parser.add_argument("--healthy-envs", nargs="+", default=HEALTHY_ENVS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--no-faults", action="store_true")
    parser.add_argument("--no-healthy", action="store_true")
    args = parser.parse_args()
    if (args.out is None) == (args.replay is None):
        parser.error("give --out DIR (measure) or --replay DIR")
    rows = replay_rows(args.replay, args.set) if args.replay else measure(args)
    folder = args.replay or args.out
    for row in rows:
        row["refused"] = refused(folder / row["folder"]) if row["fault"] else None
    _print_tables(rows)


def _print_tables(rows: list[dict[str, Any]]) -> None:
    faults = [r for r in rows if r["fault"]]
    healthy_eval = {(r["env"], r["seed"]): r["eval"] for r in rows if not r["fault"] and r["preset"]}
    healthy_eval |= {(r["env"], r["seed"]): r["eval"] for r in rows if not r["fault"] and not r["preset"]
                     and (r["env"], r["seed"]) not in healthy_eval}  # fmt: skip
    if faults:
        print("\n| fault | runs | refused up front | detected | cause named | first warning (update), per run | "
              "rules that fired | final eval, healthy -> faulty |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        for name in FAULTS:
            mine = [r for r in faults if r["fault"] == name]
            if not mine:
                continue
            detected = sum(bool(r["fired"]) for r in mine)
            named = sum(bool(set(r["fired"]) & EXPECTED[name]) for r in mine)
            first = ", ".join(str(min(min(v) for v in r["fired"].values())) if r["fired"] else "-" for r in mine)
            fired = sorted({k for r in mine for k in r["fired"]})
            harm = ", ".join(f"{healthy_eval.get((r['env'], r['seed']), float('nan')):.0f} -> {r['eval']:.0f}"
                             for r in mine)  # fmt: skip
            up_front = ", ".join(sorted({r["refused"] for r in mine if r["refused"]})) or "-"
            print(f"| {name} | {len(mine)} | {up_front} | {detected} | {named} | {first} | {', '.join(fired) or '-'} "
                  f"| {harm} |")  # fmt: skip
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
        alarms = sum(len(v) for r in healthy for v in r["fired"].values())
        print(f"\nfalse alarms: {alarms} in {len(healthy)} healthy runs")


if __name__ == "__main__":
    main()
