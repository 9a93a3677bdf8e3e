"""Where rewards and prompts come from: a reward model (a one-label sequence classifier from a
folder), several rewards with weights, prompts from a ``datasets`` folder or a parquet file,
and what is refused before any work (context, weights, columns, devices)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from transformers import GPT2Config, GPT2ForSequenceClassification

from ppokit.errors import ConfigError
from ppokit.lm.config import LMConfig
from ppokit.lm.reward_model import RewardModel
from ppokit.lm.rewards import load_prompts
from ppokit.lm.tasks import sort_reward
from ppokit.lm.tokenizer import char_tokenizer
from ppokit.lm.trainer import make_task, train

TINY = {"steps": 2, "sft_steps": 2, "prompts_per_step": 4, "group_size": 4, "minibatch_size": 16, "eval_prompts": 8,
        "width": 32}  # fmt: skip


def _reward_model(folder: Path, labels: int = 1) -> Path:
    tokenizer = char_tokenizer("0123456789=")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=16, n_layer=1, n_head=2, num_labels=labels,
                        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    GPT2ForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_reward_model_scores_each_text_as_it_would_alone(tmp_path: Path) -> None:
    folder = _reward_model(tmp_path / "rm")
    rm = RewardModel(str(folder), batch=2)
    prompts, completions = ["3142=", "21=", "9="], ["1234", "12", ""]
    got = rm(prompts, completions, target=[1, 2, 3])  # columns reach every reward; this one ignores them
    for text, score in zip([p + c for p, c in zip(prompts, completions, strict=True)], got, strict=True):
        ids = rm.tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            alone = float(rm.model(**ids).logits[0, 0])
        assert score == pytest.approx(alone, abs=1e-5)  # right padding, the last real token read
    with pytest.raises(ConfigError, match=r"lm.reward_model: .* has 2 labels; allowed: 1"):
        RewardModel(str(_reward_model(tmp_path / "two", labels=2)))


def test_weighted_rewards_sum_the_task_and_the_reward_model(tmp_path: Path) -> None:
    folder = _reward_model(tmp_path / "rm")
    task = make_task(LMConfig(reward_model=str(folder), reward_weights="2,0.5"))
    prompts, completions = ["3142=", "21="], ["1234", "21"]
    model_scores = RewardModel(str(folder))(prompts, completions)
    expected = [2 * s + 0.5 * m for s, m in zip(sort_reward(prompts, completions), model_scores, strict=True)]
    assert task.reward(prompts, completions) == pytest.approx(expected)
    assert make_task(LMConfig(reward_weights="3")).reward(["3142="], ["1234"]) == [3.0]  # the task's alone, weighted
    result = train(LMConfig(reward_model=str(folder), **TINY))
    assert len(result.metrics) == 2


def two_rewards_a(prompts: list[str], completions: list[str], target: list[int]) -> list[float]:
    return [float(len(c) == t) for c, t in zip(completions, target, strict=True)]


def two_rewards_b(prompts: list[str], completions: list[str], **columns: object) -> list[float]:
    return [float(c.startswith("1")) for c in completions]


def test_several_reward_functions_with_weights_and_prompts_from_a_dataset(tmp_path: Path) -> None:
    import datasets

    folder = tmp_path / "prompts"
    datasets.Dataset.from_dict({"question": ["12=", "9876="], "target": [2, 4]}).save_to_disk(str(folder))
    rows = load_prompts(str(folder), "question")
    assert rows == [{"target": 2, "prompt": "12="}, {"target": 4, "prompt": "9876="}]
    reward = "tests.unit.test_lm_rewards:two_rewards_a, tests.unit.test_lm_rewards:two_rewards_b"
    config = LMConfig(prompts=str(folder), prompt_column="question", reward=reward, reward_weights="1,-0.5",
                      max_new_tokens=6, **{**TINY, "sft_steps": 0})  # fmt: skip
    task = make_task(config)
    assert task.reward(["12=", "9876="], ["12", "1234"]) == [0.5, 0.5]
    assert task.reward(["12=", "9876="], ["34", "123"]) == [1.0, -0.5]
    assert len(train(config).metrics) == 2
    parquet = tmp_path / "prompts.parquet"
    datasets.Dataset.from_dict({"prompt": ["5="]}).to_parquet(str(parquet))
    assert load_prompts(str(parquet)) == [{"prompt": "5="}]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"reward_weights": "1,2"}, r"lm.reward_weights: '1,2'; allowed: 1 comma-separated numbers"),
     ({"reward_weights": "x"}, r"lm.reward_weights: 'x'"),
     ({"reward_model": "nowhere"}, r"lm.reward_model: 'nowhere' is not a model folder"),
     ({"lora_rank": -1}, r"lm.lora_rank: rank -1"), ({"save_every": 0}, r"lm.save_every: 0"),
     ({"precision": "fp8"}, r"lm.precision: got 'fp8' \(str\), expected one of fp32, bf16"),
     ({"device": "tpu"}, r"lm.device: got 'tpu' \(str\), expected one of cpu, cuda, auto"),
     ({"width": 30, "arch": "llama"}, r"lm.width: 30; allowed: a multiple of 4"),
     ({"steps": "3"}, r"lm.steps: got '3' \(str\), expected an integer")],
)  # fmt: skip
def test_bad_reward_and_run_settings_name_the_field(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LMConfig(**overrides).validate()  # type: ignore[arg-type]  # wrong values under test


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_is_refused_where_there_is_none() -> None:
    with pytest.raises(ConfigError, match=r"lm.device: cuda: no CUDA device here"):
        LMConfig(device="cuda").validate()
    assert LMConfig(device="auto").validate().device == "auto"


def test_prompts_longer_than_the_context_are_refused_before_any_work(tmp_path: Path) -> None:
    from ppokit.lm.models import tiny_causal_lm

    tokenizer = char_tokenizer("0123456789=")
    model = tmp_path / "model"  # a short context, as a small model might have
    tiny_causal_lm("gpt2", tokenizer, width=16, layers=1, context=32).save_pretrained(model)
    tokenizer.save_pretrained(model)
    rows = tmp_path / "long.jsonl"
    rows.write_text(json.dumps({"prompt": "1" * 40 + "="}) + "\n" + json.dumps({"prompt": "2="}) + "\n")
    base = {**TINY, "sft_steps": 0, "reward": "tests.unit.test_lm_rewards:two_rewards_b", "model": str(model),
            "run_dir": str(tmp_path / "run")}  # fmt: skip
    with pytest.raises(ConfigError, match=r"lm.prompts: the longest prompt has 41 tokens .* context of 32"):
        train(LMConfig(prompts=str(rows), **base))  # type: ignore[arg-type]  # the dict's values
    with pytest.raises(ConfigError, match=r"lm.max_new_tokens: the longest prompt has 5 tokens and completions up to "
                                          r"30: more than the model's context of 32"):  # fmt: skip
        train(LMConfig(prompts=_short(tmp_path), max_new_tokens=30, **base))  # type: ignore[arg-type]
    assert not (tmp_path / "run").exists()  # refused before any work


def _short(tmp_path: Path) -> str:
    rows = tmp_path / "short.jsonl"
    rows.write_text(json.dumps({"prompt": "1234="}) + "\n")
    return str(rows)


def test_bf16_autocast_trains_with_the_ratio_at_one() -> None:
    result = train(LMConfig(precision="bf16", **TINY))
    for row in result.metrics:
        assert row["clip_fraction"] == 0.0 and abs(row["approx_kl"]) < 1e-6
