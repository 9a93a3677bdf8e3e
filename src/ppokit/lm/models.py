"""Causal language models as ``transformers`` builds them, and per-token log-probabilities.

``tiny_causal_lm`` builds a small GPT-2 or Llama from a config (random weights, dropout off),
the one model path of the built-in tasks: no hand-written transformer, and any Hugging Face
causal LM goes through the same functions. ``token_logprobs`` is what the ratio, the KL to
the reference and the entropy are computed from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn
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
    if len(tokenizer) <= 1:  # transformers builds an empty tokenizer for a folder without tokenizer files
        raise ConfigError("lm.model", f"{folder} holds no tokenizer; allowed: a folder with the model's tokenizer "
                                      "(tokenizer.save_pretrained there)")  # fmt: skip
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


@dataclass(frozen=True)
class TokenScores:
    """What one forward pass gives of the tokens ``input_ids[:, start:]``."""

    logprobs: Tensor  # [B, L] log pi(x_t | x_<t) under logits / temperature
    hidden: Tensor | None  # [B, L + 1, H] the last layer at the positions predicting each token, and after the last
    entropy: Tensor | None  # [B, L] entropy of each position's distribution (no gradient)


def score_tokens(
    model: nn.Module, input_ids: Tensor, attention_mask: Tensor, start: int, temperature: float = 1.0, *,
    hidden: bool = False, entropy: bool = False, chunk: int = 0,
) -> TokenScores:  # fmt: skip
    """One forward pass: the log-probs of the completion tokens (the distribution sampling drew
    from: logits divided by ``temperature``, no top-k or top-p filtering), and on request the
    hidden states a value head reads and the per-position entropy. Position ids come from the
    attention mask. ``chunk``: see ``selective_logprobs``."""
    _check_start(start, input_ids)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
                output_hidden_states=hidden, use_cache=False)  # fmt: skip
    logits = out.logits[:, start - 1 : -1]
    logp = selective_logprobs(logits, input_ids[:, start:], temperature, chunk)
    states = out.hidden_states[-1][:, start - 1 :] if hidden else None
    return TokenScores(logp, states, selective_entropy(logits, temperature, chunk) if entropy else None)


def token_logprobs(
    model: PreTrainedModel, input_ids: Tensor, attention_mask: Tensor, start: int, temperature: float = 1.0,
    chunk: int = 0,
) -> Tensor:  # fmt: skip
    """log pi(x_t | x_<t) of the tokens ``input_ids[:, start:]``, ``[B, L - start]`` (``score_tokens``)."""
    return score_tokens(model, input_ids, attention_mask, start, temperature, chunk=chunk).logprobs


def last_hidden(trunk: nn.Module, input_ids: Tensor, attention_mask: Tensor, start: int) -> Tensor:
    """A trunk's last hidden states ``[B, L - start + 1, H]`` at the positions that predict each
    token of ``input_ids[:, start:]`` and at the last one (a critic model's ``base_model``: no
    logits)."""
    _check_start(start, input_ids)
    positions = position_ids(attention_mask)
    out = trunk(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions)
    hidden: Tensor = out.last_hidden_state[:, start - 1 :]
    return hidden


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


@torch.no_grad()
def selective_entropy(logits: Tensor, temperature: float = 1.0, chunk: int = 0) -> Tensor:
    """The entropy of softmax(logits / temperature) per position, ``[B, L]``:
    logsumexp(z) - sum softmax(z) z, ``chunk`` positions at a time."""
    step = chunk if chunk > 0 else logits.shape[1]
    parts = []
    for i in range(0, logits.shape[1], step):
        scaled = logits[:, i : i + step].float() / temperature
        parts.append(torch.logsumexp(scaled, dim=-1) - (scaled.softmax(-1) * scaled).sum(-1))
    return torch.cat(parts, dim=1)


def add_lora(model: PreTrainedModel, rank: int, alpha: int) -> PreTrainedModel:
    """``model`` with LoRA adapters (``peft``) of ``rank`` on every linear layer but the output
    head; only the adapters train. Dropout stays off (the first ratio must be exactly 1). The
    base weights are the reference: ``model.disable_adapter()`` gives it back, with no copy."""
    from peft import LoraConfig, get_peft_model

    conv1d = getattr(model.config, "model_type", "") == "gpt2"  # GPT-2's linear layers store weights transposed
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules="all-linear", fan_in_fan_out=conv1d)
    wrapped = cast(PreTrainedModel, get_peft_model(model, config))  # a PeftModel: the same interface
    wrapped.eval()  # type: ignore[no-untyped-call]
    return wrapped


def context_length(model: PreTrainedModel) -> int | None:
    """The longest sequence the model's positions allow, if its config says."""
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(model.config, name, None)
        if isinstance(value, int):
            return value
    return None


def _check_start(start: int, input_ids: Tensor) -> None:
    if not 0 < start < input_ids.shape[1]:
        raise ValueError(f"token_logprobs: start {start} must lie inside the sequence of {input_ids.shape[1]}")
