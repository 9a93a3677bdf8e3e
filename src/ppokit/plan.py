"""A training plan before the run: the configuration ppokit would use, and why.

The plan starts from the env's preset when it has one; otherwise it derives the settings
from the env's spaces, its episode length and the step budget, following the defaults of
the PPO literature (Huang et al. 2022, "The 37 implementation details of PPO";
Andrychowicz et al. 2021, "What matters in on-policy RL"). Settings given by the user
win, and are marked so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from ppokit.config import RunConfig, override
from ppokit.diagnostics import rules_for
from ppokit.methods import METHODS
from ppokit.presets import PRESETS, preset_for
from ppokit.validation import check_env_id

MIN_UPDATES = 50  # fewer updates than this leave the schedules and diagnostics little to work with


@dataclass
class Plan:
    config: RunConfig
    reasons: dict[str, str]  # flat field -> why it has its value
    notes: list[str] = field(default_factory=list)  # things the user should know
    watch: list[tuple[str, str, int]] = field(default_factory=list)  # (rule, condition, patience)


def _spaces(env_id: str) -> tuple[gym.Space[Any], gym.Space[Any], int | None]:
    env = gym.make(env_id)
    try:
        return env.observation_space, env.action_space, env.spec.max_episode_steps if env.spec else None
    finally:
        env.close()


def _derived(env_id: str, total_steps: int) -> tuple[dict[str, Any], dict[str, str]]:
    """Settings derived from the env's spaces and episode length, each with its reason."""
    obs_space, action_space, max_steps = _spaces(env_id)
    values: dict[str, Any] = {}
    why: dict[str, str] = {}
    if isinstance(action_space, gym.spaces.Box):
        values |= {"num_envs": 1, "num_steps": 2048, "minibatch_size": 64, "update_epochs": 10,
                   "learning_rate": 3e-4, "ent_coef": 0.0, "norm_obs": True, "norm_reward": True}  # fmt: skip
        why |= dict.fromkeys(("num_envs", "num_steps", "minibatch_size", "update_epochs", "learning_rate"),
                             "continuous actions: PPO paper's MuJoCo setting")  # fmt: skip
        why["ent_coef"] = "continuous actions: the Gaussian's learned std explores; no entropy bonus"
        why["norm_obs"] = "continuous control: observations of very different scales"
        why["norm_reward"] = "continuous control: reward scales vary widely; scaling keeps the value loss sane"
    else:
        values |= {"num_envs": 8, "num_steps": 128, "minibatch_size": 256, "update_epochs": 4,
                   "learning_rate": 2.5e-4, "ent_coef": 0.01}  # fmt: skip
        why |= dict.fromkeys(("num_steps", "update_epochs", "learning_rate"),
                             "discrete actions: PPO paper's Atari setting")  # fmt: skip
        why["num_envs"] = "cheap envs: 8 in parallel amortize each forward pass"
        why["minibatch_size"] = "4 minibatches per epoch"
        why["ent_coef"] = "discrete actions: a small entropy bonus against early determinism"
        low, high = getattr(obs_space, "low", None), getattr(obs_space, "high", None)
        if low is not None and high is not None and not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            values["norm_obs"] = True
            why["norm_obs"] = "unbounded observation space: normalize with running statistics"
    if max_steps is not None:
        horizon = min(max_steps, 1000)
        gamma = 0.99 if horizon >= 200 else 0.98
        values["gamma"] = gamma
        why["gamma"] = f"episodes last up to {max_steps} steps: horizon 1/(1-gamma) = {1 / (1 - gamma):.0f} steps"
    batch = values["num_envs"] * values["num_steps"]
    original_steps = values["num_steps"]
    while total_steps // batch < MIN_UPDATES and values["num_steps"] > 16:
        values["num_steps"] //= 2
        batch //= 2
    if batch % values["minibatch_size"]:
        values["minibatch_size"] = batch // 4
        why["minibatch_size"] = "a quarter of the shortened rollout"
    if values["num_steps"] != original_steps:
        why["num_steps"] = (
            f"budget of {total_steps:,} steps: rollouts of {values['num_envs']} x {values['num_steps']} give "
            f"{max(1, total_steps // batch)} updates (aim: >= {MIN_UPDATES})"
        )
    return values, why


# A compiled minibatch step saved ~0.7 ms on MuJoCo's preset net and its first update cost ~20 s
# more with a cold cache (benchmarks/compile_presets.py): it pays back after ~27k minibatch steps.
COMPILE_PAYS_AFTER = 27_000


def _compile_reason(config: RunConfig, preset: str | None) -> str:
    """Why the run compiles its step or not (``preset``: the preset that set it), from its number
    of minibatch steps."""
    steps = config.num_updates * config.num_minibatches * config.algo.update_epochs
    if preset is not None:
        return f"preset {preset}: its {steps:,} minibatch steps pay back the first update's compiling"
    if steps >= COMPILE_PAYS_AFTER:
        return (f"ppokit default; {steps:,} minibatch steps: --compile would pay back its first update's "
                f"compiling (~20 s cold, ~3 s cached) after ~{COMPILE_PAYS_AFTER:,}")  # fmt: skip
    return f"ppokit default; {steps:,} minibatch steps: compiling would not pay back (~{COMPILE_PAYS_AFTER:,} needed)"


def make_plan(env_id: str, total_steps: int, user: dict[str, Any], preset: str | None = None) -> Plan:
    """The config for ``env_id`` and ``total_steps``; ``user``: flat fields the user set."""
    check_env_id(env_id)
    name = preset if preset is not None else preset_for(env_id)
    if name != "none":
        p = PRESETS[name]
        values = {k: v for k, v in p.overrides.items() if k != "total_steps"}
        why = dict.fromkeys(values, f"preset {name}: {p.source}")
    else:
        values, why = _derived(env_id, total_steps)
    values |= {"id": env_id, "total_steps": total_steps}
    why |= {"total_steps": "your budget", "id": "your env"}
    values |= user
    why |= dict.fromkeys(user, "set by you")
    config = override(RunConfig(), values).validate()
    for f in ("gae_lambda", "clip_coef", "vf_coef", "max_grad_norm", "norm_adv", "anneal_lr", "clip_vloss"):
        why.setdefault(f, "ppokit default (PPO paper / 37 implementation details)")
    if "compile" not in user:
        why["compile"] = _compile_reason(config, name if "compile" in values and name != "none" else None)
    plan = Plan(config, why)
    method = METHODS[config.algo.method]
    unsafe = " (--allow-unsafe)" if method.critic and not method.one_pass else ""  # validate() refuses it otherwise
    if not config.algo.norm_adv:
        plan.notes.append(f"advantage normalization is off{unsafe}: PPO's step size then depends on the reward scale")
    if not config.diagnostics.health_checks:
        plan.notes.append(f"health diagnostics are off{unsafe}: KL and clip fraction will not be watched")
    if config.algo.target_kl is None:
        plan.notes.append("no target_kl: epochs are never cut short; the KL warning still watches")
    rules = rules_for(config.diagnostics, METHODS[config.algo.method])  # the rules that apply to the method
    plan.watch = [(r.name, r.describe, r.patience) for r in rules]
    return plan


def plan_rows(plan: Plan) -> list[tuple[str, str, str]]:
    """(field, value, why) for the settings that matter, in reading order."""
    c = plan.config
    flat = {
        **dataclasses.asdict(c.env),
        **dataclasses.asdict(c.algo),
        **dataclasses.asdict(c.policy),
        "total_steps": c.total_steps,
        "compile": c.compile,
    }
    order = ["id", "total_steps", "num_envs", "num_steps", "update_epochs", "minibatch_size", "learning_rate",
             "anneal_lr", "clip_coef", "anneal_clip", "clip_vloss", "vf_coef", "ent_coef", "gamma", "gae_lambda",
             "norm_adv", "norm_obs", "norm_reward", "max_grad_norm", "target_kl", "hidden_sizes",
             "compile"]  # fmt: skip
    order += [name for name in plan.reasons if name in flat and name not in order]  # a preset's other settings
    rows = []
    for name in order:
        value = flat[name]
        rows.append((name, str(value), plan.reasons.get(name, "ppokit default")))
    rows.insert(
        2,
        ("rollout", f"{c.env.num_envs} x {c.algo.num_steps} = {c.batch_size} steps",
         f"{c.num_updates} updates, {c.num_minibatches} minibatches x {c.algo.update_epochs} epochs each"),
    )  # fmt: skip
    return rows
