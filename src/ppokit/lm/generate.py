"""Sampling completions with the model's KV cache, and the explicit completion mask.

The mask is computed from where each completion's first EOS is, never from pad ids: with
``pad_token_id == eos_token_id`` (as many released models ship) a pad-based mask would cut
every completion at its EOS minus one, or keep padding. A completion without an EOS was cut
by ``max_new_tokens``: a truncation, flagged so that the trainer bootstraps or penalizes it
explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import GenerationConfig, PreTrainedModel
from transformers import PreTrainedTokenizerBase as Tokenizer


@dataclass(frozen=True)
class Completions:
    """Prompts (left-padded) and the sampled completions, ``[B, P]`` and ``[B, L]``."""

    prompt_ids: Tensor
    prompt_mask: Tensor
    completion_ids: Tensor
    completion_mask: Tensor  # float: 1 on each completion's tokens up to and including its first EOS
    ended: Tensor  # [B] bool: the completion ended with EOS; ~ended: truncated by max_new_tokens

    @property
    def input_ids(self) -> Tensor:
        return torch.cat([self.prompt_ids, self.completion_ids], dim=1)

    @property
    def attention_mask(self) -> Tensor:
        return torch.cat([self.prompt_mask, self.completion_mask.to(self.prompt_mask.dtype)], dim=1)

    @property
    def lengths(self) -> Tensor:
        """Tokens per completion, its EOS included."""
        return self.completion_mask.sum(-1).long()


def completion_mask(completion_ids: Tensor, eos_id: int) -> tuple[Tensor, Tensor]:
    """``(mask, ended)``: 1 up to and including the first EOS of each row (the whole row when
    there is none), and whether the row has an EOS."""
    is_eos = completion_ids == eos_id
    ended = is_eos.any(dim=-1)
    # Tokens strictly after the first EOS are those with an EOS before them.
    after = (is_eos.long().cumsum(-1) - is_eos.long()) > 0
    return (~after).float(), ended


@torch.no_grad()
def sample(
    model: PreTrainedModel, tokenizer: Tokenizer, prompts: list[str], max_new_tokens: int, temperature: float = 1.0,
    greedy: bool = False,
) -> Completions:  # fmt: skip
    """Sample one completion per prompt at ``temperature`` with no top-k or top-p filtering
    (``generate`` would apply top_k=50 unless told), from torch's global RNG; ``greedy``
    takes the most likely token instead (evaluation)."""
    enc = tokenizer(prompts, padding=True, return_tensors="pt").to(model.device)
    config = plain_generation(max_new_tokens, temperature, greedy, tokenizer.pad_token_id, tokenizer.eos_token_id)
    sequences = model.generate(**enc, generation_config=config)  # type: ignore[operator]  # typed as a Module attribute
    completion_ids = sequences[:, enc["input_ids"].shape[1] :]
    mask, ended = completion_mask(completion_ids, int(tokenizer.eos_token_id))
    return Completions(enc["input_ids"], enc["attention_mask"], completion_ids, mask, ended)


def plain_generation(
    max_new_tokens: int, temperature: float, greedy: bool, pad_id: int | None, eos_id: int | None
) -> GenerationConfig:
    """Sampling from softmax(logits / temperature) and nothing else. ``generate`` fills every
    field left at its global default from the model's own ``generation_config.json``, so each
    logits processor a released model may ship (repetition penalty, n-gram blocking, suppressed
    tokens, a minimum length, top-k / top-p / min-p...) is set to its no-op value here: the
    log-probs of the loss must be those of the distribution that sampled."""
    neutral = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "min_new_tokens": 0,
               "suppress_tokens": [], "begin_suppress_tokens": [], "top_k": 0, "top_p": 1.0, "min_p": 0.0,
               "typical_p": 1.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0, "encoder_repetition_penalty": 1.0,
               "num_beams": 1, "renormalize_logits": False}  # fmt: skip
    sampling = {"do_sample": False} if greedy else {"do_sample": True, "temperature": temperature}
    return GenerationConfig(max_new_tokens=max_new_tokens, pad_token_id=pad_id, eos_token_id=eos_id, **neutral,  # type: ignore[no-untyped-call]
                            **sampling)  # fmt: skip


def decode(tokenizer: Tokenizer, completions: Completions) -> list[str]:
    """Each completion's text up to its EOS (the EOS itself left out)."""
    texts: list[str] = []
    for ids, n, ended in zip(completions.completion_ids, completions.lengths, completions.ended, strict=True):
        real = ids[: int(n) - int(bool(ended))]
        texts.append(str(tokenizer.decode(real, skip_special_tokens=True)))
    return texts
