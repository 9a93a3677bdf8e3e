"""The configuration of a language-model run: task, model, method, and their sizes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ppokit.core.reduce import AGGREGATIONS, Aggregation
from ppokit.errors import ConfigError
from ppokit.io.run_dir import METRICS

Architecture = Literal["gpt2", "llama"]  # here, not in models.py: the CLI reads this module without transformers
LMMethodName = Literal["grpo", "dr-grpo", "rloo"]
LM_METHOD_NAMES = ("grpo", "dr-grpo", "rloo")


@dataclass(frozen=True)
class LMConfig:
    task: str = "sort"  # a built-in task (ppokit.lm.tasks); unused with prompts and reward
    prompts: str | None = None  # a JSONL file of {"prompt": ..., other columns}, instead of the task
    reward: str | None = (
        None  # with prompts: module:function or file.py:function, reward(prompts, completions, **columns)
    )
    max_new_tokens: int | None = None  # None: the task's (16 with a prompts file)
    model: str = "tiny"  # tiny (built from a config) or a local folder of a Hugging Face causal LM
    arch: Architecture = "gpt2"  # the tiny model's architecture: gpt2 or llama
    width: int = 64
    layers: int = 2
    method: LMMethodName = "grpo"
    seed: int = 1
    sft_steps: int = 30  # supervised steps on the task's optimal completions before RL (the reference)
    sft_batch: int = 64
    sft_learning_rate: float = 3e-3
    steps: int = 100  # RL steps: sample, score, update
    prompts_per_step: int = 16
    group_size: int = 8  # completions per prompt
    temperature: float = 1.0
    learning_rate: float = 1e-3
    epochs: int = 1  # updates over each step's completions (1: on-policy, the ratio stays 1)
    minibatch_size: int = 128  # completions per optimizer step; must divide prompts_per_step * group_size
    clip_low: float = 0.2
    clip_high: float | None = None  # None: clip_low (symmetric); above it: clip-higher (DAPO)
    kl_coef: float = 0.04  # beta of the KL to the reference (k3, in the loss, as GRPO)
    aggregation: Aggregation | None = None  # None: the method's (ppokit.lm.trainer.LM_METHODS)
    max_grad_norm: float = 1.0
    eval_prompts: int = 128  # prompts of the greedy evaluation before and after RL
    run_dir: str | None = None  # write config.toml, metrics.jsonl, eval.json and model/ here (None: nothing)

    @property
    def batch_size(self) -> int:
        return self.prompts_per_step * self.group_size

    def validate(self) -> LMConfig:
        """ConfigError naming the first invalid field."""
        from ppokit.lm.tasks import get_task

        if (self.prompts is None) != (self.reward is None):
            raise ConfigError(
                "lm.prompts", "a prompts file and a reward function go together; allowed: both or neither"
            )
        if self.prompts is None:
            get_task(self.task)
        elif self.sft_steps:
            raise ConfigError("lm.sft_steps", f"{self.sft_steps}: a prompts file has no answers to imitate; allowed: 0")
        if self.model != "tiny" and not (Path(self.model) / "config.json").is_file():
            raise ConfigError("lm.model", f"{self.model!r} is not a model folder (no config.json); allowed: tiny or "
                                          "a local folder of a Hugging Face causal LM")  # fmt: skip
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ConfigError("lm.max_new_tokens", f"{self.max_new_tokens}; allowed: None or an integer >= 1")
        if self.method not in LM_METHOD_NAMES:
            raise ConfigError("lm.method", f"{self.method!r}; allowed: {', '.join(LM_METHOD_NAMES)}")
        if self.arch not in ("gpt2", "llama"):
            raise ConfigError("lm.arch", f"{self.arch!r}; allowed: gpt2, llama")
        if self.aggregation is not None and self.aggregation not in AGGREGATIONS:
            raise ConfigError("lm.aggregation", f"{self.aggregation!r}; allowed: {', '.join(AGGREGATIONS)}")
        for name in ("width", "layers", "steps", "prompts_per_step", "epochs", "minibatch_size", "eval_prompts",
                     "sft_batch"):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"lm.{name}", f"{value!r}; allowed: an integer >= 1")
        if self.sft_steps < 0:
            raise ConfigError("lm.sft_steps", f"{self.sft_steps}; allowed: an integer >= 0")
        if self.group_size < 2:
            raise ConfigError(
                "lm.group_size", f"{self.group_size}; allowed: >= 2 (a group needs completions to compare)"
            )
        if self.batch_size % self.minibatch_size:
            raise ConfigError("lm.minibatch_size", f"{self.minibatch_size} does not divide the {self.batch_size} "
                                                   "completions of a step; allowed: a divisor of it")  # fmt: skip
        for name in ("temperature", "learning_rate", "sft_learning_rate", "clip_low", "max_grad_norm"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"lm.{name}", f"{value!r}; allowed: a number > 0")
        if self.clip_high is not None and not (math.isfinite(self.clip_high) and self.clip_high > 0):
            raise ConfigError("lm.clip_high", f"{self.clip_high!r}; allowed: None or a number > 0")
        if not (math.isfinite(self.kl_coef) and self.kl_coef >= 0):
            raise ConfigError("lm.kl_coef", f"{self.kl_coef!r}; allowed: a number >= 0")
        if self.run_dir is not None and (Path(self.run_dir) / METRICS).exists():
            raise ConfigError("lm.run_dir", f"{self.run_dir} already holds a run; allowed: a new folder")
        return self
