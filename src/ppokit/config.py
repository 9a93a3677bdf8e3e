"""The run configuration: frozen dataclasses, one help text per field, validation.

Every field carries its help text in ``metadata["help"]``; the CLI flags and the docs are
generated from it. Derived sizes are properties and never stored. ``validate()`` raises a
:class:`~ppokit.errors.ConfigError` that names the field and the allowed values.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from ppokit.errors import ConfigError
from ppokit.methods import METHOD_NAMES, METHODS

Vectorization = Literal["auto", "native", "sync", "async"]
Activation = Literal["tanh", "relu"]
VECTORIZATIONS = ("auto", "native", "sync", "async")
ACTIVATIONS = ("tanh", "relu")
# The PPO paper's trust region stops meaning anything past these (see `allow_unsafe`).
MAX_SAFE_EPOCHS = 30
MAX_SAFE_CLIP = 0.3


def _f(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A field with its help text (and, for a string chosen from a table, the choices)."""
    metadata: dict[str, Any] = {"help": help} if choices is None else {"help": help, "choices": choices}
    return field(default=default, metadata=metadata)


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
    clip_coef: float = _f(0.2, "PPO clip range epsilon for the probability ratio (its lower side, 1 - eps).")
    clip_high: float | None = _f(
        None, "Upper clip range: the ratio may rise to 1 + clip_high (DAPO's clip-higher); None: clip_coef."
    )
    dual_clip: float | None = _f(
        None, "Dual clip c > 1: bound the loss of a negative advantage at c |A| (Ye et al. 2020); None: off."
    )
    anneal_clip: bool = _f(False, "Anneal clip_coef linearly to 0 over training (as rl-zoo's lin_0.2).")
    clip_vloss: bool = _f(True, "Clip the value loss with the same epsilon (max of both forms).")
    vf_coef: float = _f(0.5, "Weight of the value loss.")
    ent_coef: float = _f(0.01, "Weight of the entropy bonus at the start of training.")
    ent_coef_final: float | None = _f(None, "If set, the entropy weight moves linearly to this value over training.")
    norm_adv: bool = _f(True, "Normalize advantages per minibatch.")
    max_grad_norm: float = _f(0.5, "Clip the global gradient norm to this value.")
    target_kl: float | None = _f(None, "Stop the update's epochs when a minibatch's approx KL (k3) exceeds this.")
    adam_eps: float = _f(1e-5, "Adam epsilon.")
    kl_coef: float = _f(1.0, "ppo-kl: the penalty weight beta at the start (the PPO paper's initial beta).")
    kl_target: float = _f(0.01, "ppo-kl: the KL the adaptive beta aims at (doubled above 1.5x, halved below /1.5).")
    kl_adaptive: bool = _f(True, "ppo-kl: adapt beta after each update; off keeps beta = kl_coef.")
    ref_kl_coef: float = _f(0.0, "Weight of a KL(pi || pi_initial) penalty towards the frozen initial policy (k3).")
    adaptive_clip: bool = _f(False, "Scale clip_coef down when KL > 1.5 clip_kl_target, up when < /1.5.")
    clip_kl_target: float = _f(0.01, "adaptive_clip: the KL that the clip range aims at.")
    clip_min: float = _f(0.05, "adaptive_clip: the smallest clip range.")
    clip_max: float = _f(0.3, "adaptive_clip: the largest clip range.")
    reinforce_baseline: bool = _f(True, "reinforce: subtract the batch's mean return (a baseline) from returns.")
    group_size: int = _f(8, "grpo: episodes per group, started from the same initial state (num_envs % G == 0).")
    group_scale_std: bool = _f(True, "grpo: divide by the group's return std; off is Dr. GRPO.")


@dataclass(frozen=True)
class PolicyConfig:
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
    clip_fraction_min: float = _f(0.001, "Warn when the clip fraction stays below this (clipping never binds).")
    clip_fraction_max: float = _f(0.4, "Warn when the clip fraction stays above this (drift).")
    clip_fraction_patience: int = _f(10, "Consecutive updates outside the clip-fraction band before warning.")
    explained_variance_min: float = _f(0.0, "Warn when explained variance stays below this.")
    explained_variance_patience: int = _f(5, "Consecutive updates below explained_variance_min before warning.")
    value_warmup: float = _f(
        0.1, "Fraction of training before the explained-variance rule applies (the critic starts untrained)."
    )
    entropy_collapse_ratio: float = _f(0.1, "Warn when entropy falls below this fraction of its start...")
    entropy_collapse_before: float = _f(0.25, "...within this fraction of training.")
    grad_norm_max: float = _f(50.0, "Warn when the gradient norm (before clipping) exceeds this.")
    grad_norm_patience: int = _f(2, "Consecutive updates above grad_norm_max before warning.")


@dataclass(frozen=True)
class RunConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    seed: int = _f(1, "Seed for torch, numpy and the environments.")
    total_steps: int = _f(100_000, "Environment steps to train for (all envs together).")
    device: str = _f("cpu", "Torch device: cpu, cuda, cuda:N.")
    torch_threads: int = _f(
        1, "Torch intra-op CPU threads; 1 suits small MLPs and keeps runs reproducible (0: torch's default)."
    )
    compile: bool = _f(
        False, "torch.compile the minibatch loss: faster updates after ~15 s of compiling on first use (long runs)."
    )
    run_dir: str | None = _f(None, "Run folder; default runs/<env>__<seed>__<time>.")
    eval_episodes: int = _f(20, "Episodes of the final evaluation (and of each periodic one).")
    eval_every: int = _f(0, "Evaluate every this many env steps on separate envs, keep best.pt (0: off).")
    eval_deterministic: bool = _f(True, "Final evaluation acts with the distribution's mode.")
    checkpoint_every: int = _f(50, "Write a checkpoint every this many updates (and at the end).")
    tensorboard: bool = _f(True, "Write TensorBoard event files in the run folder.")
    progress: bool = _f(True, "Show a live progress bar.")
    allow_unsafe: bool = _f(False, f"Allow update_epochs > {MAX_SAFE_EPOCHS} or clip_coef > {MAX_SAFE_CLIP}.")

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
        _validate_env(self.env)
        _validate_algo(self.algo, self.allow_unsafe)
        _validate_policy(self.policy)
        _validate_diagnostics(self.diagnostics)
        episodes = METHODS[self.algo.method].collects == "episodes"
        if episodes and self.env.vectorization == "native":
            raise ConfigError("vectorization", f"{self.algo.method} seeds each env's reset; allowed: auto, sync, async")
        if episodes and self.env.num_envs % self.algo.group_size:
            raise ConfigError(
                "num_envs",
                f"{self.env.num_envs} is not a multiple of group_size {self.algo.group_size}; "
                "allowed: n_groups * group_size envs",
            )
        if self.eval_every < 0:
            raise ConfigError("eval_every", f"{self.eval_every}; allowed: 0 (off) or a step count >= 1")
        _positive_int("total_steps", self.total_steps)
        _positive_int("eval_episodes", self.eval_episodes)
        _positive_int("checkpoint_every", self.checkpoint_every)
        if not isinstance(self.torch_threads, int) or isinstance(self.torch_threads, bool) or self.torch_threads < 0:
            raise ConfigError(
                "torch_threads", f"{self.torch_threads!r}; allowed: 0 (torch's default) or an integer >= 1"
            )
        if self.batch_size % self.algo.minibatch_size != 0:
            raise ConfigError(
                "minibatch_size",
                f"{self.algo.minibatch_size} does not divide the batch "
                f"num_envs * num_steps = {self.batch_size}; allowed: a divisor of {self.batch_size}",
            )
        if self.total_steps < self.batch_size:
            raise ConfigError(
                "total_steps",
                f"{self.total_steps} is less than one rollout ({self.batch_size} = "
                "num_envs * num_steps); allowed: >= the batch size",
            )
        if not (self.device == "cpu" or self.device.startswith("cuda") or self.device == "mps"):
            raise ConfigError("device", f"{self.device!r}; allowed: cpu, cuda, cuda:N, mps")
        return self


def _positive_int(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(name, f"{value!r}; allowed: an integer >= 1")


def _in_range(name: str, value: float, lo: float, hi: float, lo_open: bool, hi_open: bool) -> None:
    ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok or not math.isfinite(value):
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ConfigError(name, f"{value!r} is out of range; allowed: {interval}")


def _validate_env(env: EnvConfig) -> None:
    check_env_id(env.id)
    _positive_int("num_envs", env.num_envs)
    if env.vectorization not in VECTORIZATIONS:
        raise ConfigError("vectorization", f"{env.vectorization!r}; allowed: {', '.join(VECTORIZATIONS)}")
    _in_range("clip_obs", env.clip_obs, 0.0, math.inf, True, True)
    _in_range("clip_reward", env.clip_reward, 0.0, math.inf, True, True)


def _validate_algo(algo: AlgoConfig, allow_unsafe: bool) -> None:
    if algo.method not in METHODS:
        raise ConfigError("algo", f"unknown algorithm {algo.method!r}; allowed: {', '.join(METHOD_NAMES)}")
    if algo.recompute_advantages and not METHODS[algo.method].critic:
        raise ConfigError("recompute_advantages", f"{algo.method} learns no critic to recompute with; allowed: false")
    if algo.group_size < 2:
        raise ConfigError("group_size", f"{algo.group_size}; allowed: >= 2 (a group needs episodes to compare)")
    _in_range("kl_coef", algo.kl_coef, 0.0, math.inf, False, True)
    _in_range("kl_target", algo.kl_target, 0.0, math.inf, True, True)
    _in_range("ref_kl_coef", algo.ref_kl_coef, 0.0, math.inf, False, True)
    _in_range("clip_kl_target", algo.clip_kl_target, 0.0, math.inf, True, True)
    if algo.adaptive_clip and not allow_unsafe and algo.clip_max > MAX_SAFE_CLIP:
        raise ConfigError("clip_max", f"{algo.clip_max}; allowed: <= {MAX_SAFE_CLIP}, or pass --allow-unsafe")
    if algo.adaptive_clip and not (0.0 < algo.clip_min <= algo.clip_coef <= algo.clip_max):
        raise ConfigError(
            "clip_min",
            f"adaptive_clip needs 0 < clip_min <= clip_coef <= clip_max; got "
            f"{algo.clip_min} <= {algo.clip_coef} <= {algo.clip_max}",
        )
    _positive_int("num_steps", algo.num_steps)
    _positive_int("update_epochs", algo.update_epochs)
    _positive_int("minibatch_size", algo.minibatch_size)
    _in_range("learning_rate", algo.learning_rate, 0.0, 1.0, True, False)
    _in_range("gamma", algo.gamma, 0.0, 1.0, True, False)
    _in_range("gae_lambda", algo.gae_lambda, 0.0, 1.0, False, False)
    _in_range("clip_coef", algo.clip_coef, 0.0, 1.0, True, True)
    if algo.clip_high is not None:
        _in_range("clip_high", algo.clip_high, 0.0, 1.0, True, True)
        if not allow_unsafe and algo.clip_high > MAX_SAFE_CLIP:
            raise ConfigError("clip_high", f"{algo.clip_high}; allowed: <= {MAX_SAFE_CLIP}, or pass --allow-unsafe")
    if algo.dual_clip is not None:
        _in_range("dual_clip", algo.dual_clip, 1.0, math.inf, True, True)
    _in_range("vf_coef", algo.vf_coef, 0.0, math.inf, False, True)
    _in_range("ent_coef", algo.ent_coef, 0.0, math.inf, False, True)
    if algo.ent_coef_final is not None:
        _in_range("ent_coef_final", algo.ent_coef_final, 0.0, math.inf, False, True)
    _in_range("max_grad_norm", algo.max_grad_norm, 0.0, math.inf, True, True)
    if algo.target_kl is not None:
        _in_range("target_kl", algo.target_kl, 0.0, math.inf, True, True)
    _in_range("adam_eps", algo.adam_eps, 0.0, 1.0, True, True)
    if not allow_unsafe and algo.update_epochs > MAX_SAFE_EPOCHS:
        raise ConfigError(
            "update_epochs",
            f"{algo.update_epochs} epochs per rollout let the policy drift far outside the trust "
            f"region the ratio clip assumes; allowed: <= {MAX_SAFE_EPOCHS}, or pass --allow-unsafe",
        )
    if not allow_unsafe and algo.clip_coef > MAX_SAFE_CLIP:
        raise ConfigError(
            "clip_coef",
            f"{algo.clip_coef} is a trust region too wide to keep updates stable; "
            f"allowed: <= {MAX_SAFE_CLIP}, or pass --allow-unsafe",
        )


def _validate_policy(policy: PolicyConfig) -> None:
    if not policy.hidden_sizes or any(
        not isinstance(h, int) or isinstance(h, bool) or h < 1 for h in policy.hidden_sizes
    ):
        raise ConfigError("hidden_sizes", f"{policy.hidden_sizes!r}; allowed: positive integers")
    if policy.activation not in ACTIVATIONS:
        raise ConfigError("activation", f"{policy.activation!r}; allowed: {', '.join(ACTIVATIONS)}")
    _in_range("init_log_std", policy.init_log_std, -20.0, 2.0, False, False)


def _validate_diagnostics(d: DiagnosticsConfig) -> None:
    for name in ("kl_patience", "clip_fraction_patience", "explained_variance_patience", "grad_norm_patience"):
        _positive_int(name, getattr(d, name))
    _in_range("kl_max", d.kl_max, 0.0, math.inf, True, True)
    _in_range("clip_fraction_min", d.clip_fraction_min, 0.0, 1.0, False, False)
    _in_range("clip_fraction_max", d.clip_fraction_max, 0.0, 1.0, False, False)
    _in_range("entropy_collapse_ratio", d.entropy_collapse_ratio, 0.0, 1.0, False, False)
    _in_range("entropy_collapse_before", d.entropy_collapse_before, 0.0, 1.0, False, False)
    _in_range("grad_norm_max", d.grad_norm_max, 0.0, math.inf, True, True)
    _in_range("value_warmup", d.value_warmup, 0.0, 1.0, False, False)
    if d.clip_fraction_min >= d.clip_fraction_max:
        raise ConfigError(
            "clip_fraction_min", f"{d.clip_fraction_min} must be below clip_fraction_max ({d.clip_fraction_max})"
        )


def check_env_id(env_id: str) -> None:
    """Raise ConfigError for an unregistered env id, suggesting the closest registered ids."""
    import gymnasium as gym

    import ppokit.classic  # noqa: F401  # registers the verification envs

    if env_id in gym.registry:
        return
    try:
        gym.spec(env_id)  # also resolves ids of namespaces imported on demand
        return
    except Exception:
        pass
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError("env.id", f"unknown Gymnasium environment {env_id!r}{hint}")


# --- Conversion to and from plain dicts (TOML files, checkpoints) -------------------------

SECTIONS = {"env": EnvConfig, "algo": AlgoConfig, "policy": PolicyConfig, "diagnostics": DiagnosticsConfig}
T = TypeVar("T")


def to_dict(config: RunConfig) -> dict[str, Any]:
    """Plain nested dict; ``None`` values are dropped (TOML has no null)."""

    def clean(d: dict[str, Any]) -> dict[str, Any]:
        return {
            k: clean(v) if isinstance(v, dict) else list(v) if isinstance(v, tuple) else v
            for k, v in d.items()
            if v is not None
        }

    return clean(dataclasses.asdict(config))


def _build(cls: type[T], values: dict[str, Any], where: str) -> T:
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]  # cls is a dataclass
    for key in values:
        if key not in names:
            close = difflib.get_close_matches(key, list(names), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}{key}", f"unknown key{hint}; allowed: {', '.join(sorted(names))}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**kwargs)


def from_dict(data: dict[str, Any], base: RunConfig | None = None) -> RunConfig:
    """Overlay a nested dict (as read from TOML) on ``base`` (default: the defaults)."""
    base = base or RunConfig()
    sections: dict[str, Any] = {}
    top: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(key, f"must be a table of {SECTIONS[key].__name__} fields")
            merged = {**dataclasses.asdict(getattr(base, key)), **value}
            sections[key] = _build(SECTIONS[key], merged, f"{key}.")
        else:
            top[key] = value
    run_fields = {k: v for k, v in dataclasses.asdict(base).items() if k not in SECTIONS}
    return dataclasses.replace(
        _build(RunConfig, {**run_fields, **top}, ""),
        **{name: sections.get(name, getattr(base, name)) for name in SECTIONS},
    )


def override(config: RunConfig, flat: dict[str, Any]) -> RunConfig:
    """Apply flat ``field=value`` overrides, each field looked up in its section."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        section = field_section(key)
        if section is None:
            nested[key] = value
        else:
            nested.setdefault(section, {})[key] = value
    return from_dict(nested, base=config)


def field_section(name: str) -> str | None:
    """The section ('env', 'algo', 'policy') that owns a flat field name, None for run fields."""
    for section, cls in SECTIONS.items():
        if name in {f.name for f in dataclasses.fields(cls)}:
            return section
    return None
