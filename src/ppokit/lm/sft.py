"""The supervised stage: imitate the task's optimal completions, so that RL starts from a
reference that already speaks the task, as in practice."""

from __future__ import annotations

import random

import torch
from transformers import PreTrainedModel
from transformers import PreTrainedTokenizerBase as Tokenizer

from ppokit.lm.config import LMConfig
from ppokit.lm.models import token_logprobs
from ppokit.lm.tasks import Task


def sft(model: PreTrainedModel, tokenizer: Tokenizer, task: Task, config: LMConfig, rng: random.Random) -> None:
    """Maximize log pi(optimal completion + EOS | prompt) over fresh prompts each step."""
    answer = task.answer
    if answer is None or not config.sft_steps:
        return  # a task without answers has nothing to imitate
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.sft_learning_rate, weight_decay=config.weight_decay)
    for _ in range(config.sft_steps):
        prompts = [task.prompt(rng) for _ in range(config.sft_batch)]
        prompt_ids = tokenizer(prompts, padding=True, return_tensors="pt").to(model.device)
        answers = tokenizer([answer(p) + tokenizer.eos_token for p in prompts], padding=True,
                            padding_side="right", return_tensors="pt").to(model.device)  # fmt: skip
        input_ids = torch.cat([prompt_ids["input_ids"], answers["input_ids"]], 1)
        attention = torch.cat([prompt_ids["attention_mask"], answers["attention_mask"]], 1)
        logp = token_logprobs(model, input_ids, attention, prompt_ids["input_ids"].shape[1])
        mask = answers["attention_mask"].float()
        loss = -(logp * mask).sum() / mask.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
