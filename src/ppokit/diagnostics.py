"""Health checks over the per-update metrics, each with the advice a practitioner would give.

A rule watches one metric. When its condition holds for ``patience`` consecutive updates it
warns once; it warns again only after the condition has cleared and come back (one warning
per *episode* of the condition, not one per update). Every episode is kept for the run's
summary (``diagnostics.json``, the report).

The explained-variance rule waits for the first ``value_warmup`` of training (an untrained
critic explains nothing yet) and skips updates whose value targets barely vary. Rules about
the size of updates (KL, clip fraction) are not checked in the annealing tail, once the
learning rate or the clip range has been annealed below a quarter of its start: there
updates shrink by design.

A rule that does not apply to the method is not in its list at all: the clip-fraction rules
need a method that clips, the explained-variance rule one with a critic (``ppokit.methods``).
Their metrics are not logged for other methods either, so no advice can be wrong for them.

The machinery (a list of rules, their streaks and episodes, the summary) is shared: the
language-model rules (``ppokit.lm.health``) feed :func:`observe_rules` per RL step with their
own metrics and write the same ``diagnostics.json``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ppokit.config import DiagnosticsConfig, RunConfig
from ppokit.errors import CheckpointError, ConfigError
from ppokit.methods import METHODS, Method

TAIL_FRACTION = 0.25
TARGET_SPREAD = 0.05  # value targets whose std is below 5% of their mean are "constant"


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    describe: str  # the condition, for messages: "{value} > {threshold}"
    advice: str
    patience: int
    check: Callable[[float, Mapping[str, float]], bool]  # (value, metrics) -> condition holds
    skip_in_tail: bool = False
    needs: str | None = None  # "clips" or "critic": a fact of the method the rule is about
    threshold: float | None = None  # the condition's bound in the metric's units (figures draw it)
    worst: Literal["max", "min", "last"] = "max"  # which value of an episode is furthest from healthy

    def applies_to(self, method: object) -> bool:
        """Whether the rule is about ``method`` (a ``Method``, or any object with the fact)."""
        return self.needs is None or bool(getattr(method, self.needs))


def rules_for(config: DiagnosticsConfig, method: Method | None = None) -> list[Rule]:
    """The rules with the thresholds of ``config`` that apply to ``method`` (all for None;
    sources: the PPO debugging checklists of
    Engstrom et al. 2020, Andrychowicz et al. 2021 "What matters in on-policy RL", and
    the 37 implementation details of PPO, Huang et al. 2022)."""
    c = config
    rules = [
        Rule("kl_high", "approx_kl", f"approx KL above {c.kl_max}",
             "the policy moves too far per update: lower the learning rate or clip_coef, "
             "fewer epochs, or set target_kl", c.kl_patience,
             lambda v, m: v > c.kl_max, skip_in_tail=True, threshold=c.kl_max),
        Rule("clip_fraction_low", "clip_fraction",
             f"clip fraction below {c.clip_fraction_min} with the policy within KL {c.moved_kl_min} of its start",
             "clipping never binds and the policy has barely moved: updates are too small to learn, raise the "
             "learning rate or the epochs", c.clip_fraction_patience,
             lambda v, m: v < c.clip_fraction_min and m.get("kl_from_init", 0.0) < c.moved_kl_min,
             skip_in_tail=True, needs="clips", threshold=c.clip_fraction_min, worst="min"),
        Rule("clip_fraction_high", "clip_fraction", f"clip fraction above {c.clip_fraction_max}",
             "the policy drifts out of the trust region: lower the learning rate or the epochs",
             c.clip_fraction_patience, lambda v, m: v > c.clip_fraction_max, skip_in_tail=True, needs="clips",
             threshold=c.clip_fraction_max),
        Rule("value_broken", "explained_variance",
             f"explained variance below {c.explained_variance_min} with the values' correlation to their targets "
             f"below {c.value_corr_min}",
             "the value function predicts worse than a constant and does not track its targets: check value_loss "
             "and its sign, the value targets, the reward scale (try norm_reward), or clip_vloss off",
             c.explained_variance_patience,
             lambda v, m: v < c.explained_variance_min and m.get("value_corr", -1.0) < c.value_corr_min
             and m.get("_progress", 1.0) >= c.value_warmup and _targets_vary(m), needs="critic",
             threshold=c.explained_variance_min, worst="min"),
        Rule("critic_frozen", "value_step", f"updates move the values by less than {c.value_step_min} of the "
             "targets' spread", "the critic does not learn: vf_coef is 0, its parameters get no gradient (a "
             "detached value, parameters left out of the optimizer), the learning rate is far too small, or value "
             "clipping (clip_vloss) holds back values far smaller than their targets: normalize rewards",
             c.value_step_patience,
             lambda v, m: v < c.value_step_min, skip_in_tail=True, needs="critic", threshold=c.value_step_min,
             worst="min"),
        Rule("entropy_collapse", "entropy",
             f"entropy below {c.entropy_collapse_ratio} of its start in the first "
             f"{c.entropy_collapse_before:.0%} of training, the return no better than at the start",
             "the policy turned deterministic early, before it got better, and stops exploring: raise ent_coef",
             1, lambda v, m: m.get("_entropy_ratio", 1.0) < c.entropy_collapse_ratio
             and m.get("_progress", 1.0) < c.entropy_collapse_before and not m.get("_return_drop", 0.0) <= -1.0,
             worst="min"),
        Rule("grad_norm_exploding", "grad_norm", f"grad norm above {c.grad_norm_max}",
             "gradients explode: lower the learning rate, check the reward scale and "
             "observation normalization, keep max_grad_norm", c.grad_norm_patience,
             lambda v, m: v > c.grad_norm_max, threshold=c.grad_norm_max),
        Rule("return_falling", "episode_return_mean",
             f"mean episode return more than {c.return_drop} start spreads below its start",
             "the policy gets worse as it trains: check the sign of the advantages and of the loss, the reward's "
             "sign, and lower the learning rate", c.return_drop_patience,
             lambda v, m: m.get("_return_drop", -math.inf) > c.return_drop and m.get("_return_z", 0.0) > RETURN_Z,
             worst="min"),
        Rule("obs_scale_high", "obs_rms", f"network inputs with a root mean square above {c.obs_rms_max}",
             "observations are large and not normalized: set norm_obs, or scale them in the env", 1,
             lambda v, m: v > c.obs_rms_max, threshold=c.obs_rms_max),
        NON_FINITE,
    ]  # fmt: skip
    return [rule for rule in rules if method is None or rule.applies_to(method)]


NON_FINITE = Rule(
    "non_finite", "loss", "a loss or gradient is NaN or inf",
    "training cannot continue: lower the learning rate, normalize observations "
    "and rewards, check the env for NaN", 1, lambda v, m: not math.isfinite(v), worst="last",
)  # fmt: skip


@dataclass
class Episode:
    """One stretch of updates during which a rule's condition held."""

    rule: str
    first_update: int
    last_update: int
    worst: float  # the value furthest from healthy seen in the stretch (the last, for NaN)
    warned: bool = False


def observe_rules(
    rules: list[Rule], streaks: dict[str, int], episodes: list[Episode], update: int,
    metrics: Mapping[str, float], in_tail: bool = False, unit: str = "update",
) -> list[str]:  # fmt: skip
    """Advance ``streaks`` and ``episodes`` (in place) by one update's ``metrics``; return the
    warnings that fire now. ``metrics`` may carry derived values (``_progress``...) that the
    rules' checks read. A metric the update did not log is no violation (not even of
    ``non_finite``); one logged as NaN is undefined for every rule but ``non_finite``."""
    warnings: list[str] = []
    for rule in rules:
        value = metrics.get(rule.metric)
        value = math.nan if value is None else float(value)
        defined = math.isfinite(value) or (rule.name == "non_finite" and rule.metric in metrics)
        holds = defined and not (rule.skip_in_tail and in_tail) and rule.check(value, metrics)
        if not holds:
            streaks[rule.name] = 0
            continue
        streak = streaks.get(rule.name, 0) + 1
        streaks[rule.name] = streak
        if streak == 1:
            episodes.append(Episode(rule.name, update, update, value))
        episode = next(e for e in reversed(episodes) if e.rule == rule.name)
        episode.last_update = update
        episode.worst = _worse(rule, episode.worst, value)
        if streak >= rule.patience and not episode.warned:
            episode.warned = True
            warnings.append(
                f"{unit} {update}: {rule.describe} ({rule.metric} = {value:.4g}"
                f"{f' for {streak} {unit}s' if streak > 1 else ''}): {rule.advice}"
            )
    return warnings


def summarize(rules: list[Rule], episodes: list[Episode]) -> dict[str, Any]:
    """``diagnostics.json``: per rule its condition, advice and the episodes that warned."""
    warned = [e for e in episodes if e.warned]
    by_rule: dict[str, Any] = {}
    for rule in rules:
        mine = [e for e in warned if e.rule == rule.name]
        by_rule[rule.name] = {
            "metric": rule.metric,
            "condition": rule.describe,
            "threshold": rule.threshold,
            "advice": rule.advice,
            "patience": rule.patience,
            "warnings": len(mine),
            "updates_affected": sum(e.last_update - e.first_update + 1 for e in mine),
            "episodes": [asdict(e) for e in mine],
        }
    return {"total_warnings": len(warned), "rules": by_rule}


@dataclass
class Diagnostics:
    """Stateful monitor: feed it each update's metrics, get the warnings to print."""

    config: DiagnosticsConfig
    method: Method | None = None  # None: every rule
    streaks: dict[str, int] = field(default_factory=dict)
    episodes: list[Episode] = field(default_factory=list)
    initial_entropy: float | None = None
    return_start: ReturnStart = field(default_factory=lambda: ReturnStart())

    def __post_init__(self) -> None:
        self.rules = rules_for(self.config, self.method)

    def observe(self, update: int, metrics: dict[str, float], progress: float, in_tail: bool) -> list[str]:
        """Update the streaks with one update's metrics; return the warnings that fire now."""
        if not self.config.health_checks or metrics.get("minibatch_steps", 1.0) == 0:
            return []  # off, or no update happened (a rollout of autoreset steps only)
        entropy = metrics.get("entropy", math.nan)
        if self.initial_entropy is None and math.isfinite(entropy):
            self.initial_entropy = entropy
        extra = dict(metrics)
        extra["_progress"] = progress
        if self.initial_entropy is not None and self.initial_entropy > 0:  # Gaussians can go negative
            extra["_entropy_ratio"] = entropy / self.initial_entropy
        episodes = (metrics.get("episodes", 0.0), metrics.get("episode_return_mean", math.nan),
                    metrics.get("episode_return_std", math.nan))  # fmt: skip
        if self.return_start.ready and episodes[0] > 0:
            extra["_return_drop"], extra["_return_z"] = return_drop(self.return_start, *episodes)
        elif episodes[0] > 0:
            self.return_start.add(*episodes)
        return observe_rules(self.rules, self.streaks, self.episodes, update, extra, in_tail)

    def summary(self) -> dict[str, Any]:
        """Per rule: the episodes that warned and their update ranges."""
        return summarize(self.rules, self.episodes)

    def state_dict(self) -> dict[str, Any]:
        """Plain data for checkpoints."""
        return {
            "streaks": dict(self.streaks),
            "episodes": [asdict(e) for e in self.episodes],
            "initial_entropy": self.initial_entropy,
            "return_start": [self.return_start.count, self.return_start.mean, self.return_start.m2],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The state of ``state_dict``, each part checked (CheckpointError naming what is wrong)."""
        names = {rule.name for rule in self.rules}
        streaks, episodes, entropy = state["streaks"], state["episodes"], state["initial_entropy"]
        if not isinstance(streaks, dict) or not set(streaks) <= names or not all(_count(v) for v in streaks.values()):
            raise CheckpointError(f"checkpoint: diagnostics.streaks is {str(streaks)[:60]}; expected a count >= 0 "
                                  f"per rule ({', '.join(sorted(names))})")  # fmt: skip
        if not isinstance(episodes, list):
            raise CheckpointError("checkpoint: diagnostics.episodes is not a list")
        self.streaks = dict(streaks)
        self.episodes = [_episode(e, names) for e in episodes]
        if entropy is not None and not (isinstance(entropy, float) and math.isfinite(entropy)):
            raise CheckpointError(f"checkpoint: diagnostics.initial_entropy is {entropy!r}; expected none or a number")
        self.initial_entropy = entropy
        start = state.get("return_start", [0.0, 0.0, 0.0])  # checkpoints before the return rule have none
        if not (isinstance(start, list) and len(start) == 3 and all(isinstance(v, float) for v in start)
                and all(math.isfinite(v) for v in start) and start[0] >= 0 and start[2] >= 0):  # fmt: skip
            raise CheckpointError(f"checkpoint: diagnostics.return_start is {str(start)[:60]}; expected [count >= 0, "
                                  "mean, sum of squares >= 0]")  # fmt: skip
        self.return_start = ReturnStart(*start)


START_EPISODES = 10  # episodes pooled into the return rule's start
RETURN_Z = 3.0  # standard errors a drop below the start must also be (no warning from noise)


@dataclass
class ReturnStart:
    """The return rule's reference: the returns of the run's first episodes, pooled update by
    update until there are ``START_EPISODES``: their count, mean and sum of squared deviations."""

    count: float = 0.0
    mean: float = 0.0
    m2: float = 0.0

    @property
    def ready(self) -> bool:
        return self.count >= START_EPISODES

    @property
    def spread(self) -> float:
        """The start's standard deviation, at least 5% of its mean (Acrobot's untrained policy times
        out at -500 every episode: no spread) and 1e-6."""
        return max(math.sqrt(self.m2 / self.count) if self.count else 0.0, 0.05 * abs(self.mean), 1e-6)

    def add(self, n: float, mean: float, std: float) -> None:
        """Pool ``n`` episodes of mean ``mean`` and standard deviation ``std`` (Chan et al.'s merge)."""
        total = self.count + n
        delta = mean - self.mean
        self.m2 += n * (std**2 if math.isfinite(std) else 0.0) + delta**2 * self.count * n / total
        self.mean += delta * n / total
        self.count = total


def return_drop(start: ReturnStart, n: float, mean: float, std: float) -> tuple[float, float]:
    """How far an update's mean return (of ``n`` episodes) lies below the start: in the start's
    spreads, and in standard errors of the difference (Welch's; one episode: the start's spread)."""
    spread = start.spread
    variance = std**2 if n >= 2 and math.isfinite(std) else spread**2
    error = math.sqrt(spread**2 / start.count + variance / n)
    return (start.mean - mean) / spread, (start.mean - mean) / max(error, 1e-12)


def replay(config: RunConfig, lines: Iterable[Mapping[str, float | None]], world_size: int = 1) -> Diagnostics:
    """The health checks of ``config`` run again over a finished run's per-update metrics (the
    lines of its ``metrics.jsonl``, where null is NaN): with the thresholds the run had, the same
    episodes and warnings it had; with others, what those would have said. The derived values
    come from the lines: progress from ``update`` (of the run's updates: ``world_size`` processes
    take ``batch_size`` steps each per update), the annealing tail from ``learning_rate`` and
    ``clip_coef`` against the config's start values."""
    diagnostics = Diagnostics(config.diagnostics, METHODS[config.algo.method])
    lr0, clip0 = config.algo.learning_rate, config.algo.clip_coef
    num_updates = max(1, config.total_steps // (config.batch_size * world_size))
    for line in lines:
        metrics = {key: math.nan if value is None else float(value) for key, value in line.items()}
        update = int(metrics["update"])
        in_tail = in_annealing_tail(metrics["learning_rate"], lr0, metrics["clip_coef"], clip0)
        diagnostics.observe(update, metrics, (update - 1) / num_updates, in_tail)
    return diagnostics


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _episode(saved: Any, names: set[str]) -> Episode:
    """An episode of a checkpoint, checked field by field."""
    from ppokit.config_types import check_types

    expected = {f.name for f in dataclasses.fields(Episode)}
    if not isinstance(saved, dict) or set(saved) != expected:
        raise CheckpointError(f"checkpoint: a diagnostics episode is {str(saved)[:60]}; expected the keys "
                              f"{', '.join(sorted(expected))}")  # fmt: skip
    episode = Episode(**saved)
    try:
        check_types(episode, "diagnostics.episodes.")
    except ConfigError as e:
        raise CheckpointError(f"checkpoint: {e}") from None
    if episode.rule not in names or not (0 <= episode.first_update <= episode.last_update):
        raise CheckpointError(f"checkpoint: a diagnostics episode of {episode.rule!r} updates {episode.first_update}"
                              f"..{episode.last_update}; expected a rule of this method and first <= last")  # fmt: skip
    return episode


def _targets_vary(metrics: Mapping[str, float]) -> bool:
    """Explained variance means something only when the value targets vary: once a task is
    solved (CartPole at 500 every episode) they are nearly constant and it is noise."""
    std, mean = metrics.get("value_target_std", math.inf), metrics.get("value_target_mean", 0.0)
    return std > TARGET_SPREAD * abs(mean)


def _worse(rule: Rule, a: float, b: float) -> float:
    if rule.worst == "last":
        return b
    return min(a, b) if rule.worst == "min" else max(a, b)


def in_annealing_tail(lr: float, lr0: float, clip: float, clip0: float) -> bool:
    return lr < TAIL_FRACTION * lr0 or clip < TAIL_FRACTION * clip0
