"""Token-level PPO for language models (Ziegler et al. 2019; Ouyang et al. 2022): a value head
on the policy's last hidden state, the KL to the reference in the per-token reward, GAE over
completion tokens, whitened advantages, clipped value loss; on the shared core.

Per token t of a completion of n real tokens (the EOS included):

    r_t = -beta * (log pi_old(x_t) - log pi_ref(x_t)) + score * 1[t = n - 1]

k1 in the reward: its expectation under pi_old is the reverse KL(pi_old || pi_ref), the
quantity the KL-regularized objective names (``ppokit.core.kl``). The last real token ends the
episode: terminated when it is the EOS, truncated when ``max_new_tokens`` cut the completion,
which then bootstraps from the value of the state after it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import partial
from typing import Self

import torch
from torch import Tensor

from ppokit.core import losses
from ppokit.core.advantages import gae
from ppokit.core.kl import adapt_kl_coef_proportional
from ppokit.core.metrics import explained_variance
from ppokit.core.reduce import masked_whiten, token_mean
from ppokit.core.update import Optimizer, UpdatePlan, run_epochs, select_rows
from ppokit.lm.config import LMConfig
from ppokit.lm.metrics import completion_metrics, sampling_metrics
from ppokit.lm.models import score_tokens
from ppokit.lm.policy import Policy
from ppokit.lm.sampling import sample_and_score
from ppokit.lm.tasks import Task


def token_rewards(score: Tensor, kl: Tensor, mask: Tensor, beta: float) -> Tensor:
    """``[B, L]``: -beta * kl on every real token, plus the completion's score on its last."""
    last = (mask.long().sum(-1) - 1).clamp(min=0)
    rewards = -beta * kl * mask
    return rewards.scatter_add(1, last[:, None], score[:, None].to(rewards.dtype))


def ppo_targets(
    rewards: Tensor, values: Tensor, mask: Tensor, ended: Tensor, gamma: float, lam: float,
    bootstrap_truncated: bool = False,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """``(advantages, returns)`` ``[B, L]`` by GAE over each completion's tokens.

    ``values`` ``[B, L + 1]``: V before each token, and V after the last position. The last
    real token ends the episode. At an EOS it terminates (no bootstrap); a completion cut by
    the length limit terminates too unless ``bootstrap_truncated``, when it bootstraps from V
    of the state after it. Bootstrapping suits a reward that does not judge the text as final;
    a score of the whole completion already is its final outcome, and adding V(after) to it
    pays for skipping the EOS (measured on the sort task: completions grew to the limit and
    the success fell to 0). Padding after the EOS is masked out."""
    rewards, values, mask = rewards.float(), values.float(), mask.float()  # float32 targets, whatever the autocast
    last = (mask.long().sum(-1) - 1).clamp(min=0)
    is_last = torch.zeros_like(mask).scatter_(1, last[:, None], 1.0)
    next_values = values[:, 1:]
    stops = ended if bootstrap_truncated else torch.ones_like(ended)  # which last tokens cut the bootstrap
    terminated = is_last * stops[:, None].to(mask.dtype)
    # Time-major for the core's GAE: [L, B].
    advantages = gae(rewards.T, values[:, :-1].T, next_values.T, terminated.T, is_last.T, gamma, lam).T
    return advantages * mask, (advantages + values[:, :-1]) * mask


@dataclass
class PPOBatch:
    input_ids: Tensor
    attention_mask: Tensor
    mask: Tensor
    old_logprobs: Tensor
    old_values: Tensor  # [B, L]
    advantages: Tensor  # [B, L]
    returns: Tensor  # [B, L]
    prompt_len: int

    @property
    def device(self) -> torch.device:
        return self.input_ids.device

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, index: Tensor | slice) -> Self:
        return select_rows(self, index)


def ppo_loss(
    policy: Policy, mb: PPOBatch, temperature: float, clip_low: float, clip_high: float, value_clip: float,
    vf_coef: float,
) -> tuple[Tensor, dict[str, Tensor]]:  # fmt: skip
    """Clipped surrogate on whitened advantages plus the clipped value loss, token-mean."""
    shared = policy.critic is None
    scores = score_tokens(
        policy.forward_model, mb.input_ids, mb.attention_mask, mb.prompt_len, temperature, hidden=shared
    )
    logp = scores.logprobs
    # The value loss trains the head and its trunk: the policy's when shared, else the critic's.
    values = policy.values(scores.hidden, mb.input_ids, mb.attention_mask, mb.prompt_len)[:, :-1]
    adv = masked_whiten(mb.advantages, mb.mask)
    terms = losses.clipped_surrogate(logp, mb.old_logprobs, adv, clip_low, clip_high)
    policy_loss = -token_mean(terms.objective, mb.mask)
    value_loss = token_mean(losses.value_loss(values, mb.old_values, mb.returns, value_clip), mb.mask)
    loss = policy_loss + vf_coef * value_loss
    diagnostics = losses.policy_diagnostics(terms, mb.mask, (clip_low, clip_high))
    return loss, {"policy_loss": policy_loss, "value_loss": value_loss, **diagnostics, "loss": loss}


def ppo_step(
    policy: Policy, task: Task, config: LMConfig, optimizer: Optimizer, rng: random.Random,
    generator: torch.Generator, beta: float,
) -> dict[str, float]:  # fmt: skip
    """One PPO step with KL coefficient ``beta``: completions, their scores, the KL-shaped token
    rewards, GAE, the update; its metrics (the next step's beta: ``next_kl_coef``)."""
    prompts, out, texts, scores = sample_and_score(policy, task, config, rng)
    start, mask = out.prompt_ids.shape[1], out.completion_mask
    with torch.no_grad():
        old = score_tokens(policy.model, out.input_ids, out.attention_mask, start, config.temperature,
                           hidden=policy.critic is None, entropy=True)  # fmt: skip
        assert old.entropy is not None
        values = policy.values(old.hidden, out.input_ids, out.attention_mask, start)
        ref = policy.reference_logprobs(out.input_ids, out.attention_mask, start, config.temperature)
    kl = (old.logprobs - ref) * mask  # k1 per token: its mean under pi_old is KL(pi_old || pi_ref)
    rewards = token_rewards(scores, kl, mask, beta)
    advantages, returns = ppo_targets(rewards, values, mask, out.ended, config.gamma, config.gae_lambda,
                                      config.truncation == "bootstrap")  # fmt: skip
    batch = PPOBatch(out.input_ids, out.attention_mask, mask, old.logprobs, values[:, :-1], advantages, returns, start)
    high = config.clip_high if config.clip_high is not None else config.clip_low
    loss_fn = partial(ppo_loss, policy, temperature=config.temperature, clip_low=config.clip_low, clip_high=high,
                      value_clip=config.value_clip, vf_coef=config.vf_coef)  # fmt: skip
    plan = UpdatePlan(config.epochs, config.minibatch_size, config.max_grad_norm)
    result = run_epochs(batch, loss_fn, optimizer, plan, generator)
    kl_ref = float(token_mean(kl, mask))
    return (result.metrics | completion_metrics(scores, out, task.success(prompts, texts), config.group_size)
            | sampling_metrics(old.logprobs, ref, old.entropy, mask)
            | {"kl_ref": kl_ref, "explained_variance": explained_variance(values[:, :-1], returns,
                                                                                             mask)})  # fmt: skip


def next_kl_coef(config: LMConfig, beta: float, kl_ref: float, samples: int) -> float:
    """The KL coefficient of the next step: ``beta`` itself, or with ``kl_target`` Ziegler et
    al.'s proportional controller on the step's ``kl_ref`` over its ``samples`` completions."""
    if config.kl_target is None:
        return beta
    return adapt_kl_coef_proportional(beta, kl_ref, config.kl_target, samples, config.kl_horizon)
