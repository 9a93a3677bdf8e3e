"""Rewards and prompts from outside: a reward function named on the command line, a JSONL
file of prompts, each checked at the boundary with one-line errors.

A reward function is ``reward(prompts, completions, **columns) -> list[float]``: the prompts
and completions as strings, and every other column of the prompts file as a list aligned
with them (e.g. an expected answer). It is given as ``module:function`` (importable) or
``path/to/file.py:function``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ppokit.errors import ConfigError, PPOKitError

UserReward = Callable[..., Any]


class RewardError(PPOKitError):
    """A reward function failed or returned scores that cannot train a policy."""


def load_reward(spec: str) -> UserReward:
    """The function ``spec`` names: ``module:function`` or ``file.py:function``."""
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name:
        raise ConfigError("lm.reward", f"{spec!r}; allowed: module:function or path/to/file.py:function")
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise ConfigError("lm.reward", f"{path} does not exist")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except ConfigError:
        raise
    except Exception as e:  # the user's module may fail in any way while importing
        raise ConfigError("lm.reward", f"cannot import {target!r} ({type(e).__name__}: {e})") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ConfigError("lm.reward", f"{target!r} has no function {name!r}")
    function: UserReward = fn
    return function


def score(fn: UserReward, prompts: list[str], completions: list[str], columns: dict[str, list[Any]]) -> list[float]:
    """Call the reward and check what it returned: one finite number per completion."""
    try:
        scores = fn(prompts, completions, **columns)
    except Exception as e:  # the user's function may fail in any way
        raise RewardError(f"lm.reward: the reward function raised {type(e).__name__}: {e}") from None
    try:
        values = [float(s) for s in scores]
    except (TypeError, ValueError):
        raise RewardError(f"lm.reward: returned {type(scores).__name__}; allowed: a list of numbers") from None
    if len(values) != len(completions):
        raise RewardError(f"lm.reward: returned {len(values)} scores for {len(completions)} completions")
    bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
    if bad is not None:
        raise RewardError(f"lm.reward: score {values[bad]} for completion {bad}; allowed: finite numbers")
    return values


def load_prompts(path: str) -> list[dict[str, Any]]:
    """The rows of a JSONL prompts file; each must hold a string ``prompt``."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError("lm.prompts", f"{file} does not exist")
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError("lm.prompts", f"{file}:{number} is not JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or not row["prompt"]:
            raise ConfigError("lm.prompts", f'{file}:{number} has no \'prompt\' string; allowed: {{"prompt": "..."}}')
        rows.append(row)
    if not rows:
        raise ConfigError("lm.prompts", f"{file} holds no prompts")
    return rows
