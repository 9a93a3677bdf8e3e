"""Does ``torch.compile`` pay in the language-model trainer's update? One GRPO minibatch step of
the default tiny model (the loss's forward through the model, backward, clipping, AdamW), eager
against the same step with the model compiled (``torch.compile(model)``).

    .venv/bin/python benchmarks/lm_compile.py [--arch gpt2] [--width 64] [--layers 2] [--repeats 5]

The minibatch: the default step's 128 completions (16 prompts x 8) of the sort task, sampled
from the untrained model, one torch thread. Printed: the compile (the first compiled step) and
the median milliseconds per step of ``--repeats`` loops of 10 steps, and the ratio.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="gpt2", choices=["gpt2", "llama"])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import torch

    from ppokit.lm.config import LMConfig
    from ppokit.lm.group import _batch, group_loss
    from ppokit.lm.policy import AdamW, attach
    from ppokit.lm.sampling import sample_and_score
    from ppokit.lm.trainer import make_model, make_task

    torch.set_num_threads(1)
    config = LMConfig(arch=args.arch, width=args.width, layers=args.layers).validate()
    task = make_task(config)
    model, tokenizer = make_model(config, task)
    policy = attach(model, tokenizer, 0, 8, critic=False)
    _, out, _, rewards = sample_and_score(policy, task, config, random.Random(0))
    advantages = (rewards - rewards.mean()) / (rewards.std() + 1e-8)
    batch, _ = _batch(policy, out, advantages, config.temperature, one_pass=False)
    optimizer = AdamW(policy.trainable(), config.learning_rate)

    def step() -> None:
        loss, _ = group_loss(policy, config, "token-mean", task.max_new_tokens, batch)
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.clip_grad_norm(config.max_grad_norm)
        optimizer.step()

    def timed() -> float:
        loops = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for _ in range(10):
                step()
            loops.append((time.perf_counter() - start) / 10 * 1e3)
        return statistics.median(loops)

    step()
    eager = timed()
    policy.model = torch.compile(model)  # type: ignore[assignment]  # the loss calls it as the model
    start = time.perf_counter()
    step()
    compile_s = time.perf_counter() - start
    compiled = timed()
    print(f"{args.arch}, width {args.width}, {args.layers} layers, minibatch {len(batch)} completions of "
          f"{batch.mask.shape[1]} tokens: eager {eager:.1f} ms per step, compiled model {compiled:.1f} ms "
          f"({eager / compiled:.2f}x), compiling {compile_s:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
