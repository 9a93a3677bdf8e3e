"""The start of every method's step: a step's prompts, a group of sampled completions for
each, and their scores (the task's or the user's rewards, less the missing-EOS penalty)."""

from __future__ import annotations

import random

import torch
from torch import Tensor

from ppokit.lm.config import LMConfig
from ppokit.lm.generate import Completions, decode, sample
from ppokit.lm.policy import Policy
from ppokit.lm.tasks import Task


def penalize_missing_eos(scores: Tensor, ended: Tensor, penalty: float) -> Tensor:
    """Scores less ``penalty`` for the completions the length limit cut (no EOS)."""
    return scores.float() - penalty * (~ended).float()


def sample_and_score(
    policy: Policy, task: Task, config: LMConfig, rng: random.Random
) -> tuple[list[str], Completions, list[str], Tensor]:
    """A step's prompts (each repeated ``group_size`` times), their sampled completions and
    texts, and the scores, less the missing-EOS penalty."""
    prompts = [p for p in (task.prompt(rng) for _ in range(config.prompts_per_step)) for _ in range(config.group_size)]
    out = sample(policy.model, policy.tokenizer, prompts, task.max_new_tokens, config.temperature)
    texts = decode(policy.tokenizer, out)
    scores = torch.tensor(task.reward(prompts, texts), device=out.ended.device)
    return prompts, out, texts, penalize_missing_eos(scores, out.ended, config.missing_eos_penalty)
