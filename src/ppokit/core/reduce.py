"""Reductions of per-element loss terms to a scalar, and masked whitening.

A loss term is computed per element (per step for the classic trainer, per token for a
language model) and reduced here; which reduction is a choice of the method, not of the
loss (the aggregation modes of GRPO, Dr. GRPO and DAPO differ only in this):

- ``masked_mean`` / ``token_mean``: the mean over every unmasked element of the batch (DAPO's
  token-level loss; the classic trainer's mean over valid steps).
- ``seq_mean_token_mean``: the mean over sequences of each sequence's mean over its tokens
  (GRPO as published: long and short completions weigh the same).
- ``constant_normalizer``: the masked sum over a fixed constant, e.g. batch x max length
  (Dr. GRPO, Liu et al. 2025: no length bias from the per-sequence mean).

Elements with ``mask == 0`` contribute nothing (autoreset steps, padding tokens).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

Aggregation = Literal["token-mean", "seq-mean-token-mean", "constant"]
AGGREGATIONS: tuple[Aggregation, ...] = ("token-mean", "seq-mean-token-mean", "constant")


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """sum(x * mask) / sum(mask) over every element (0 when nothing is unmasked)."""
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def token_mean(x: Tensor, mask: Tensor) -> Tensor:
    """The mean over all unmasked tokens of the batch: ``masked_mean`` by its LM name."""
    return masked_mean(x, mask)


def seq_mean_token_mean(x: Tensor, mask: Tensor) -> Tensor:
    """mean_i [ sum_t x_it m_it / sum_t m_it ] over sequences ``[B, L]`` with a token left;
    sequences without one are left out (0 when none has)."""
    if x.ndim != 2 or x.shape != mask.shape:
        raise ValueError(f"seq_mean_token_mean: need x and mask [B, L], got {tuple(x.shape)}, {tuple(mask.shape)}")
    tokens = mask.sum(-1)
    per_seq = (x * mask).sum(-1) / tokens.clamp(min=1.0)
    has_tokens = (tokens > 0).to(x.dtype)
    return (per_seq * has_tokens).sum() / has_tokens.sum().clamp(min=1.0)


def constant_normalizer(x: Tensor, mask: Tensor, constant: float) -> Tensor:
    """sum(x * mask) / constant (Dr. GRPO: the constant is batch size x maximum length)."""
    if not constant > 0:
        raise ValueError(f"constant_normalizer: the constant must be > 0, got {constant}")
    return (x * mask).sum() / constant


def aggregate(x: Tensor, mask: Tensor, mode: Aggregation, constant: float | None = None) -> Tensor:
    """Reduce per-element ``x`` with the named aggregation (``constant`` for ``"constant"``)."""
    if mode == "token-mean":
        return token_mean(x, mask)
    if mode == "seq-mean-token-mean":
        return seq_mean_token_mean(x, mask)
    if mode == "constant":
        if constant is None:
            raise ValueError("aggregate: mode 'constant' needs the constant")
        return constant_normalizer(x, mask, constant)
    raise ValueError(f"aggregate: unknown mode {mode!r}; allowed: {', '.join(AGGREGATIONS)}")


def masked_whiten(x: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """(x - mean) / (std + eps) over the unmasked elements; masked elements become 0.
    The advantage normalization of PPO implementations (per minibatch)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean).pow(2), mask)
    return (x - mean) / (var.sqrt() + eps) * mask
