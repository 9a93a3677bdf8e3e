"""The Gibbs check of docs/lm.md: on the bandit task, the total-variation distance of each
method's trained policy to the reverse-KL (Gibbs) optimum pi_ref exp(r / beta) / Z and to the
forward-KL optimum, over seeds and betas.

    .venv/bin/python benchmarks/lm_gibbs.py [--methods ppo rloo dr-grpo grpo] [--betas 0.05 0.3 0.5 5]
        [--seeds 1 2 3 4 5] [--steps 100]

Each run: ``task="bandit"``, ``sft_steps=0`` (the reference is the initial model, rebuilt from
the config), ``kl_coef=beta`` fixed, temperature 1, the defaults otherwise (16 prompts x 8
completions a step), one torch thread. pi_ref and pi are the exact next-token distributions
over the whole vocabulary. Prints one Markdown row per (method, beta): TV(pi, pi*) per seed,
TV(pi_ref, pi*), and the range of TV(pi, forward-KL optimum).
"""

from __future__ import annotations

import argparse

import torch
from transformers import PreTrainedModel
from transformers import PreTrainedTokenizerBase as Tokenizer

from ppokit.lm.config import LMConfig
from ppokit.lm.tasks import BANDIT_PROMPT, forward_kl_optimum, gibbs_optimum, total_variation
from ppokit.lm.trainer import make_model, make_task, train


def next_token(model: PreTrainedModel, tokenizer: Tokenizer) -> list[float]:
    with torch.no_grad():
        logits = model(**tokenizer([BANDIT_PROMPT], return_tensors="pt")).logits[0, -1]
    return [float(p) for p in torch.softmax(logits.double(), -1)]


def distances(method: str, beta: float, seed: int, steps: int) -> tuple[float, float, float]:
    """(TV(pi, pi*), TV(pi_ref, pi*), TV(pi, forward-KL optimum)) after ``steps`` steps."""
    config = LMConfig(task="bandit", method=method, seed=seed, sft_steps=0, steps=steps, kl_coef=beta,  # type: ignore[arg-type]
                      eval_prompts=8)  # fmt: skip
    task = make_task(config)
    initial, tokenizer = make_model(config, task)
    texts = [str(tokenizer.decode([i], skip_special_tokens=True)) for i in range(len(tokenizer))]
    rewards = task.reward([BANDIT_PROMPT] * len(texts), texts)
    reference = next_token(initial, tokenizer)
    pi = next_token(train(config).model, tokenizer)
    target = gibbs_optimum(reference, rewards, beta)
    forward = forward_kl_optimum(reference, rewards, beta)
    return total_variation(pi, target), total_variation(reference, target), total_variation(pi, forward)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["ppo", "rloo", "dr-grpo", "grpo"])
    parser.add_argument("--betas", type=float, nargs="+", default=[0.05, 0.3, 0.5, 5.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = " | ".join(f"seed {s}" for s in args.seeds)
    print(f"| method | beta | TV(pi, pi*): {seeds} | TV(pi_ref, pi*) | TV(pi, forward-KL optimum) |")
    print("|---|---|" + "---|" * len(args.seeds) + "---|---|")
    for method in args.methods:
        for beta in args.betas:
            rows = [distances(method, beta, seed, args.steps) for seed in args.seeds]
            cells = " | ".join(f"{r[0]:.4f}" for r in rows)
            start = f"{min(r[1] for r in rows):.3f}-{max(r[1] for r in rows):.3f}"
            forward = f"{min(r[2] for r in rows):.3f}-{max(r[2] for r in rows):.3f}"
            print(f"| {method} | {beta:g} | {cells} | {start} | {forward} |", flush=True)


if __name__ == "__main__":
    main()
