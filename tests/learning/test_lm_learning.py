"""Reinforcement learning raises a language model's success beyond its SFT reference, with
each method, from one supervised model per task shared by the session (``sft_model``).
Thresholds from seeds 1-3 (``benchmarks/lm_results.py``, docs/lm.md):

- sort (15 SFT steps, 150 RL steps): greedy success after SFT 0.07-0.34, after RL 0.48-0.77,
  a gain of 0.37-0.66; the sampled reward of the last 10 steps 0.26-0.42 above the first 10's.
- count (5 SFT steps, 100 RL steps): after SFT 0.00-0.15, after RL 0.54-1.00; the sampled
  reward of the last 10 steps 0.66-0.95; no completion cut by the limit at the last step.
"""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from ppokit.lm.config import LMConfig
from ppokit.lm.trainer import train
from tests.learning.conftest import SFTModel

pytestmark = pytest.mark.learning
METHODS = ["grpo", "dr-grpo", "rloo", "ppo"]


@pytest.mark.parametrize("method", METHODS)
def test_rl_beats_its_sft_reference_on_sort(method: str, sft_model: SFTModel) -> None:
    config = LMConfig(method=method, seed=1, model=str(sft_model("sort", 1, 15)), sft_steps=0, steps=150)  # type: ignore[arg-type]  # a Literal's str
    result = train(config)
    assert result.success >= 0.3, result.success
    assert result.success >= result.success_after_sft + 0.15, (result.success_after_sft, result.success)
    rewards = [row["reward_mean"] for row in result.metrics]
    assert sum(rewards[-10:]) / 10 > sum(rewards[:10]) / 10 + 0.1  # the sampled reward rose too


@pytest.mark.parametrize("method", METHODS)
def test_rl_learns_to_stop_after_n_digits(method: str, sft_model: SFTModel) -> None:
    """count: the answer's length depends on the prompt, so the EOS must come at the right
    place; a completion that runs on to the limit scores less than one digit too many."""
    config = LMConfig(task="count", method=method, seed=1, model=str(sft_model("count", 1, 5)), sft_steps=0,
                      steps=100)  # type: ignore[arg-type]  # fmt: skip
    result = train(config)
    assert result.success_after_sft <= 0.2 and result.success >= 0.4, (result.success_after_sft, result.success)
    rewards = [row["reward_mean"] for row in result.metrics]
    assert sum(rewards[-10:]) / 10 >= 0.55, rewards[-10:]
    assert result.metrics[-1]["truncated_fraction"] <= 0.05
