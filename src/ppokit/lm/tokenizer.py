"""A character-level tokenizer built locally (no download), as a ``transformers`` fast tokenizer.

Every character of the alphabet is one token; ``<eos>`` ends a completion, ``<pad>`` pads
(left, so that prompts end where generation starts). ``pad_is_eos`` makes the pad token the
EOS token, as many released models ship: masks never come from pad ids (``generate.py``), so
that must work too.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

EOS, PAD, UNK = "<eos>", "<pad>", "<unk>"


def char_tokenizer(alphabet: str, pad_is_eos: bool = False) -> PreTrainedTokenizerFast:
    """One token per character of ``alphabet`` (which must not repeat a character)."""
    if len(set(alphabet)) != len(alphabet) or not alphabet:
        raise ValueError(f"char_tokenizer: the alphabet must be non-empty characters without repeats, got {alphabet!r}")
    specials = [EOS, UNK] if pad_is_eos else [PAD, EOS, UNK]
    vocab = {token: i for i, token in enumerate([*specials, *alphabet])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]  # transformers' constructor is untyped
        tokenizer_object=backend,
        eos_token=EOS,
        pad_token=EOS if pad_is_eos else PAD,
        unk_token=UNK,
        padding_side="left",
    )
