"""LoRA adapters through peft: only the adapters train, the reference is the model with them
disabled (no second copy), the first on-policy ratio is 1, and the saved model (adapters
merged) is the trained one; on GPT-2 and Llama."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

pytest.importorskip("peft")

from transformers import AutoModelForCausalLM, AutoTokenizer

from ppokit.lm.config import LMConfig
from ppokit.lm.models import add_lora, tiny_causal_lm, token_logprobs
from ppokit.lm.policy import attach
from ppokit.lm.tasks import TASKS
from ppokit.lm.tokenizer import char_tokenizer
from ppokit.lm.trainer import evaluate, train

TINY = {"steps": 2, "sft_steps": 2, "prompts_per_step": 4, "group_size": 4, "minibatch_size": 16, "eval_prompts": 8,
        "width": 32, "lora_rank": 4}  # fmt: skip


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_the_reference_is_the_model_with_its_adapters_disabled(arch: str) -> None:
    tokenizer = char_tokenizer("0123456789=")
    model = tiny_causal_lm(arch, tokenizer, width=32, seed=0)  # type: ignore[arg-type]  # a Literal's str
    ids = tokenizer(["31=13", "2=2"], padding=True, return_tensors="pt")
    before = token_logprobs(model, ids["input_ids"], ids["attention_mask"], 2)
    policy = attach(model, tokenizer, lora_rank=4, lora_alpha=8, critic=False)
    assert policy.lora and policy.reference is None  # no second copy of the weights
    trainable = {n for n, p in policy.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    with torch.no_grad():  # move the adapters away from their zero start: the policy changes, the reference not
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.add_(0.5)
    after = token_logprobs(policy.model, ids["input_ids"], ids["attention_mask"], 2)
    reference = policy.reference_logprobs(ids["input_ids"], ids["attention_mask"], 2, 1.0)
    assert not torch.allclose(after, before, atol=1e-3)
    torch.testing.assert_close(reference, before)


def test_adapters_start_as_the_identity() -> None:
    tokenizer = char_tokenizer("0123456789=")
    model = tiny_causal_lm("gpt2", tokenizer, width=32, seed=0)
    ids = tokenizer(["31=13"], return_tensors="pt")
    before = token_logprobs(model, ids["input_ids"], ids["attention_mask"], 2)
    torch.testing.assert_close(token_logprobs(add_lora(model, 4, 8), ids["input_ids"], ids["attention_mask"], 2),
                               before)  # fmt: skip


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("method", ["grpo", "ppo"])
def test_lora_runs_end_to_end_and_saves_the_merged_model(tmp_path: Path, arch: str, method: str) -> None:
    run = tmp_path / "run"
    result = train(LMConfig(arch=arch, method=method, run_dir=str(run), temperature=0.8, **TINY))  # type: ignore[arg-type]
    for row in result.metrics:  # one epoch of one minibatch: the ratio is 1 on every token
        assert row["clip_fraction"] == 0.0 and abs(row["approx_kl"]) < 1e-6
    assert result.metrics[0]["kl_ref_seq"] == pytest.approx(0.0, abs=1e-6)  # adapters at zero: pi = pi_ref
    assert result.metrics[1]["kl_ref_seq"] != 0.0  # the adapters trained
    assert (run / "adapter" / "adapter_config.json").is_file() and (run / "reference" / "config.json").is_file()
    model, tokenizer = AutoModelForCausalLM.from_pretrained(run / "model"), AutoTokenizer.from_pretrained(run / "model")
    again = evaluate(model, tokenizer, TASKS["sort"], TINY["eval_prompts"], random.Random(result.config.seed + 1))
    assert (again.success, again.reward) == (result.success, result.reward)
