"""The built-in tasks against hand-computed values: count's reward, success, prompts and
SFT answers (stopping late or never scores less than stopping at n); bandit's reward over the
whole vocabulary; the Gibbs and forward-KL optima and the total variation distance."""

from __future__ import annotations

import math
import random

import pytest

from ppokit.lm.tasks import (
    BANDIT_PROMPT,
    COUNT_MAX,
    TASKS,
    bandit_reward,
    count_reward,
    count_solves,
    forward_kl_optimum,
    gibbs_optimum,
    total_variation,
)


def test_count_reward_hand_values() -> None:
    completions = ["333", "012", "12", "1234", "", "33333333", "3:3", ":::"]
    # exact -> 1; one too short or long -> 0.5 / 2; empty -> 0; the 8 characters of a cut
    # completion -> 0.5 / (1 + 5); two digits of three -> 0.5 * 2/3; no digit -> 0
    expected = [1.0, 1.0, 0.25, 0.25, 0.0, 0.5 / 6, 1 / 3, 0.0]
    assert count_reward(["3:"] * len(completions), completions) == pytest.approx(expected)
    assert count_reward(["1:", "5:"], ["7", "55555"]) == [1.0, 1.0]


def test_count_success_accepts_any_n_digits() -> None:
    task = TASKS["count"]
    assert task.success(["3:", "3:", "1:", "5:", "2:"], ["123", "999", "11", "5555:", ""]) == [
        True, True, False, False, False,
    ]  # fmt: skip
    assert count_solves("4:", "0000") and not count_solves("4:", "000")


def test_count_answers_are_the_prompt_digit_n_times_and_succeed() -> None:
    task = TASKS["count"]
    assert task.answer is not None
    assert [task.answer(f"{n}:") for n in (1, 3, 5)] == ["1", "333", "55555"]
    prompts = [f"{n}:" for n in range(1, COUNT_MAX + 1)]
    answers = [task.answer(p) for p in prompts]
    assert task.success(prompts, answers) == [True] * COUNT_MAX
    assert task.reward(prompts, answers) == [1.0] * COUNT_MAX
    # room for the longest answer and its EOS
    assert all(len(a) + 1 <= task.max_new_tokens for a in answers)


def test_count_prompts_ask_for_one_to_count_max_digits() -> None:
    task, rng = TASKS["count"], random.Random(0)
    prompts = {task.prompt(rng) for _ in range(200)}
    assert prompts == {f"{n}:" for n in range(1, COUNT_MAX + 1)}
    assert all(set(p) <= set(task.alphabet) for p in prompts)


@pytest.mark.parametrize("n", range(1, COUNT_MAX + 1))
def test_count_stopping_late_or_never_scores_less_than_stopping_at_n(n: int) -> None:
    """A completion the length limit cut holds max_new_tokens characters: it scores less than
    one digit too many, which scores less than exactly n."""
    cut = "7" * TASKS["count"].max_new_tokens
    exact, late, cut_score = count_reward([f"{n}:"] * 3, ["7" * n, "7" * (n + 1), cut])
    assert cut_score < late < exact == 1.0
    assert TASKS["count"].max_new_tokens > COUNT_MAX + 1  # a cut completion is never n digits


def test_bandit_reward_hand_values() -> None:
    completions = ["a", "b", "c", "d", "", BANDIT_PROMPT, "ab"]
    assert bandit_reward([BANDIT_PROMPT] * 7, completions) == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0, 0.0]
    task = TASKS["bandit"]
    assert task.max_new_tokens == 1 and task.prompt(random.Random(0)) == BANDIT_PROMPT
    assert task.answer is not None and task.success([BANDIT_PROMPT] * 2, ["a", "b"]) == [True, False]


def test_every_bandit_token_is_an_answer_with_a_reward() -> None:
    """One new token is sampled from the whole vocabulary: the special tokens decode to the
    empty text (reward 0) and every character of the alphabet has its reward."""
    pytest.importorskip("transformers")
    from ppokit.lm.tokenizer import char_tokenizer

    tokenizer = char_tokenizer(TASKS["bandit"].alphabet)
    texts = [str(tokenizer.decode([i], skip_special_tokens=True)) for i in range(len(tokenizer))]
    assert sorted(texts) == ["", "", "", BANDIT_PROMPT, "a", "b", "c", "d"]
    assert sorted(bandit_reward([BANDIT_PROMPT] * len(texts), texts)) == [0.0] * 4 + [0.25, 0.5, 0.75, 1.0]


def test_gibbs_optimum_hand_values() -> None:
    e = math.e
    assert gibbs_optimum([0.5, 0.5], [0.0, 1.0], 1.0) == pytest.approx([1 / (1 + e), e / (1 + e)])
    assert gibbs_optimum([0.2, 0.8], [1.0, 1.0], 0.1) == pytest.approx([0.2, 0.8])  # equal rewards: the reference
    assert gibbs_optimum([0.5, 0.5], [0.0, 1.0], 1e-3) == pytest.approx([0.0, 1.0])  # no overflow
    assert gibbs_optimum([0.0, 1.0], [5.0, 0.0], 1.0) == [0.0, 1.0]  # no mass where the reference has none


def test_forward_kl_optimum_hand_values() -> None:
    # pi = 0.5 / (lam - r): 0.5 / lam + 0.5 / (lam - 1) = 1  ->  lam = 1 + sqrt(1/2)
    lam = 1 + math.sqrt(0.5)
    assert forward_kl_optimum([0.5, 0.5], [0.0, 1.0], 1.0) == pytest.approx([0.5 / lam, 0.5 / (lam - 1)])
    assert forward_kl_optimum([0.2, 0.8], [1.0, 1.0], 0.3) == pytest.approx([0.2, 0.8])


def test_total_variation_hand_values() -> None:
    assert total_variation([0.5, 0.5], [1.0, 0.0]) == 0.5
    assert total_variation([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    assert total_variation([0.1, 0.9], [0.4, 0.6]) == pytest.approx(0.3)
