"""A reward model: a sequence classifier from a local folder (``transformers``'
``AutoModelForSequenceClassification`` with one label) whose logit of prompt + completion is
the reward, with the reward functions' interface."""

from __future__ import annotations

from typing import Any

import torch

from ppokit.errors import ConfigError


class RewardModel:
    """``reward(prompts, completions, **columns) -> list[float]``: the classifier's single logit
    of each prompt + completion text (columns are ignored), ``batch`` texts at a time, frozen."""

    def __init__(self, folder: str, device: torch.device | str = "cpu", batch: int = 64) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            self.model = AutoModelForSequenceClassification.from_pretrained(folder).to(device)
        except Exception as e:  # a folder transformers cannot load, in any way
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ConfigError("lm.reward_model", f"cannot load {folder} ({type(e).__name__}: {first})") from None
        if self.model.config.num_labels != 1:
            raise ConfigError("lm.reward_model", f"{folder} has {self.model.config.num_labels} labels; allowed: 1 "
                                                 "(a scalar score)")  # fmt: skip
        if len(self.tokenizer) <= 1:  # transformers builds an empty tokenizer for a folder without one
            raise ConfigError("lm.reward_model", f"{folder} holds no tokenizer; allowed: a folder with its tokenizer")
        if self.tokenizer.pad_token_id is None:
            raise ConfigError("lm.reward_model", f"{folder}'s tokenizer has no pad token; allowed: one with one")
        self.model.config.pad_token_id = self.tokenizer.pad_token_id  # the classifier reads its last real token
        self.model.eval().requires_grad_(False)
        self.batch = batch

    @torch.no_grad()
    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        texts = [p + c for p, c in zip(prompts, completions, strict=True)]
        scores: list[float] = []
        for i in range(0, len(texts), self.batch):
            limit = getattr(self.model.config, "max_position_embeddings", None) or getattr(
                self.model.config, "n_positions", None
            )  # longer texts keep their first tokens (the classifier cannot read more)
            enc = self.tokenizer(texts[i : i + self.batch], padding=True, padding_side="right", return_tensors="pt",
                                 truncation=limit is not None, max_length=limit)  # fmt: skip
            logits = self.model(**enc.to(self.model.device)).logits
            scores.extend(float(x) for x in logits[:, 0].float())
        return scores
