"""What every language-model RL step logs about its completions, their rewards, and the
sampling policy's distance from the reference (names and definitions: docs/metrics.md)."""

from __future__ import annotations

import math

from torch import Tensor

from ppokit.core.reduce import token_mean
from ppokit.lm.generate import Completions


def completion_metrics(rewards: Tensor, out: Completions, success: list[bool], group_size: int) -> dict[str, float]:
    """Reward statistics, the success rate (NaN when no answer is known), completion lengths,
    the truncated fraction, and the fraction of groups whose rewards are all equal (they carry
    no gradient for the group methods)."""
    spread = rewards.view(-1, group_size).std(dim=1, unbiased=False) if group_size > 1 else rewards[:0]
    lengths = out.lengths.float()
    return {
        "reward_mean": float(rewards.mean()),
        "reward_std": float(rewards.std(unbiased=False)),
        "reward_min": float(rewards.min()),
        "reward_max": float(rewards.max()),
        "success": sum(success) / len(success) if success else math.nan,
        "completion_length_mean": float(lengths.mean()),
        "completion_length_min": float(lengths.min()),
        "completion_length_max": float(lengths.max()),
        "truncated_fraction": float((~out.ended).float().mean()),
        "zero_std_groups": float((spread == 0).float().mean()) if group_size > 1 else math.nan,
    }


def sampling_metrics(logp: Tensor, ref_logp: Tensor, entropy: Tensor, mask: Tensor) -> dict[str, float]:
    """Of the sampling policy on its completions' real tokens (``[B, L]``, ``mask`` 1 up to and
    including the EOS): ``entropy`` per token, and ``kl_ref_seq``, k1 = log pi - log pi_ref
    summed over each completion and averaged over completions, whose expectation is
    KL(pi || pi_ref) of whole completions."""
    return {
        "entropy": float(token_mean(entropy, mask)),
        "kl_ref_seq": float(((logp - ref_logp) * mask).sum(-1).mean()),
    }
