"""The configuration of a language-model run: task, model, method, and their sizes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ppokit.core.reduce import Aggregation
from ppokit.errors import ConfigError
from ppokit.io.run_dir import METRICS, check_writable

Architecture = Literal["gpt2", "llama"]  # here, not in models.py: the CLI reads this module without transformers
LMMethodName = Literal["grpo", "dr-grpo", "rloo", "ppo"]
Truncation = Literal["terminal", "bootstrap"]
Device = Literal["cpu", "cuda", "auto"]
Precision = Literal["fp32", "bf16"]
Critic = Literal["head", "model"]
GROUP_METHODS = ("grpo", "dr-grpo", "rloo")  # compare completions of a prompt: groups of >= 2


def _f(default: object, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class LMConfig:
    task: str = _f("sort", "A built-in task (ppokit lm tasks); unused with --prompts and --reward.")
    prompts: str | None = _f(None, 'Prompts instead of the task: a JSONL file of {"prompt": ..., other columns}, '
                                   "a folder of datasets' save_to_disk, or a .parquet / .csv file.")  # fmt: skip
    prompt_column: str = _f("prompt", "The prompts' column; the other columns reach the reward functions.")
    reward: str | None = _f(None, "With --prompts: module:function or file.py:function, "
                                  "reward(prompts, completions, **columns) -> list of floats; several: "
                                  "comma-separated.")  # fmt: skip
    reward_model: str | None = _f(None, "A local folder of a one-label sequence classifier: its logit of prompt "
                                        "+ completion is a reward, beside the task's or --reward's.")  # fmt: skip
    reward_weights: str | None = _f(None, "Comma-separated weights of the rewards: the task's (or each --reward), "
                                          "then --reward-model; None: 1 each.")  # fmt: skip
    max_new_tokens: int | None = _f(None, "Completion length limit; None: the task's (16 with a prompts file).")
    model: str = _f("tiny", "tiny (built from a config) or a local folder of a Hugging Face causal LM.")
    lora_rank: int = _f(0, "Rank of LoRA adapters (peft) on every linear layer; RL trains only them, the "
                           "reference is the model with them disabled. 0: train the whole model.")  # fmt: skip
    lora_alpha: int = _f(16, "LoRA's alpha (the adapters' output is scaled by alpha / rank).")
    device: Device = _f("cpu", "cpu, cuda, or auto (cuda when there is one).")
    precision: Precision = _f("fp32", "fp32, or bf16 (autocast: bfloat16 matmuls, float32 weights and log-probs).")
    arch: Architecture = _f("gpt2", "The tiny model's architecture: gpt2 or llama.")
    width: int = _f(64, "The tiny model's hidden width.")
    layers: int = _f(2, "The tiny model's layers.")
    method: LMMethodName = _f("grpo", "grpo, dr-grpo, rloo, or ppo (a value head, the KL in the reward; docs/lm.md).")
    seed: int = _f(1, "Seed of the prompts, the model's initialization and the sampling.")
    sft_steps: int = _f(30, "Supervised steps on the task's optimal completions before RL (the reference).")
    sft_batch: int = _f(64, "Prompts per supervised step.")
    sft_learning_rate: float = _f(3e-3, "AdamW learning rate of the supervised steps.")
    steps: int = _f(100, "RL steps: sample, score, update.")
    prompts_per_step: int = _f(16, "Prompts per RL step.")
    group_size: int = _f(8, "Completions per prompt (a group).")
    temperature: float = _f(1.0, "Sampling temperature; the log-probs of the loss use the same.")
    learning_rate: float = _f(1e-3, "AdamW learning rate of the RL steps.")
    weight_decay: float = _f(0.0, "AdamW weight decay of the SFT and RL steps (it pulls weights toward 0, "
                                  "not toward the reference).")  # fmt: skip
    epochs: int = _f(1, "Updates over each step's completions (1: on-policy, the ratio stays 1).")
    minibatch_size: int = _f(128, "Completions per optimizer step; must divide prompts_per_step * group_size.")
    clip_low: float = _f(0.2, "The ratio may fall to 1 - clip_low.")
    clip_high: float | None = _f(None, "The ratio may rise to 1 + clip_high (clip-higher); None: clip_low.")
    kl_coef: float = _f(
        0.04, "Beta of the KL to the reference: k3 in the loss (group methods), k1 in the reward (ppo)."
    )
    kl_target: float | None = _f(None, "ppo: adapt kl_coef towards this KL per token (Ziegler et al. 2019); "
                                       "None: a fixed kl_coef.")  # fmt: skip
    kl_horizon: int = _f(10_000, "ppo: the adaptive KL controller's horizon, in completions.")
    critic: Critic = _f("head", "ppo: the value head on the policy's trunk (head), or on its own copy of the SFT "
                                "model (model: twice the weights, no value gradient in the policy).")  # fmt: skip
    vf_coef: float = _f(0.5, "ppo: weight of the value loss.")
    value_clip: float = _f(0.2, "ppo: the value loss's clip range around the values at sampling.")
    gamma: float = _f(1.0, "ppo: discount over completion tokens.")
    gae_lambda: float = _f(0.95, "ppo: GAE lambda over completion tokens.")
    truncation: Truncation = _f("terminal", "ppo: a completion cut by max_new_tokens ends its episode (terminal) "
                                            "or bootstraps from the value after it (bootstrap).")  # fmt: skip
    missing_eos_penalty: float = _f(0.0, "Subtracted from the score of a completion cut by max_new_tokens.")
    aggregation: Aggregation | None = _f(None, "token-mean, seq-mean-token-mean or constant; None: the method's.")
    max_grad_norm: float = _f(1.0, "Clip the gradient norm to this.")
    eval_prompts: int = _f(128, "Prompts of the greedy evaluation before and after RL.")
    run_dir: str | None = _f(None, "Write config.toml, metrics.jsonl, TensorBoard events, reference/, checkpoints, "
                                   "eval.json and model/ here; None: nothing.")  # fmt: skip
    save_every: int = _f(25, "With run_dir: a checkpoint every this many RL steps (and at the end, and on Ctrl-C).")

    @property
    def batch_size(self) -> int:
        return self.prompts_per_step * self.group_size

    @property
    def answer_free(self) -> bool:
        """Prompts from outside: no answers to imitate or to call a success."""
        return self.prompts is not None

    @property
    def reward_specs(self) -> list[str]:
        """The --reward functions, in order."""
        return [] if self.reward is None else [s.strip() for s in self.reward.split(",")]

    @property
    def weights(self) -> list[float]:
        """One weight per reward: the task's (or each --reward function's), then the reward model's."""
        n = (len(self.reward_specs) if self.prompts is not None else 1) + (self.reward_model is not None)
        if self.reward_weights is None:
            return [1.0] * n
        try:
            weights = [float(w) for w in self.reward_weights.split(",")]
        except ValueError:
            weights = []
        if len(weights) != n or not all(math.isfinite(w) for w in weights):
            raise ConfigError("lm.reward_weights", f"{self.reward_weights!r}; allowed: {n} comma-separated numbers, "
                                                   "one per reward (the task's or each --reward, then "
                                                   "--reward-model)")  # fmt: skip
        return weights

    def validate(self, new_run: bool = True) -> LMConfig:
        """ConfigError naming the first invalid field; ``new_run``: the run folder must not hold a
        run yet (False when resuming it)."""
        from ppokit.config_types import check_types

        check_types(self, "lm.")  # every field of its declared type (the Literals' values too), however built
        _check_sources(self, new_run)
        _check_sizes(self)
        _check_coefficients(self)
        return self


def _check_sources(c: LMConfig, new_run: bool) -> None:
    """Where prompts, rewards, models and the run folder come from, and the device."""
    from ppokit.lm.tasks import get_task

    if c.prompts is not None and c.reward is None and c.reward_model is None:
        raise ConfigError("lm.prompts", "prompts need a reward: --reward or --reward-model")
    if c.prompts is None and c.reward is not None:
        raise ConfigError("lm.reward", "a reward function scores --prompts; allowed: with --prompts, or none "
                                       "(the task's own)")  # fmt: skip
    if c.reward_model is not None and not (Path(c.reward_model) / "config.json").is_file():
        raise ConfigError("lm.reward_model", f"{c.reward_model!r} is not a model folder (no config.json); "
                                             "allowed: a local folder of a sequence classifier")  # fmt: skip
    c.weights  # noqa: B018  # parses reward_weights: its error names the field
    if c.prompts is None:
        get_task(c.task)
    elif c.sft_steps:
        raise ConfigError("lm.sft_steps", f"{c.sft_steps}: a prompts file has no answers to imitate; allowed: 0")
    if new_run and c.model != "tiny" and not (Path(c.model) / "config.json").is_file():
        raise ConfigError("lm.model", f"{c.model!r} is not a model folder (no config.json); allowed: tiny or "
                                      "a local folder of a Hugging Face causal LM")  # fmt: skip
    if c.device == "cuda" and not _cuda_available():
        raise ConfigError("lm.device", "cuda: no CUDA device here; allowed: cpu, auto")
    if c.run_dir is not None:
        check_writable(Path(c.run_dir), "lm.run_dir")
    if new_run and c.run_dir is not None and (Path(c.run_dir) / METRICS).exists():
        raise ConfigError("lm.run_dir", f"{c.run_dir} already holds a run; allowed: a new folder, or "
                                        "ppokit lm train --resume it")  # fmt: skip


def _check_sizes(c: LMConfig) -> None:
    """Counts and shapes: the model's, the step's, the groups'."""
    for name in ("width", "layers", "steps", "prompts_per_step", "epochs", "minibatch_size", "eval_prompts",
                 "sft_batch", "save_every", "kl_horizon"):  # fmt: skip
        if getattr(c, name) < 1:
            raise ConfigError(f"lm.{name}", f"{getattr(c, name)!r}; allowed: an integer >= 1")
    if c.width % (4 if c.arch == "llama" else 2):  # 2 heads; Llama's rotary halves need an even head size
        raise ConfigError("lm.width", f"{c.width}; allowed: a multiple of {4 if c.arch == 'llama' else 2} "
                                      f"for {c.arch}'s 2 heads")  # fmt: skip
    if c.sft_steps < 0:
        raise ConfigError("lm.sft_steps", f"{c.sft_steps}; allowed: an integer >= 0")
    if c.lora_rank < 0 or c.lora_alpha <= 0:
        raise ConfigError("lm.lora_rank", f"rank {c.lora_rank}, alpha {c.lora_alpha}; allowed: rank >= 0 "
                                          "(0: no adapters), alpha > 0")  # fmt: skip
    if c.max_new_tokens is not None and c.max_new_tokens < 1:
        raise ConfigError("lm.max_new_tokens", f"{c.max_new_tokens}; allowed: None or an integer >= 1")
    if c.group_size < (2 if c.method in GROUP_METHODS else 1):
        raise ConfigError("lm.group_size", f"{c.group_size}; allowed: >= 2 (a group needs completions to compare)")
    ppo = c.method not in GROUP_METHODS
    for name, value, applies in (("aggregation", c.aggregation, not ppo), ("kl_target", c.kl_target, ppo),
                                 ("critic", c.critic if c.critic != "head" else None, ppo)):  # fmt: skip
        if value is not None and not applies:  # a setting the method would ignore: say so, do not drop it
            raise ConfigError(f"lm.{name}", f"{value!r} does nothing for {c.method}; allowed: the default, or "
                                            f"{'a group method' if name == 'aggregation' else 'ppo'}")  # fmt: skip
    if c.batch_size % c.minibatch_size:
        raise ConfigError("lm.minibatch_size", f"{c.minibatch_size} does not divide the {c.batch_size} "
                                               "completions of a step; allowed: a divisor of it")  # fmt: skip


def _check_coefficients(c: LMConfig) -> None:
    """Rates, clips, coefficients: finite and in range."""
    for name in ("temperature", "learning_rate", "sft_learning_rate", "clip_low", "max_grad_norm", "value_clip"):
        value = getattr(c, name)
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"lm.{name}", f"{value!r}; allowed: a number > 0")
    for name in ("weight_decay", "kl_coef", "missing_eos_penalty"):
        value = getattr(c, name)
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"lm.{name}", f"{value!r}; allowed: a number >= 0")
    for name in ("clip_high", "kl_target"):
        value = getattr(c, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ConfigError(f"lm.{name}", f"{value!r}; allowed: None or a number > 0")
    if not (0.0 < c.gamma <= 1.0 and 0.0 <= c.gae_lambda <= 1.0 and c.vf_coef >= 0.0):
        raise ConfigError("lm.gamma", f"gamma {c.gamma}, gae_lambda {c.gae_lambda}, vf_coef {c.vf_coef}; "
                                      "allowed: gamma in (0, 1], gae_lambda in [0, 1], vf_coef >= 0")  # fmt: skip


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
