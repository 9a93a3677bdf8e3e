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
    except RewardError:  # already one line naming what failed (``weighted`` names which reward)
        raise
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


def weighted(rewards: list[UserReward], weights: list[float]) -> UserReward:
    """One reward function: the weighted sum of ``rewards``, each checked (``score``) on its own
    so that a failure names which one."""

    def total(prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        sums = [0.0] * len(completions)
        for i, (fn, w) in enumerate(zip(rewards, weights, strict=True)):
            try:
                values = score(fn, prompts, completions, columns)
            except RewardError as e:
                raise RewardError(f"{e} (reward {i + 1} of {len(rewards)})") from None
            sums = [a + w * b for a, b in zip(sums, values, strict=True)]
        return sums

    return total


def load_prompts(path: str, column: str = "prompt") -> list[dict[str, Any]]:
    """The rows of the prompts: a JSONL file, a folder of a ``datasets`` dataset
    (``save_to_disk``; its ``train`` split if it has splits), or a .parquet or .csv file. Each
    row's ``column`` must be a non-empty string; it becomes the row's ``prompt``, the other
    columns stay for the rewards."""
    file = Path(path)
    if file.is_dir() or file.suffix in (".parquet", ".csv"):
        return _dataset_rows(file, column)
    if not file.is_file():
        raise ConfigError("lm.prompts", f"{file} does not exist")
    if column != "prompt":
        raise ConfigError("lm.prompt_column", f"{column!r}: a JSONL prompts file holds 'prompt'; allowed: prompt")
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


def _dataset_rows(path: Path, column: str) -> list[dict[str, Any]]:
    import datasets

    try:
        if path.is_dir():
            data = datasets.load_from_disk(str(path))
        else:
            data = datasets.load_dataset(path.suffix.lstrip("."), data_files=str(path), split="train")
    except Exception as e:  # a folder or file datasets cannot read, in any way
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError("lm.prompts", f"cannot read {path} as a dataset ({type(e).__name__}: {first})") from None
    if isinstance(data, datasets.DatasetDict):
        if "train" not in data:
            raise ConfigError("lm.prompts", f"{path} has splits {', '.join(data)}; allowed: one with a train split")
        data = data["train"]
    if column not in data.column_names:
        raise ConfigError("lm.prompt_column", f"{column!r} is not a column of {path}; allowed: "
                                              f"{', '.join(data.column_names)}")  # fmt: skip
    rows = []
    for number, row in enumerate(data.to_list(), start=1):
        prompt = row.pop(column)
        if not isinstance(prompt, str) or not prompt:
            raise ConfigError("lm.prompts", f"{path} row {number}: {column!r} is not a non-empty string")
        rows.append({**row, "prompt": prompt})
    if not rows:
        raise ConfigError("lm.prompts", f"{path} holds no prompts")
    return rows
