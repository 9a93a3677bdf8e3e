"""The run configuration: a tree of frozen dataclasses, one help text per field.

Every field carries its help text in ``metadata["help"]``; the CLI flags (``ppokit.flags``)
and the docs are generated from it. Derived sizes are properties and never stored.
``validate()`` (the checks live in ``ppokit.validation``) raises a
:class:`~ppokit.errors.ConfigError` that names the field and the allowed values. The second
half of this module is the tree's plumbing: dotted paths, short names, dicts and overrides.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args, get_origin

from ppokit.config_types import Activation, EncoderName, ImageLayout, Vectorization, WandbMode, shown, typed
from ppokit.config_types import described as _f
from ppokit.core.advantages import GroupScale
from ppokit.errors import ConfigError
from ppokit.methods import METHOD_NAMES, METHODS

# The PPO paper's trust region stops meaning anything past these (see `allow_unsafe`).
MAX_SAFE_EPOCHS = 30
MAX_SAFE_CLIP = 0.3


@dataclass(frozen=True)
class EnvConfig:
    id: str = _f("CartPole-v1", "Gymnasium environment id (any registered id).")
    num_envs: int = _f(4, "Number of environments stepped in parallel.")
    vectorization: Vectorization = _f(
        "auto",
        "How envs are vectorized: native (the env's own vector implementation), sync, "
        "async (one process per env), or auto (native where the env has one, else sync).",
    )
    norm_obs: bool = _f(False, "Normalize observations with running mean/std (saved in the model).")
    norm_reward: bool = _f(False, "Scale rewards by the running std of the discounted return (as in SB3/CleanRL).")
    clip_obs: float = _f(10.0, "Clip normalized observations to [-clip_obs, clip_obs].")
    clip_reward: float = _f(10.0, "Clip scaled rewards to [-clip_reward, clip_reward].")
    info_metrics: tuple[str, ...] = _f(
        (), "Numeric keys of the env's step info to average per rollout and log as info_<key> (e.g. regret)."
    )
    sign_reward: bool = _f(False, "Train on sign(reward) (Atari's reward clipping); episode returns stay raw.")
    episodic_life: bool = _f(False, "A lost life ends the episode for the learner (no bootstrap across it); "
                             "the game goes on, returns count whole games. Needs info['lives'] (Atari).")  # fmt: skip


@dataclass(frozen=True)
class PPOKLConfig:
    """ppo-kl's adaptive penalty (Schulman et al. 2017, section 4)."""

    coef: float = _f(1.0, "ppo-kl: the penalty weight beta at the start (the PPO paper's initial beta).")
    target: float = _f(0.01, "ppo-kl: the KL the adaptive beta aims at (doubled above 1.5x, halved below /1.5).")
    adaptive: bool = _f(True, "ppo-kl: adapt beta after each update; off keeps beta = coef.")


@dataclass(frozen=True)
class AdaptiveClipConfig:
    """A clip range that follows the KL each update caused (any clipping method)."""

    enabled: bool = _f(False, "Scale clip_coef down when KL > 1.5 target, up when KL < target / 1.5.")
    target: float = _f(0.01, "adaptive clip: the KL that the clip range aims at.")
    min: float = _f(0.05, "adaptive clip: the smallest clip range.")
    max: float = _f(0.3, "adaptive clip: the largest clip range.")


@dataclass(frozen=True)
class ReinforceConfig:
    baseline: bool = _f(True, "reinforce: subtract the batch's mean return (a baseline) from returns.")


@dataclass(frozen=True)
class GroupConfig:
    """The group methods (grpo, rloo): episodes from shared start states, compared in groups."""

    size: int = _f(8, "group methods: episodes per group, from one start state (num_envs % size == 0).")
    scale: GroupScale = _f(
        "group",
        "grpo: divide the group-centred return by the group's std (group), the batch's (batch), or not "
        "(none: Dr. GRPO).",
    )


@dataclass(frozen=True)
class AlgoConfig:
    method: str = _f(
        "ppo", "The method; " + "; ".join(f"{name}: {m.help}" for name, m in METHODS.items()), choices=METHOD_NAMES
    )
    num_steps: int = _f(128, "Steps collected per env per rollout (T).")
    update_epochs: int = _f(4, "Epochs over each rollout (K).")
    minibatch_size: int = _f(128, "Samples per minibatch; must divide num_envs * num_steps.")
    learning_rate: float = _f(2.5e-4, "Adam learning rate at the start of training.")
    anneal_lr: bool = _f(True, "Anneal the learning rate linearly to 0 over training.")
    gamma: float = _f(0.99, "Discount factor, in (0, 1].")
    gae_lambda: float = _f(0.95, "GAE lambda, in [0, 1].")
    bootstrap_truncation: bool = _f(
        True, "Bootstrap from V(final obs) when a time limit truncates an episode; off treats it as terminal."
    )
    recompute_advantages: bool = _f(
        False, "Recompute values and GAE advantages with the current critic before every epoch after the first."
    )
    clip_coef: float = _f(0.2, "PPO clip range epsilon for the probability ratio (its lower side: 1 - clip_coef).")
    clip_high: float | None = _f(
        None, "Upper clip range: the ratio may rise to 1 + clip_high (DAPO's clip-higher); None: clip_coef."
    )
    dual_clip: float | None = _f(
        None, "Dual clip c > 1: bound the loss of a negative advantage at c |A| (Ye et al. 2020); None: off."
    )
    anneal_clip: bool = _f(False, "Anneal the clip range linearly to 0 over training (as rl-zoo's lin_0.2).")
    clip_vloss: bool = _f(True, "Clip the value loss with the same epsilon (max of both forms).")
    vf_coef: float = _f(0.5, "Weight of the value loss.")
    ent_coef: float = _f(0.01, "Weight of the entropy bonus at the start of training.")
    ent_coef_final: float | None = _f(None, "If set, the entropy weight moves linearly to this value over training.")
    norm_adv: bool = _f(True, "Normalize advantages per minibatch.")
    max_grad_norm: float = _f(0.5, "Clip the global gradient norm to this value.")
    target_kl: float | None = _f(None, "Stop the update's epochs when a minibatch's approx KL (k3) exceeds this.")
    adam_eps: float = _f(1e-5, "Adam epsilon.")
    ref_kl_coef: float = _f(0.0, "Weight of a KL(pi || pi_initial) penalty towards the frozen initial policy (k3).")
    ppo_kl: PPOKLConfig = field(default_factory=PPOKLConfig)
    adaptive_clip: AdaptiveClipConfig = field(default_factory=AdaptiveClipConfig)
    reinforce: ReinforceConfig = field(default_factory=ReinforceConfig)
    group: GroupConfig = field(default_factory=GroupConfig)


@dataclass(frozen=True)
class PolicyConfig:
    encoder: EncoderName = _f("auto", "Observation encoder: mlp, nature-cnn (Mnih et al. 2015; 36x36 images or more), "
                              "small-cnn (MinAtar's grids), or auto (a CNN for image-shaped integer/bool Box spaces, "
                              "nature-cnn from 36x36; else the MLP).")  # fmt: skip
    image_layout: ImageLayout = _f("auto", "An image's channel axis: hwc (last), chw (first), or auto (first "
                                   "if the first axis is shorter than the last, (4, 84, 84); else last).")  # fmt: skip
    hidden_sizes: tuple[int, ...] = _f((64, 64), "Hidden layer widths of the MLP trunks.")
    activation: Activation = _f("tanh", "Activation of the hidden layers: tanh or relu.")
    shared_trunk: bool = _f(False, "Share one trunk between actor and critic.")
    init_log_std: float = _f(0.0, "Initial log std of the Gaussian policy (Box actions).")
    ortho_init: bool = _f(True, "Orthogonal initialization (gain sqrt 2, 0.01 policy, 1 value).")


@dataclass(frozen=True)
class DiagnosticsConfig:
    health_checks: bool = _f(True, "Watch the metrics during training and warn with advice.")
    kl_max: float = _f(0.05, "Warn when approx KL exceeds this.")
    kl_patience: int = _f(2, "Consecutive updates above kl_max before warning.")
    clip_fraction_min: float = _f(0.001, "Warn when the clip fraction stays below this and the policy within...")
    moved_kl_min: float = _f(0.001, "...this KL from its start (kl_from_init): updates too small to learn.")
    clip_fraction_max: float = _f(0.4, "Warn when the clip fraction stays above this (drift).")
    clip_fraction_patience: int = _f(10, "Consecutive updates outside the clip-fraction band before warning.")
    explained_variance_min: float = _f(-0.2, "Warn when explained variance stays below this...")
    value_corr_min: float = _f(0.1, "...and the values' correlation with their targets below this.")
    explained_variance_patience: int = _f(5, "Consecutive updates below explained_variance_min before warning.")
    value_step_min: float = _f(1e-4, "Warn when updates move the values by less than this (value_step).")
    value_step_patience: int = _f(3, "Consecutive updates below value_step_min before warning.")
    value_warmup: float = _f(0.1, "Fraction of training before the explained-variance rule applies.")
    entropy_collapse_ratio: float = _f(0.1, "Warn when entropy falls below this fraction of its start...")
    entropy_collapse_before: float = _f(0.25, "...within this fraction of training.")
    grad_norm_max: float = _f(1000.0, "Warn when the gradient norm (before clipping) exceeds this.")
    grad_norm_patience: int = _f(2, "Consecutive updates above grad_norm_max before warning.")
    return_drop: float = _f(0.5, "Warn when the mean episode return falls this many start spreads below its start.")
    return_drop_patience: int = _f(3, "Consecutive updates below the start before warning.")
    obs_rms_max: float = _f(100.0, "Warn when the network's inputs have a root mean square above this.")


@dataclass(frozen=True)
class RunConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    seed: int = _f(1, "Seed for torch, numpy and the environments.")
    total_steps: int = _f(100_000, "Environment steps to train for (all envs together).")
    device: str = _f("cpu", "Torch device: cpu, cuda, cuda:N.")
    torch_threads: int = _f(1, "Torch intra-op CPU threads; 1 suits small MLPs (0: torch's default).")
    compile: bool = _f(
        False,
        "Compile the whole minibatch step as one graph: 1.5-1.75x faster updates after a first "
        "update of ~20 s (cold) or ~3 s (cached); on in the LunarLander and MuJoCo presets.",
    )
    run_dir: str | None = _f(None, "Run folder; default runs/<env>__<seed>__<time>.")
    eval_episodes: int = _f(20, "Episodes of the final evaluation (and of each periodic one).")
    eval_every: int = _f(0, "Evaluate every this many env steps on separate envs, keep best.pt (0: off).")
    eval_deterministic: bool = _f(True, "Final evaluation acts with the distribution's mode.")
    checkpoint_every: int = _f(50, "Write a checkpoint every this many updates (and at the end).")
    video_every: int = _f(0, "Record a deterministic episode to videos/ every this many updates (0: off).")
    async_workers: int = _f(
        0, "Asynchronous rollout workers (Ray actors) collecting while the learner updates (0: off)."
    )
    max_policy_lag: int = _f(4, "Drop an async worker's rollout collected more than this many updates ago.")
    vtrace: bool = _f(False, "Async workers: V-trace targets and advantages under the learner's policy (else GAE).")
    vtrace_clip: float = _f(1.0, "V-trace's truncation of the importance ratios (rho-bar = c-bar).")
    tensorboard: bool = _f(True, "Write TensorBoard event files in the run folder.")
    progress: bool = _f(True, "Show a live progress bar.")
    wandb: bool = _f(False, "Also log to Weights & Biases: the metrics TensorBoard gets, the config, the final eval.")
    wandb_project: str = _f("ppokit", "W&B project.")
    wandb_entity: str | None = _f(None, "W&B entity (user or team); None: your default entity.")
    wandb_group: str | None = _f(None, "W&B group (an experiment's runs, say).")
    wandb_tags: tuple[str, ...] = _f((), "W&B tags.")
    wandb_mode: WandbMode = _f(
        "online", "W&B mode: online, or offline (written to the run's wandb/; wandb sync later)."
    )
    allow_unsafe: bool = _f(
        False,
        f"Allow update_epochs > {MAX_SAFE_EPOCHS}, clip_coef > {MAX_SAFE_CLIP}, and a PPO run (ppo, ppo-kl) "
        "without advantage normalization or without health checks.",
    )

    # Derived sizes: computed, never stored.
    @property
    def batch_size(self) -> int:
        return self.env.num_envs * self.algo.num_steps

    @property
    def num_minibatches(self) -> int:
        return self.batch_size // self.algo.minibatch_size

    @property
    def num_updates(self) -> int:
        return max(1, self.total_steps // self.batch_size)

    def validate(self) -> RunConfig:
        """Raise ConfigError for the first invalid field; return self when all are valid."""
        from ppokit.validation import validate  # the checks import this module's types

        validate(self)
        return self


# --- The tree: dotted paths, short names, plain dicts ----------------------------------------
#
# Every leaf field has a dotted path ("algo.ppo_kl.target"); run fields are top-level ("seed").
# The fields of the run and of the four sections also answer to their own name ("clip_coef"),
# as flags, ``--set`` keys and ``override`` keys; the method sections' fields answer to the names
# they had before the sections existed (LEGACY). A TOML file spells the tree itself, so an old
# name in it gets an error that names the new path.

SECTIONS = {"env": EnvConfig, "algo": AlgoConfig, "policy": PolicyConfig, "diagnostics": DiagnosticsConfig}
LEGACY = {
    "kl_coef": "algo.ppo_kl.coef",
    "kl_target": "algo.ppo_kl.target",
    "kl_adaptive": "algo.ppo_kl.adaptive",
    "adaptive_clip": "algo.adaptive_clip.enabled",
    "clip_kl_target": "algo.adaptive_clip.target",
    "clip_min": "algo.adaptive_clip.min",
    "clip_max": "algo.adaptive_clip.max",
    "reinforce_baseline": "algo.reinforce.baseline",
    "group_size": "algo.group.size",
    "group_scale_std": "algo.group.scale",  # true -> "group", false -> "none"
}
T = TypeVar("T")


def _section_type(f: dataclasses.Field[Any]) -> type[Any] | None:
    """The dataclass of a section field (its default factory), None for a leaf."""
    factory = f.default_factory
    return factory if isinstance(factory, type) and dataclasses.is_dataclass(factory) else None


def _is_section(f: dataclasses.Field[Any]) -> bool:
    return _section_type(f) is not None


def leaves(cls: type[Any] = RunConfig, prefix: str = "") -> dict[str, dataclasses.Field[Any]]:
    """Every leaf field of the tree under ``cls``, by dotted path, in declaration order."""
    out: dict[str, dataclasses.Field[Any]] = {}
    for f in dataclasses.fields(cls):
        section = _section_type(f)
        if section is not None:
            out |= leaves(section, f"{prefix}{f.name}.")
        else:
            out[f"{prefix}{f.name}"] = f
    return out


def leaf_types() -> dict[str, Any]:
    """Dotted path -> the field's type hint."""
    hints: dict[str, Any] = {}
    for path in leaves():
        *parents, name = path.split(".")
        owner: Any = RunConfig
        for part in parents:
            owner = typing.get_type_hints(owner)[part]
        hints[path] = typing.get_type_hints(owner)[name]
    return hints


def short_names() -> dict[str, str]:
    """Short name -> dotted path: the run's and the sections' own field names, and LEGACY."""
    names = {path.split(".")[-1]: path for path in leaves() if path.count(".") <= 1}
    return names | LEGACY


def resolve(key: str) -> str:
    """The dotted path of a dotted path or a short name; ConfigError for anything else."""
    if key in leaves():
        return key
    names = short_names()
    if key in names:
        return names[key]
    close = difflib.get_close_matches(key, [*names, *leaves()], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(key, f"unknown field{hint}; allowed: the fields of ppokit train --help")


def legacy_value(key: str, value: Any) -> Any:
    """A value given under a legacy name, in the new field's terms."""
    if key == "group_scale_std" and isinstance(value, bool):
        return "group" if value else "none"
    return value


def to_dict(config: RunConfig) -> dict[str, Any]:
    """Plain nested dict; ``None`` values are dropped (TOML has no null)."""

    def clean(d: dict[str, Any]) -> dict[str, Any]:
        return {
            k: clean(v) if isinstance(v, dict) else list(v) if isinstance(v, tuple) else v
            for k, v in d.items()
            if v is not None
        }

    return clean(dataclasses.asdict(config))


def _build(obj: T, values: dict[str, Any], where: str) -> T:
    """``obj`` with the nested ``values`` overlaid, section by section, each leaf checked
    against its field's type (``typed``)."""
    fields = {f.name: f for f in dataclasses.fields(obj)}  # type: ignore[arg-type]  # obj is a dataclass
    hints = typing.get_type_hints(type(obj))
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            raise _unknown(key, where, list(fields))
        if _is_section(fields[key]):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}{key}", f"got {shown(value)}, expected a table of "
                                                   f"{type(getattr(obj, key)).__name__} fields")  # fmt: skip
            changes[key] = _build(getattr(obj, key), value, f"{where}{key}.")
        else:
            changes[key] = typed(f"{where}{key}", value, hints[key])
    return dataclasses.replace(obj, **changes)  # type: ignore[type-var]  # obj is a dataclass


def _unknown(key: str, where: str, allowed: list[str]) -> ConfigError:
    if not key.isidentifier():
        return ConfigError(f"{where}{key!r}", f"unknown key; allowed: {', '.join(sorted(allowed))}")
    renamed = LEGACY.get(key)
    if renamed is not None and renamed.startswith(where):
        return ConfigError(f"{where}{key}", f"renamed to {renamed} (in TOML: [{renamed.rsplit('.', 1)[0]}] "
                                            f"{renamed.rsplit('.', 1)[1]} = ...)")  # fmt: skip
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{where}{key}", f"unknown key{hint}; allowed: {', '.join(sorted(allowed))}")


def from_dict(data: dict[str, Any], base: RunConfig | None = None) -> RunConfig:
    """Overlay a nested dict (as read from TOML) on ``base`` (default: the defaults)."""
    return _build(base or RunConfig(), data, "")


def override(config: RunConfig, flat: dict[str, Any]) -> RunConfig:
    """Apply ``field=value`` overrides, each field a dotted path or a short name."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, name = resolve(key).split(".")
        table = nested
        for part in parents:
            table = table.setdefault(part, {})
        table[name] = legacy_value(key, value)
    return from_dict(nested, base=config)


def parse_value(key: str, text: str) -> Any:
    """Read one command-line value for field ``key`` (a path or short name) with the field's
    type (``none`` for optional fields); ConfigError if it cannot be read."""
    path = resolve(key)
    kind = bool if key == "group_scale_std" else leaf_types()[path]
    if get_origin(kind) in (typing.Union, types.UnionType):
        if text.lower() == "none":
            return None
        kind = next(a for a in get_args(kind) if a is not type(None))
    try:
        if kind is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return text.lower() == "true"
        if get_origin(kind) is tuple:
            item = get_args(kind)[0]
            return tuple(item(x) for x in text.split("x" if item is int else "+"))
        if get_origin(kind) is Literal:
            if text not in get_args(kind):
                raise ValueError(text)
            return text
        return kind(text)
    except ValueError:
        raise ConfigError(key, f"cannot read {text!r} as {getattr(kind, '__name__', kind)}") from None
