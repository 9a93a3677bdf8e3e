"""The results of docs/lm.md: each language-model method on a built-in task over seeds, from
one supervised model per seed (as the learning tests do), with the reward and the KL to the
reference over training as a figure.

    .venv/bin/python benchmarks/lm_results.py [--task sort] [--seeds 1 2 3] [--sft-steps 15]
        [--steps 150] [--methods grpo dr-grpo rloo ppo] [--figure docs/img/lm/sort-curves.png]
        [--json PATH] [--set field=value ...]

Per seed: ``ppokit lm sft`` (``lm.trainer.supervise``) writes the SFT model, then every method
trains from it (``model=<folder>, sft_steps=0``) with the defaults of ``LMConfig`` (16 prompts
x 8 completions a step, one epoch of one minibatch of 128; PPO the same 128 completions). It
prints a Markdown table: greedy success after SFT and after RL on the same 128 fresh prompts,
the sampled reward of the first and last 10 steps, and at the last step the KL to the
reference per completion (``kl_ref_seq``: k1 summed over a completion's tokens), the
entropy per token and the fraction of completions cut by the limit. One torch thread, as the
test suite. The figure plots the mean over seeds of ``reward_mean`` and ``kl_ref_seq`` per
step, one line per method.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import fields, replace
from pathlib import Path

import torch

from ppokit.config import parse_value
from ppokit.lm.config import LMConfig
from ppokit.lm.trainer import supervise, train


def _overrides(pairs: list[str]) -> dict[str, object]:
    names = {f.name for f in fields(LMConfig)}
    out: dict[str, object] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in names:
            raise SystemExit(f"--set {pair}: unknown field {key!r}")
        out[key] = parse_value(key, value)
    return out


def run(task: str, seeds: list[int], methods: list[str], sft_steps: int, steps: int,
        extra: dict[str, object]) -> list[dict[str, object]]:  # fmt: skip
    rows: list[dict[str, object]] = []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            base = replace(LMConfig(task=task, seed=seed, sft_steps=sft_steps), **extra)  # type: ignore[arg-type]
            folder, before = supervise(replace(base, run_dir=str(Path(tmp) / "sft")))
            for method in methods:
                config = replace(base, method=method, model=str(folder), sft_steps=0, steps=steps)  # type: ignore[arg-type]
                result = train(config)
                rewards = [m["reward_mean"] for m in result.metrics]
                last = result.metrics[-1]
                curves = {k: [m[k] for m in result.metrics] for k in ("reward_mean", "kl_ref_seq")}
                rows.append({"method": method, "seed": seed, "success_after_sft": before.success,
                             "success": result.success, "reward_first10": sum(rewards[:10]) / len(rewards[:10]),
                             "reward_last10": sum(rewards[-10:]) / len(rewards[-10:]),
                             "kl_ref_seq": last["kl_ref_seq"], "entropy": last["entropy"],
                             "truncated": last["truncated_fraction"],
                             "curves": curves})  # fmt: skip
                print(_line(rows[-1]), flush=True)
    return rows


def _line(row: dict[str, object]) -> str:
    keys = ("success_after_sft", "success", "reward_first10", "reward_last10", "kl_ref_seq", "entropy", "truncated")
    cells = [row["method"], row["seed"]] + [f"{row[k]:.3f}" for k in keys]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def figure(rows: list[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for method in dict.fromkeys(str(r["method"]) for r in rows):
        mine = [r["curves"] for r in rows if r["method"] == method]
        for ax, key in zip(axes, ("reward_mean", "kl_ref_seq"), strict=True):
            curves = [c[key] for c in mine]  # type: ignore[index]
            mean = [sum(v) / len(v) for v in zip(*curves, strict=True)]
            ax.plot(range(1, len(mean) + 1), mean, label=method)
    axes[0].set(title="sampled reward (mean over seeds)", xlabel="RL step")
    axes[1].set(title="KL to the reference per completion", xlabel="RL step")
    axes[0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="sort")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--methods", nargs="+", default=["grpo", "dr-grpo", "rloo", "ppo"])
    parser.add_argument("--sft-steps", type=int, default=15)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--figure", type=Path, help="Write the reward and KL curves here (PNG).")
    parser.add_argument("--json", type=Path, help="Write every row and curve here.")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="Any LMConfig field.")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the test suite runs (tests/conftest.py): the same numbers
    print(
        "| method | seed | greedy success after SFT | after RL | sampled reward, first 10 steps | last 10 steps "
        "| KL to the reference per completion, last step | entropy per token, last step | truncated, last step |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    rows = run(args.task, args.seeds, args.methods, args.sft_steps, args.steps, _overrides(args.set))
    if args.figure is not None:
        figure(rows, args.figure)
    if args.json is not None:
        args.json.write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
