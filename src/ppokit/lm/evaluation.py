"""Greedy evaluation of a language model on a task: success, reward, and on request the KL to
the reference and sample completions (``ppokit lm eval``)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel
from transformers import PreTrainedTokenizerBase as Tokenizer

from ppokit.lm.generate import decode, sample
from ppokit.lm.models import token_logprobs
from ppokit.lm.tasks import Task


@dataclass(frozen=True)
class Evaluation:
    success: float  # greedy exact-success rate (NaN when the task knows no answer)
    reward: float  # mean reward of the greedy completions
    kl_ref_seq: float = math.nan  # with a reference: log pi - log pi_ref summed over each completion, mean
    samples: list[tuple[str, str, float]] = field(default_factory=list)  # (prompt, completion, reward)


def evaluate(
    model: PreTrainedModel, tokenizer: Tokenizer, task: Task, n: int, rng: random.Random,
    reference: PreTrainedModel | None = None, samples: int = 0,
) -> Evaluation:  # fmt: skip
    """Greedy completions of ``n`` fresh prompts: their success rate and mean reward; with a
    ``reference``, the completions' KL to it (k1 per completion: a greedy completion is not a
    sample of pi, so this is a distance of these texts, not the sampled KL); the first
    ``samples`` (prompt, completion, reward)."""
    prompts = [task.prompt(rng) for _ in range(n)]
    out = sample(model, tokenizer, prompts, task.max_new_tokens, greedy=True)
    texts = decode(tokenizer, out)
    rewards = task.reward(prompts, texts)
    kl = math.nan
    if reference is not None:
        start = out.prompt_ids.shape[1]
        with torch.no_grad():
            logp = token_logprobs(model, out.input_ids, out.attention_mask, start)
            ref = token_logprobs(reference, out.input_ids, out.attention_mask, start)
        kl = float(((logp - ref) * out.completion_mask).sum(-1).mean())
    shown = list(zip(prompts, texts, rewards, strict=True))[:samples]
    return Evaluation(_rate(task.success(prompts, texts)), sum(rewards) / len(rewards), kl, shown)


def _rate(hits: list[bool]) -> float:
    """The fraction of hits; NaN when the task knows no answer to hit."""
    return sum(hits) / len(hits) if hits else math.nan
