"""What every language-model RL step logs about its completions and their rewards."""

from __future__ import annotations

import math

from torch import Tensor

from ppokit.lm.generate import Completions


def completion_metrics(rewards: Tensor, out: Completions, success: list[bool], group_size: int) -> dict[str, float]:
    """Reward statistics, the success rate (NaN when no answer is known), completion lengths,
    the truncated fraction, and the fraction of groups whose rewards are all equal (they carry
    no gradient for the group methods)."""
    spread = rewards.view(-1, group_size).std(dim=1, unbiased=False) if group_size > 1 else rewards[:0]
    return {
        "reward_mean": float(rewards.mean()),
        "reward_std": float(rewards.std(unbiased=False)),
        "success": sum(success) / len(success) if success else math.nan,
        "completion_length_mean": float(out.lengths.float().mean()),
        "truncated_fraction": float((~out.ended).float().mean()),
        "zero_std_groups": float((spread == 0).float().mean()) if group_size > 1 else math.nan,
    }
