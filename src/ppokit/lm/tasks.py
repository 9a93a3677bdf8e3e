"""Built-in tasks with known optima, small enough to train on a CPU in seconds.

A task makes its prompts, knows one optimal completion of each (the SFT target), says which
completions are optimal (there may be many) and scores completions. Rewards are plain
callables ``reward(prompts, completions) -> list[float]``, the interface a user's reward
function has too. A completion reaches the reward as its text up to its first EOS (the EOS
left out, ``generate.decode``): a reward sees where a completion stopped by its length.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ppokit.errors import ConfigError
from ppokit.lm.rewards import UserReward, score

RewardFn = Callable[[list[str], list[str]], list[float]]
DIGITS = "0123456789"


@dataclass(frozen=True)
class Task:
    help: str
    alphabet: str  # every character a prompt or a completion may hold
    max_new_tokens: int  # room for the optimal completion and its EOS, and a little more
    prompt: Callable[[random.Random], str]
    answer: Callable[[str], str] | None  # one optimal completion of a prompt (without EOS), the SFT target, if known
    reward: RewardFn
    solves: Callable[[str, str], bool] | None = None  # (prompt, completion) is optimal; None: it equals the answer
    prompts: tuple[str, ...] | None = None  # every prompt it can draw, when a file lists them (context checks)

    def success(self, prompts: list[str], completions: list[str]) -> list[bool]:
        """Whether each completion is an optimal one (none is known: an empty list)."""
        pairs = zip(prompts, completions, strict=True)
        if self.solves is not None:
            return [self.solves(p, c) for p, c in pairs]
        answer = self.answer
        if answer is None:
            return []
        return [c == answer(p) for p, c in pairs]


# sort: one optimal answer per prompt.


def _sort_prompt(rng: random.Random, n: int = 4) -> str:
    return "".join(rng.choice(DIGITS) for _ in range(n)) + "="


def _sort_answer(prompt: str) -> str:
    return "".join(sorted(prompt.rstrip("=")))


def sort_reward(prompts: list[str], completions: list[str]) -> list[float]:
    """1 for the sorted digits (then EOS: the completion is cut at its EOS), else half the
    fraction of positions that hold the right digit (partial credit, so that groups differ)."""
    scores = []
    for p, c in zip(prompts, completions, strict=True):
        target = _sort_answer(p)
        if c == target:
            scores.append(1.0)
        else:
            scores.append(0.5 * sum(a == b for a, b in zip(c, target, strict=False)) / len(target))
    return scores


# count: emit exactly n digits, then EOS. Many optimal answers; the task is where to stop.

COUNT_MAX = 5  # prompts ask for 1 to COUNT_MAX digits
COUNT_MAX_NEW_TOKENS = COUNT_MAX + 3  # a completion cut by the limit is longer than any n


def _count_prompt(rng: random.Random) -> str:
    return f"{rng.randint(1, COUNT_MAX)}:"


def _count_n(prompt: str) -> int:
    return int(prompt.rstrip(":"))


def _count_answer(prompt: str) -> str:
    """The SFT target: the prompt's digit n times ('3:' -> '333'). Every token then depends
    on the prompt (the model must read it from the first token on, not learn one average
    length for all prompts), and where to stop is a count of positions, not a copy of the
    last digit (as a target '123' would allow)."""
    return prompt.rstrip(":") * _count_n(prompt)


def count_solves(prompt: str, completion: str) -> bool:
    """Exactly n digits (then the EOS: the text ends where the completion's EOS was)."""
    return len(completion) == _count_n(prompt) and all(ch in DIGITS for ch in completion)


def count_reward(prompts: list[str], completions: list[str]) -> list[float]:
    """1 for exactly n digits then EOS, else half the fraction of digits in the completion
    over 1 + its distance from n characters (partial credit for length and for digits, so
    that groups differ; an empty completion scores 0).

    A completion the length limit cut (no EOS) is ``max_new_tokens`` = n_max + 3 characters
    long, more than any n: it scores at most 0.5 / 4 = 0.125, less than stopping at n (1) or
    at n + 1 (0.25). The text alone cannot tell a cut completion from one that stopped at
    the same length, and need not: no optimal completion is that long."""
    scores = []
    for p, c in zip(prompts, completions, strict=True):
        if count_solves(p, c):
            scores.append(1.0)
        else:
            digits = sum(ch in DIGITS for ch in c) / len(c) if c else 0.0
            scores.append(0.5 * digits / (1 + abs(len(c) - _count_n(p))))
    return scores


# bandit: one prompt, a one-token answer with a reward per token; a KL-regularized optimum known exactly.

BANDIT_PROMPT = "?"
BANDIT_REWARDS: Mapping[str, float] = {"a": 1.0, "b": 0.75, "c": 0.5, "d": 0.25}  # any other text: 0


def bandit_reward(prompts: list[str], completions: list[str]) -> list[float]:
    """The answer's reward from ``BANDIT_REWARDS``; 0 for any other completion: the prompt's
    character, and the empty text that an EOS (and a pad or unknown token, which decode to
    nothing) leaves. Every token of the vocabulary is then an answer with a reward."""
    return [BANDIT_REWARDS.get(c, 0.0) for c in completions]


def gibbs_optimum(reference: list[float], rewards: list[float], beta: float) -> list[float]:
    """pi*(y) = pi_ref(y) exp(r(y) / beta) / Z: the maximizer of E_pi[r] - beta KL(pi || pi_ref)
    over distributions on the same outcomes (the reverse KL, the objective of PPO with k1 in
    the reward). Computed from log-weights less their maximum (no overflow at small beta)."""
    logits = [math.log(p) + r / beta if p > 0 else -math.inf for p, r in zip(reference, rewards, strict=True)]
    top = max(logits)
    weights = [math.exp(x - top) for x in logits]
    total = sum(weights)
    return [w / total for w in weights]


def forward_kl_optimum(reference: list[float], rewards: list[float], beta: float) -> list[float]:
    """The maximizer of E_pi[r] - beta KL(pi_ref || pi) (the forward KL, whose gradient the
    k3 term in the loss of the group methods has, ``ppokit.core.kl``): stationarity on the
    simplex gives pi(y) = beta pi_ref(y) / (lam - r(y)), with lam > max r such that it sums
    to 1 (found by bisection: the sum falls as lam grows)."""
    top = max(r for p, r in zip(reference, rewards, strict=True) if p > 0)

    def total(lam: float) -> float:
        return sum(beta * p / (lam - r) for p, r in zip(reference, rewards, strict=True) if p > 0)

    low, high = top, top + beta  # total(top + beta) <= sum(p) = 1 since lam - r >= beta
    for _ in range(200):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if total(mid) > 1.0 else (low, mid)
    lam = high
    return [beta * p / (lam - r) if p > 0 else 0.0 for p, r in zip(reference, rewards, strict=True)]


def total_variation(p: list[float], q: list[float]) -> float:
    """0.5 * sum |p - q|: the largest difference of the probabilities of any event."""
    return 0.5 * sum(abs(a - b) for a, b in zip(p, q, strict=True))


TASKS: dict[str, Task] = {
    "sort": Task(
        "Sort four digits: '3142=' -> '1234' then EOS. Optimum: reward 1 on every prompt.",
        DIGITS + "=", 6, _sort_prompt, _sort_answer, sort_reward,
    ),
    "count": Task(
        f"Emit exactly n digits then EOS: '3:' -> any three digits, e.g. '333' (the SFT target), n from 1 to "
        f"{COUNT_MAX}. Optimum: reward 1 on every prompt; stopping late or never scores less.",
        DIGITS + ":", COUNT_MAX_NEW_TOKENS, _count_prompt, _count_answer, count_reward, count_solves,
    ),
    "bandit": Task(
        f"One prompt '{BANDIT_PROMPT}', a one-token answer rewarded {dict(BANDIT_REWARDS)} (anything else 0). "
        "With --method ppo --sft-steps 0 it converges to pi_ref(y) exp(r(y) / kl_coef) / Z.",
        BANDIT_PROMPT + "".join(BANDIT_REWARDS), 1, lambda rng: BANDIT_PROMPT,
        lambda prompt: max(BANDIT_REWARDS, key=lambda a: BANDIT_REWARDS[a]), bandit_reward,
    ),
}  # fmt: skip


def file_task(rows: list[dict[str, Any]], reward_fn: UserReward, max_new_tokens: int) -> Task:
    """Prompts drawn from a file's rows, scored by a user's reward function, which gets the
    rows' other columns aligned with the prompts. No optimal answer is known (no SFT). A
    prompt is drawn per row (a prompt on two rows is drawn twice as often); two rows with the
    same prompt and different columns are refused: the reward could not tell them apart."""
    by_prompt: dict[str, dict[str, Any]] = {}
    for number, row in enumerate(rows, start=1):
        seen = by_prompt.setdefault(row["prompt"], row)
        if seen != row:
            raise ConfigError("lm.prompts", f"row {number} repeats the prompt {row['prompt']!r} with other columns; "
                                            "allowed: one set of columns per prompt")  # fmt: skip
    keys = sorted({k for row in rows for k in row} - {"prompt"})
    texts = [row["prompt"] for row in rows]

    def reward(prompts: list[str], completions: list[str]) -> list[float]:
        columns = {k: [by_prompt[p].get(k) for p in prompts] for k in keys}
        return score(reward_fn, prompts, completions, columns)

    alphabet = "".join(sorted({c for text in texts for c in text} | set(DIGITS)))
    return Task("prompts from a file, scored by a reward function", alphabet, max_new_tokens,
                lambda rng: rng.choice(texts), None, reward, prompts=tuple(dict.fromkeys(texts)))  # fmt: skip


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ConfigError("lm.task", f"unknown task {name!r}; allowed: {', '.join(TASKS)}")
    return TASKS[name]
