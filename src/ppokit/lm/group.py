"""One step of a group method (GRPO, Dr. GRPO, RLOO): a group of completions per prompt, their
rewards, advantages from the group (``LM_METHODS``), and the shared update loop with a
per-token clipped surrogate and the k3 KL to the reference in the loss."""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import partial
from typing import Self

import torch
from torch import Tensor

from ppokit.core import losses
from ppokit.core.reduce import Aggregation, aggregate, token_mean
from ppokit.core.update import UpdatePlan, run_epochs, select_rows
from ppokit.lm.config import LMConfig
from ppokit.lm.generate import Completions
from ppokit.lm.methods import LM_METHODS
from ppokit.lm.metrics import completion_metrics, sampling_metrics
from ppokit.lm.models import score_tokens
from ppokit.lm.policy import AdamW, Policy
from ppokit.lm.sampling import sample_and_score
from ppokit.lm.tasks import Task


@dataclass
class LMBatch:
    """One step's completions ``[B, P + L]`` with what the loss needs, selectable by sequence."""

    input_ids: Tensor
    attention_mask: Tensor
    mask: Tensor  # [B, L] the completion tokens (to the first EOS)
    old_logprobs: Tensor | None  # [B, L] under the sampling policy; None: one pass, the loss's own (detached)
    ref_logprobs: Tensor  # [B, L] under the reference
    advantages: Tensor  # [B] one per completion
    prompt_len: int

    @property
    def device(self) -> torch.device:
        return self.input_ids.device

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, index: Tensor | slice) -> Self:
        return select_rows(self, index)


def group_step(
    policy: Policy, task: Task, config: LMConfig, optimizer: AdamW, rng: random.Random, generator: torch.Generator
) -> dict[str, float]:
    """One step: a group of completions per prompt, their rewards, the update; its metrics."""
    method = LM_METHODS[config.method]
    assert method.advantages is not None  # group methods; ppo takes ppo_step
    prompts, out, texts, rewards = sample_and_score(policy, task, config, rng)
    advantages = method.advantages(rewards.view(-1, config.group_size)).reshape(-1)
    one_pass = config.epochs == 1 and config.minibatch_size == config.batch_size
    batch, sampling = _batch(policy, out, advantages, config.temperature, one_pass)
    aggregation = config.aggregation or method.aggregation
    loss_fn = partial(group_loss, policy, config, aggregation, task.max_new_tokens)
    plan = UpdatePlan(config.epochs, config.minibatch_size, config.max_grad_norm)
    result = run_epochs(batch, loss_fn, optimizer, plan, generator)
    return result.metrics | completion_metrics(rewards, out, task.success(prompts, texts), config.group_size) | sampling


def _batch(
    policy: Policy, out: Completions, advantages: Tensor, temperature: float, one_pass: bool
) -> tuple[LMBatch, dict[str, float]]:
    """The batch of the update, and the sampling policy's metrics (``sampling_metrics``). In
    one pass over the batch (one epoch of one minibatch) the loss's forward pass is the
    sampling policy's: its log-probs, detached, are the old ones and the metrics come from it,
    which saves a forward pass per step."""
    start = out.prompt_ids.shape[1]
    with torch.no_grad():
        ref = policy.reference_logprobs(out.input_ids, out.attention_mask, start, temperature)
        if one_pass:
            return LMBatch(out.input_ids, out.attention_mask, out.completion_mask, None, ref, advantages, start), {}
        old = score_tokens(policy.model, out.input_ids, out.attention_mask, start, temperature, entropy=True)
    assert old.entropy is not None
    batch = LMBatch(out.input_ids, out.attention_mask, out.completion_mask, old.logprobs, ref, advantages, start)
    return batch, sampling_metrics(old.logprobs, ref, old.entropy, batch.mask)


def group_loss(
    policy: Policy, config: LMConfig, aggregation: Aggregation, max_len: int, mb: LMBatch
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped surrogate per token, every token of a completion weighted by its advantage,
    plus beta times the k3 KL to the reference, both reduced by ``aggregation``."""
    one_pass = mb.old_logprobs is None
    scores = score_tokens(policy.forward_model, mb.input_ids, mb.attention_mask, mb.prompt_len, config.temperature,
                          entropy=one_pass)  # fmt: skip
    logp = scores.logprobs
    old = logp.detach() if mb.old_logprobs is None else mb.old_logprobs
    high = config.clip_high if config.clip_high is not None else config.clip_low
    adv = mb.advantages[:, None].expand_as(logp)
    terms = losses.clipped_surrogate(logp, old, adv, config.clip_low, high)

    def reduce(x: Tensor) -> Tensor:  # Dr. GRPO's constant: completions x the longest allowed
        return aggregate(x, mb.mask, aggregation, constant=float(len(mb) * max_len))

    policy_loss = -reduce(terms.objective)
    kl = losses.reference_kl(logp, mb.ref_logprobs)
    loss = policy_loss + config.kl_coef * reduce(kl)
    diagnostics = losses.policy_diagnostics(terms, mb.mask, (config.clip_low, high))
    # kl_ref is logged per real token for every method and aggregation (the loss reduces it as it reduces the rest).
    kl_ref = token_mean(kl.detach(), mb.mask)
    sampling: dict[str, Tensor] = {}
    if one_pass:  # this forward is the sampling policy's
        assert scores.entropy is not None
        sampling = {"entropy": token_mean(scores.entropy, mb.mask),
                    "kl_ref_seq": ((old - mb.ref_logprobs) * mb.mask).sum(-1).mean()}  # fmt: skip
    return loss, {"policy_loss": policy_loss, "kl_ref": kl_ref, **diagnostics, "loss": loss, **sampling}
