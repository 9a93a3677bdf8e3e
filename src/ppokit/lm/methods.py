"""The language-model methods, one table entry each: how a step's rewards become advantages,
how per-token terms are reduced, and whether a value head learns beside the policy.

Plain data over ``ppokit.core`` (no transformers import): the CLI, the health rules and the
trainer read the same facts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from torch import Tensor

from ppokit.core.advantages import group_relative_advantages, rloo_advantages
from ppokit.core.reduce import Aggregation


@dataclass(frozen=True)
class LMMethod:
    help: str
    advantages: Callable[[Tensor], Tensor] | None  # rewards [groups, G] -> advantages; None: GAE with a critic
    aggregation: Aggregation  # how per-token terms are reduced, unless the config says otherwise
    critic: bool = False  # a value head on the policy (ppo.py), the KL in the per-token reward


LM_METHODS: dict[str, LMMethod] = {
    "grpo": LMMethod("GRPO (Shao et al. 2024): group z-scores, per-sequence mean of token means.",
                     partial(group_relative_advantages, scale="group"), "seq-mean-token-mean"),
    "dr-grpo": LMMethod("Dr. GRPO (Liu et al. 2025): no std division, a constant normalizer (no length bias).",
                        partial(group_relative_advantages, scale="none"), "constant"),
    "rloo": LMMethod("RLOO (Ahmadian et al. 2024): leave-one-out group baselines, token-mean.",
                     rloo_advantages, "token-mean"),
    "ppo": LMMethod("PPO (Ziegler et al. 2019): value head, k1 KL in the per-token reward, GAE, token-mean.",
                    None, "token-mean", critic=True),
}  # fmt: skip
