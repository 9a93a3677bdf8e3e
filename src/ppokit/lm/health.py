"""Health checks of a language-model RL run, each with the advice a practitioner would give.

The rules watch the per-step metrics of ``ppokit.lm`` (``docs/metrics.md``, "Language
models") with the machinery of :mod:`ppokit.diagnostics`: a condition that holds for
``patience`` consecutive steps warns once per episode, and the run's summary is the same
``diagnostics.json`` as a classic run's (``first_update``/``last_update`` count RL steps).

What they catch: the KL to the reference running away (past a per-completion budget, or
rising at every step once training is under way), its per-completion k1 estimate going
negative (sampling and scoring disagree), completions collapsing to the EOS alone or stuck at the
length limit, the entropy collapsing early, and, for the group methods only (not ppo: its
critic learns from every completion), groups whose rewards are all equal.

This module imports neither torch nor transformers: the CLI and the reports read it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ppokit.diagnostics import Episode, Rule, observe_rules, summarize


@dataclass(frozen=True)
class LMHealthConfig:
    health_checks: bool = True
    kl_ref_seq_max: float = 20.0  # nats per completion; over-optimization shows from ~10-100 (Gao et al. 2022)
    kl_ref_patience: int = 5
    kl_ref_rising_after: float = 0.25  # the KL climbs from 0 at first by design
    kl_ref_rising_patience: int = 10  # consecutive rises: 1 / 11! by chance on a noisy plateau
    kl_ref_negative: float = -0.1  # nats per completion (k1, unbiased: >= 0 on average)
    kl_ref_negative_patience: int = 3
    length_min: float = 1.5  # tokens, the EOS included: the EOS alone is 1
    length_patience: int = 5
    truncated_max: float = 0.9
    truncated_patience: int = 5
    entropy_collapse_ratio: float = 0.1  # of the first step's entropy
    entropy_collapse_before: float = 0.25  # of training
    entropy_collapse_patience: int = 2
    zero_std_groups_max: float = 0.9
    zero_std_groups_patience: int = 5


@dataclass(frozen=True)
class LMFacts:
    """What a rule may need of an LM method (``ppokit.lm.trainer.LM_METHODS``)."""

    critic: bool  # ppo: a value head; the group methods have none

    @property
    def groups(self) -> bool:
        """Advantages from the spread of a prompt's group of rewards (grpo, dr-grpo, rloo)."""
        return not self.critic


def lm_rules(config: LMHealthConfig | None = None, critic: bool | None = None) -> list[Rule]:
    """The LM rules with the thresholds of ``config`` for a method with or without a critic
    (None: every rule)."""
    c = config or LMHealthConfig()
    rules = [*_kl_rules(c), *_length_rules(c), _entropy_rule(c), _zero_std_rule(c), LM_NON_FINITE]
    if critic is None:
        return rules
    facts = LMFacts(critic)
    return [rule for rule in rules if rule.applies_to(facts)]


def _kl_rules(c: LMHealthConfig) -> list[Rule]:
    return [
        Rule("kl_ref_high", "kl_ref_seq", f"KL to the reference above {c.kl_ref_seq_max:g} nats per completion",
             "the policy has moved far from the reference, where rewards are often over-optimized "
             "(read some samples for reward hacking): raise kl_coef (ppo: set kl_target), lower the "
             "learning rate", c.kl_ref_patience, lambda v, m: v > c.kl_ref_seq_max, threshold=c.kl_ref_seq_max),
        Rule("kl_ref_rising", "kl_ref",
             f"KL to the reference per token rising at every step after the first {c.kl_ref_rising_after:.0%} "
             "of training",
             "the KL to the reference keeps growing instead of levelling off: if the reward does not rise "
             "with it, raise kl_coef (ppo: set kl_target) or lower the learning rate; with kl_coef 0 nothing "
             "holds the policy near the reference", c.kl_ref_rising_patience,
             lambda v, m: m.get("_progress", 0.0) >= c.kl_ref_rising_after
             and v > m.get("_kl_ref_previous", math.inf)),
        Rule("kl_ref_negative", "kl_ref_seq", f"KL to the reference below {c.kl_ref_negative:g} nats per completion",
             "a KL cannot be negative on average, so sampling and scoring disagree: sample and compute "
             "log-probs at the same temperature, without top-k/top-p, with the same padding and attention "
             "mask, and policy and reference in the same dtype", c.kl_ref_negative_patience,
             lambda v, m: v < c.kl_ref_negative, threshold=c.kl_ref_negative, worst="min"),
    ]  # fmt: skip


def _length_rules(c: LMHealthConfig) -> list[Rule]:
    return [
        Rule("length_collapse", "completion_length_mean",
             f"completions shorter than {c.length_min:g} tokens on average (the EOS alone is 1)",
             "the policy learned to stop at once: an empty answer likely scores at least as well as a "
             "wrong attempt (give partial credit or penalize empty answers), or a length penalty dominates; "
             "lower the learning rate, raise kl_coef to stay near the reference's lengths",
             c.length_patience, lambda v, m: v < c.length_min, threshold=c.length_min, worst="min"),
        Rule("length_at_limit", "truncated_fraction",
             f"at least {c.truncated_max:.0%} of completions cut by max_new_tokens (no EOS)",
             "completions run to the length limit, so the score judges cut-off text: set "
             "missing_eos_penalty, train the reference to end its answers (more sft_steps), raise "
             "max_new_tokens if answers need the room; ppo: keep truncation = terminal",
             c.truncated_patience, lambda v, m: v >= c.truncated_max, threshold=c.truncated_max),
    ]  # fmt: skip


def _entropy_rule(c: LMHealthConfig) -> Rule:
    return Rule(
        "entropy_collapse", "entropy",
        f"entropy per token below {c.entropy_collapse_ratio:g} of its first step's in the first "
        f"{c.entropy_collapse_before:.0%} of training",
        "the policy turned (near) deterministic early: it stops exploring and its groups stop differing; "
        "raise the temperature, lower the learning rate, raise kl_coef, or set clip_high above clip_low "
        "(clip-higher, DAPO: lets unlikely tokens gain probability)",
        c.entropy_collapse_patience,
        lambda v, m: m.get("_entropy_ratio", 1.0) < c.entropy_collapse_ratio
        and m.get("_progress", 1.0) < c.entropy_collapse_before,
        worst="min",  # no threshold: it is a ratio, not an entropy
    )  # fmt: skip


def _zero_std_rule(c: LMHealthConfig) -> Rule:
    return Rule(
        "zero_std_groups", "zero_std_groups", f"at least {c.zero_std_groups_max:.0%} of groups with all-equal rewards",
        "such groups have zero advantages, so most of the step carries no gradient: with success near 1 "
        "the prompts are solved (harder prompts), near 0 too hard (easier prompts, more SFT, partial-credit "
        "rewards); a larger group_size or a higher temperature spreads the rewards",
        c.zero_std_groups_patience, lambda v, m: v >= c.zero_std_groups_max, needs="groups",
        threshold=c.zero_std_groups_max,
    )  # fmt: skip


LM_NON_FINITE = Rule(
    "non_finite", "loss", "a loss or gradient is NaN or inf",
    "training cannot continue: lower the learning rate, check the reward function's scores and the "
    "model's dtype (float16 overflows: use bfloat16 or float32)", 1, lambda v, m: not math.isfinite(v), worst="last",
)  # fmt: skip


@dataclass
class LMHealth:
    """Stateful monitor of an LM run: ``observe`` each RL step's metrics (steps from 1), print
    what it returns; ``write`` the summary to the run folder's ``diagnostics.json``."""

    total_steps: int
    critic: bool
    config: LMHealthConfig = field(default_factory=LMHealthConfig)
    streaks: dict[str, int] = field(default_factory=dict)
    episodes: list[Episode] = field(default_factory=list)
    initial_entropy: float | None = None
    previous_kl_ref: float = math.nan

    def __post_init__(self) -> None:
        self.rules = lm_rules(self.config, self.critic)

    def observe(self, step: int, metrics: Mapping[str, float]) -> list[str]:
        """Advance the rules by step ``step``'s metrics (1-based); return the new warnings."""
        if not self.config.health_checks:
            return []
        entropy = float(metrics.get("entropy", math.nan))
        if self.initial_entropy is None and math.isfinite(entropy):
            self.initial_entropy = entropy
        extra = {**metrics, "_progress": step / max(self.total_steps, 1), "_kl_ref_previous": self.previous_kl_ref}
        if self.initial_entropy is not None and self.initial_entropy > 0:
            extra["_entropy_ratio"] = entropy / self.initial_entropy
        self.previous_kl_ref = float(metrics.get("kl_ref", math.nan))
        return observe_rules(self.rules, self.streaks, self.episodes, step, extra, unit="step")

    def summary(self) -> dict[str, Any]:
        """What ``diagnostics.json`` holds: per rule its condition, advice and warned episodes."""
        return summarize(self.rules, self.episodes)

    def write(self, path: Path | str) -> Path:
        """Write the summary as JSON to ``path`` (a run folder's ``diagnostics.json``)."""
        from ppokit.io.checkpoint import atomic_write_text  # torch: only when writing

        atomic_write_text(Path(path), json.dumps(self.summary(), indent=2))
        return Path(path)

    def state_dict(self) -> dict[str, Any]:
        """Plain data for checkpoints."""
        return {"streaks": dict(self.streaks), "episodes": [asdict(e) for e in self.episodes],
                "initial_entropy": self.initial_entropy, "previous_kl_ref": self.previous_kl_ref}  # fmt: skip

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.streaks = dict(state["streaks"])
        self.episodes = [Episode(**e) for e in state["episodes"]]
        self.initial_entropy = state["initial_entropy"]
        self.previous_kl_ref = float(state["previous_kl_ref"])
