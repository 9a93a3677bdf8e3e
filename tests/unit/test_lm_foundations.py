"""The language-model foundations: the local tokenizer, tiny GPT-2 / Llama models, per-token
log-probabilities (selective, chunked, left-padding safe), and sampling with an explicit
completion mask (pad = eos included) whose log-probabilities are those sampling drew from."""

from __future__ import annotations

import string

import pytest
import torch

pytest.importorskip("transformers")

from ppokit.lm.generate import completion_mask, sample
from ppokit.lm.models import position_ids, tiny_causal_lm, token_logprobs
from ppokit.lm.tokenizer import char_tokenizer

# More than 50 tokens: generate's default top_k=50 would filter, so the log-prob test can fail.
ALPHABET = string.ascii_letters + string.digits + " "
ARCHS = ["gpt2", "llama"]


def test_char_tokenizer_round_trips_and_pads_left() -> None:
    tok = char_tokenizer("0123456789 ")
    enc = tok(["12 3", "4"], padding=True, return_tensors="pt")
    assert enc["input_ids"].shape == (2, 4)
    assert enc["attention_mask"].tolist() == [[1, 1, 1, 1], [0, 0, 0, 1]]
    assert enc["input_ids"][1, :3].tolist() == [tok.pad_token_id] * 3
    assert tok.decode(enc["input_ids"][0]) == "12 3"
    assert tok.pad_token_id != tok.eos_token_id
    same = char_tokenizer("0123456789 ", pad_is_eos=True)
    assert same.pad_token_id == same.eos_token_id and len(same) == len(tok) - 1
    with pytest.raises(ValueError, match="without repeats"):
        char_tokenizer("aa")


@pytest.mark.parametrize("pad_equals_eos", [False, True])
def test_completion_mask_ends_at_the_first_eos_whatever_the_pad(pad_equals_eos: bool) -> None:
    eos = 1
    pad = eos if pad_equals_eos else 0
    ids = torch.tensor([[5, eos, pad, pad], [5, 6, 7, 8], [eos, pad, pad, pad], [5, 6, eos, eos]])
    mask, ended = completion_mask(ids, eos)
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 1, 0]]
    assert ended.tolist() == [True, False, True, True]


def test_position_ids_start_at_each_first_real_token() -> None:
    assert position_ids(torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])).tolist() == [[0, 0, 0, 1, 2],
                                                                                         [0, 1, 2, 3, 4]]  # fmt: skip


@pytest.mark.parametrize("arch", ARCHS)
def test_token_logprobs_are_the_log_softmax_of_the_scaled_logits(arch: str) -> None:
    tok = char_tokenizer(ALPHABET)
    model = tiny_causal_lm(arch, tok, width=32, seed=1)  # type: ignore[arg-type]  # a str of the Literal
    enc = tok(["hello", "ab"], padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    with torch.no_grad():
        got = token_logprobs(model, ids, mask, start=2, temperature=0.7)
        chunked = token_logprobs(model, ids, mask, start=2, temperature=0.7, chunk=2)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)).logits
    expected = torch.log_softmax(logits[:, 1:-1] / 0.7, -1).gather(-1, ids[:, 2:, None]).squeeze(-1)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(chunked, got)
    with pytest.raises(ValueError, match="inside the sequence"):
        token_logprobs(model, ids, mask, start=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_left_padding_does_not_change_the_log_probs(arch: str) -> None:
    """Position ids from the mask: a prompt padded on the left scores its completion as alone."""
    tok = char_tokenizer(ALPHABET)
    model = tiny_causal_lm(arch, tok, width=32, seed=2)  # type: ignore[arg-type]  # a str of the Literal
    alone = tok(["abc"], return_tensors="pt")
    batch = tok(["abc", "a longer prompt"], padding=True, return_tensors="pt")
    pad = batch["input_ids"].shape[1] - alone["input_ids"].shape[1]
    assert pad > 0
    with torch.no_grad():
        a = token_logprobs(model, alone["input_ids"], alone["attention_mask"], start=1)
        b = token_logprobs(model, batch["input_ids"], batch["attention_mask"], start=1)
    torch.testing.assert_close(b[0, pad:], a[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("pad_is_eos", [False, True])
def test_sampled_completions_are_masked_and_score_as_sampled(arch: str, pad_is_eos: bool) -> None:
    """The log-probs the trainer recomputes are those sampling drew from (temperature, no
    top-k): PPO's first ratio is exactly 1. Checked against ``generate``'s own scores."""
    tok = char_tokenizer(ALPHABET, pad_is_eos=pad_is_eos)
    model = tiny_causal_lm(arch, tok, width=32, seed=3)  # type: ignore[arg-type]  # a str of the Literal
    torch.manual_seed(0)
    prompts = ["abc", "hello world", "x"]
    out = sample(model, tok, prompts, max_new_tokens=12, temperature=0.8)
    b, length = out.completion_ids.shape
    assert out.prompt_ids.shape[0] == b == 3 and 1 <= length <= 12
    mask, ended = completion_mask(out.completion_ids, int(tok.eos_token_id))
    assert torch.equal(out.completion_mask, mask) and torch.equal(out.ended, ended)
    assert torch.equal(out.lengths, mask.sum(-1).long())
    # Replaying the sampler: the same seed through generate with its scores kept.
    torch.manual_seed(0)
    enc = tok(prompts, padding=True, return_tensors="pt")
    replay = model.generate(**enc, do_sample=True, top_k=0, top_p=1.0, temperature=0.8, max_new_tokens=12,
                            pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, output_scores=True,
                            return_dict_in_generate=True)  # fmt: skip
    assert torch.equal(replay.sequences[:, enc["input_ids"].shape[1] :], out.completion_ids)
    drawn = torch.stack([torch.log_softmax(s, -1) for s in replay.scores], 1)
    drawn = drawn.gather(-1, out.completion_ids[..., None]).squeeze(-1)
    with torch.no_grad():
        again = token_logprobs(model, out.input_ids, out.attention_mask, out.prompt_ids.shape[1], temperature=0.8)
    real = out.completion_mask.bool()
    torch.testing.assert_close(again[real], drawn[real], rtol=1e-4, atol=1e-4)
    assert float((again[real] - drawn[real]).exp().sub(1).abs().max()) < 1e-3  # ratio 1


def test_a_models_own_generation_config_does_not_change_what_is_sampled() -> None:
    """A released model's generation_config.json may ask for a repetition penalty, n-gram
    blocking, suppressed tokens, a minimum length, top-k or min-p: sampling ignores them all,
    or the loss's log-probs would score a distribution other than the one that sampled."""
    tokenizer = char_tokenizer("0123456789=")
    model = tiny_causal_lm("gpt2", tokenizer, width=32, seed=0)
    prompts = ["12=", "34=", "5="] * 10
    torch.manual_seed(3)
    clean = sample(model, tokenizer, prompts, 8).completion_ids
    shipped = model.generation_config
    shipped.repetition_penalty, shipped.no_repeat_ngram_size, shipped.suppress_tokens = 50.0, 1, [5]
    shipped.min_new_tokens, shipped.top_k, shipped.min_p = 5, 3, 0.5
    torch.manual_seed(3)
    assert torch.equal(sample(model, tokenizer, prompts, 8).completion_ids, clean)
