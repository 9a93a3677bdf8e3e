"""Token-level RL for causal language models (in progress): the pieces that must be correct by
construction come first: a locally built tokenizer and tiny Hugging Face models for the
built-in tasks, sampling with an explicit completion mask and EOS / truncation flags, and
per-token log-probabilities at the sampling temperature. The trainer (GRPO, PPO with a value
head) builds on them and on ``ppokit.core``.
"""
