"""Built-in tasks with known optima, small enough to train on a CPU in seconds.

A task makes its prompts, knows the optimal completion of each (the SFT target) and scores
completions. Rewards are plain callables ``reward(prompts, completions) -> list[float]``,
the interface a user's reward function has too.
"""

from __future__ import annotations

import random
from collections.abc import Callable
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
    answer: Callable[[str], str] | None  # the optimal completion of a prompt (without EOS), if known
    reward: RewardFn

    def success(self, prompts: list[str], completions: list[str]) -> list[bool]:
        """Whether each completion is the optimal one (none is known: an empty list)."""
        answer = self.answer
        if answer is None:
            return []
        return [c == answer(p) for p, c in zip(prompts, completions, strict=True)]


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


TASKS: dict[str, Task] = {
    "sort": Task(
        "Sort four digits: '3142=' -> '1234' then EOS. Optimum: reward 1 on every prompt.",
        DIGITS + "=", 6, _sort_prompt, _sort_answer, sort_reward,
    ),
}  # fmt: skip


def file_task(rows: list[dict[str, Any]], reward_fn: UserReward, max_new_tokens: int) -> Task:
    """Prompts drawn from a file's rows, scored by a user's reward function, which gets the
    rows' other columns aligned with the prompts. No optimal answer is known (no SFT)."""
    by_prompt = {row["prompt"]: row for row in rows}
    keys = sorted({k for row in rows for k in row} - {"prompt"})
    texts = list(by_prompt)

    def reward(prompts: list[str], completions: list[str]) -> list[float]:
        columns = {k: [by_prompt[p].get(k) for p in prompts] for k in keys}
        return score(reward_fn, prompts, completions, columns)

    alphabet = "".join(sorted({c for text in texts for c in text} | set(DIGITS)))
    return Task("prompts from a file, scored by a reward function", alphabet, max_new_tokens,
                lambda rng: rng.choice(texts), None, reward)  # fmt: skip


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ConfigError("lm.task", f"unknown task {name!r}; allowed: {', '.join(TASKS)}")
    return TASKS[name]
