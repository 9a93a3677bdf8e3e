"""The PPO update: K epochs of shuffled minibatches over one flattened rollout.

Every metric is averaged over all minibatch steps actually taken (a target-KL stop ends the
update early; ``minibatch_steps`` says how many were taken).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ppokit import losses
from ppokit.config import AlgoConfig
from ppokit.policy import ActorCritic
from ppokit.rollout import Rollout

# Summed per minibatch step in this order, then averaged.
_STEP_METRICS = (
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "approx_kl_k1",
    "clip_fraction",
    "grad_norm",
    "loss",
)


@dataclass
class Batch:
    """A rollout flattened to ``[B = T * N, ...]`` with its advantages and returns."""

    obs: Tensor
    actions: Tensor
    logprobs: Tensor
    values: Tensor
    advantages: Tensor
    returns: Tensor
    mask: Tensor

    @classmethod
    def from_rollout(cls, r: Rollout, advantages: Tensor) -> Batch:

        def flat(x: Tensor) -> Tensor:
            return x.reshape(-1, *x.shape[2:])

        return cls(
            obs=flat(r.obs),
            actions=flat(r.actions),
            logprobs=flat(r.logprobs),
            values=flat(r.values),
            advantages=flat(advantages * r.valid),
            returns=flat(advantages + r.values),
            mask=flat(r.valid),
        )

    def __len__(self) -> int:
        return self.obs.shape[0]


def ppo_update(
    policy: ActorCritic,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    algo: AlgoConfig,
    ent_coef: float,
    clip_coef: float,
    generator: torch.Generator,
) -> dict[str, float]:
    """Run the epochs; return the metrics averaged over the minibatch steps taken.

    ``ent_coef`` and ``clip_coef`` are this update's values of their schedules."""
    size, mb_size = len(batch), algo.minibatch_size
    params = [p for p in policy.parameters() if p.requires_grad]
    totals = torch.zeros(len(_STEP_METRICS), dtype=torch.float64, device=batch.obs.device)
    steps, kl_stop = 0, False
    for _epoch in range(algo.update_epochs):
        order = torch.randperm(size, generator=generator).to(batch.obs.device)
        for start in range(0, size, mb_size):
            idx = order[start : start + mb_size]
            mask = batch.mask[idx]
            logp, entropy, value = policy.evaluate(batch.obs[idx], batch.actions[idx])
            adv = batch.advantages[idx]
            if algo.norm_adv:
                adv = losses.normalize_advantages(adv, mask)
            pg_loss, diag = losses.clipped_surrogate(logp, batch.logprobs[idx], adv, clip_coef, mask)
            if algo.target_kl is not None and float(diag["approx_kl"]) > algo.target_kl:
                kl_stop = True  # the policy left the trust region: stop before this step
                break
            v_clip = clip_coef if algo.clip_vloss else None
            v_loss = losses.value_loss(value, batch.values[idx], batch.returns[idx], v_clip, mask)
            ent = losses.entropy_bonus(entropy, mask)
            loss = pg_loss + algo.vf_coef * v_loss - ent_coef * ent

            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]  # torch stub gap
            grad_norm = torch.nn.utils.clip_grad_norm_(params, algo.max_grad_norm)
            optimizer.step()

            step_values = (pg_loss, v_loss, ent, diag["approx_kl"], diag["approx_kl_k1"],
                           diag["clip_fraction"], grad_norm, loss)  # fmt: skip
            totals += torch.stack([v.detach().double() for v in step_values])
            steps += 1
        if kl_stop:
            break
    means = (totals / max(steps, 1)).tolist()
    metrics = dict(zip(_STEP_METRICS, means, strict=True))
    metrics["minibatch_steps"] = float(steps)
    metrics["kl_early_stop"] = float(kl_stop)
    return metrics
