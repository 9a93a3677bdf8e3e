"""Causal language models as ``transformers`` builds them, and per-token log-probabilities.

``tiny_causal_lm`` builds a small GPT-2 or Llama from a config (random weights, dropout off),
the one model path of the built-in tasks: no hand-written transformer, and any Hugging Face
causal LM goes through the same functions. ``token_logprobs`` is what the ratio, the KL to
the reference and the entropy are computed from.
"""

from __future__ import annotations

import torch
from torch import Tensor
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedModel
from transformers import PreTrainedTokenizerBase as Tokenizer

from ppokit.errors import ConfigError
from ppokit.lm.config import Architecture


def tiny_causal_lm(
    arch: Architecture, tokenizer: Tokenizer, *, width: int = 64, layers: int = 2, heads: int = 2,
    context: int = 128, seed: int = 0,
) -> PreTrainedModel:  # fmt: skip
    """A small causal LM of ``arch`` for ``tokenizer``'s vocabulary, with dropout off (the
    ratio of PPO must be exactly 1 before the first step)."""
    ids = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
           "eos_token_id": tokenizer.eos_token_id, "bos_token_id": tokenizer.eos_token_id}  # fmt: skip
    torch.manual_seed(seed)
    model: PreTrainedModel
    if arch == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(n_positions=context, n_embd=width, n_layer=layers, n_head=heads,
                                           resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **ids))  # fmt: skip
    elif arch == "llama":
        config = LlamaConfig(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
                             num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=context,
                             attention_dropout=0.0, **ids)  # fmt: skip
        model = LlamaForCausalLM(config)
    else:
        raise ValueError(f"tiny_causal_lm: unknown architecture {arch!r}; allowed: gpt2, llama")
    model.eval()  # type: ignore[no-untyped-call]  # transformers' override of Module.eval is untyped
    return model


def load_causal_lm(folder: str) -> tuple[PreTrainedModel, Tokenizer]:
    """A causal LM and its tokenizer from a local folder (``save_pretrained``'s); the tokenizer
    pads on the left (prompts end where generation starts) and must have a pad token."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder)
    except Exception as e:  # a folder with a config.json that transformers cannot load, in any way
        raise ConfigError("lm.model", f"cannot load {folder} ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if tokenizer.pad_token_id is None:
        raise ConfigError("lm.model", f"{folder}'s tokenizer has no pad token; allowed: one with a pad token "
                                      "(set tokenizer.pad_token = tokenizer.eos_token and save it)")  # fmt: skip
    tokenizer.padding_side = "left"
    model.eval()  # type: ignore[no-untyped-call]  # transformers' override of Module.eval is untyped
    return model, tokenizer


def position_ids(attention_mask: Tensor) -> Tensor:
    """Positions that start at 0 on each sequence's first real token: a left-padded prompt
    must see the positions it would see unpadded."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def token_logprobs(
    model: PreTrainedModel, input_ids: Tensor, attention_mask: Tensor, start: int, temperature: float = 1.0,
    chunk: int = 0,
) -> Tensor:  # fmt: skip
    """log pi(x_t | x_<t) of the tokens ``input_ids[:, start:]``, ``[B, L - start]``, under the
    logits divided by ``temperature`` (the distribution sampling drew from, with no top-k or
    top-p filtering). ``chunk``: see ``selective_logprobs``."""
    _check_start(start, input_ids)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask)).logits
    return selective_logprobs(logits[:, start - 1 : -1], input_ids[:, start:], temperature, chunk)


def token_logprobs_and_hidden(
    model: PreTrainedModel, input_ids: Tensor, attention_mask: Tensor, start: int, temperature: float = 1.0
) -> tuple[Tensor, Tensor]:
    """``token_logprobs`` and, from the same forward pass, the last layer's hidden states
    ``[B, L - start + 1, H]`` at the positions that predict each completion token and at the
    last position (the state after the last token: a truncated completion bootstraps from it)."""
    _check_start(start, input_ids)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
                output_hidden_states=True)  # fmt: skip
    logp = selective_logprobs(out.logits[:, start - 1 : -1], input_ids[:, start:], temperature)
    return logp, out.hidden_states[-1][:, start - 1 :]


def selective_logprobs(logits: Tensor, targets: Tensor, temperature: float = 1.0, chunk: int = 0) -> Tensor:
    """log softmax(logits / temperature) at ``targets``, ``[B, L]``: each position's target
    logit minus the logsumexp of its row, so no ``[B, L, V]`` log-softmax is materialized
    beside the logits; ``chunk`` > 0 converts and reduces that many positions at a time (long
    sequences, large vocabularies)."""
    step = chunk if chunk > 0 else logits.shape[1]
    parts = []
    for i in range(0, logits.shape[1], step):
        scaled = logits[:, i : i + step].float() / temperature
        picked = scaled.gather(-1, targets[:, i : i + step, None]).squeeze(-1)
        parts.append(picked - torch.logsumexp(scaled, dim=-1))
    return torch.cat(parts, dim=1)


def _check_start(start: int, input_ids: Tensor) -> None:
    if not 0 < start < input_ids.shape[1]:
        raise ValueError(f"token_logprobs: start {start} must lie inside the sequence of {input_ids.shape[1]}")
