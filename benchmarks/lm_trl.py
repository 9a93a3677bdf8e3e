"""ppokit's GRPO against TRL's ``GRPOTrainer`` on the same run: reward curves, greedy success, speed, memory.

    .venv/bin/python benchmarks/lm_trl.py [--seeds 1 2 3] [--steps 150] [--sft-steps 15]
                                          [--speed-repeats 5] [--speed-steps 20] [--threads 1]
                                          [--out /tmp/lm_trl.json] [--figure docs/img/lm/trl-grpo-sort.png]
                                          [--no-figure] [--quick]

**One starting point.** Per seed, ppokit builds the SFT model once: the tiny GPT-2 of
``LMConfig`` (2 layers x 64 wide, the character tokenizer of the ``sort`` task, pad ``<pad>``
and EOS ``<eos>`` distinct, left padding) trained ``--sft-steps`` supervised steps on the task's
answers (``make_model`` + ``sft``), and ``save_pretrained``s model and tokenizer to a temporary
folder. ppokit trains from that folder (``LMConfig(model=<folder>, sft_steps=0, method="grpo")``,
its reference is the loaded model); TRL loads the same folder (``load_causal_lm``: the same
``from_pretrained`` calls, fp32) and builds its reference from it.

**One setup.** Both (the old log-probs too: one optimizer step per batch, both take the loss
forward's own, detached): the ``sort`` task's prompts (four digits and ``=``, always 5 tokens, so no
prompt is ever padded) and ``sort_reward`` (TRL gets it wrapped to its reward signature); 16
prompts x 8 completions = 128 completions per step, at most 6 new tokens (the task's
``max_new_tokens``), temperature 1 with no top-k / top-p filtering; group z-score advantages;
the per-token clipped surrogate (epsilon 0.2) plus 0.04 x k3 KL to the reference, reduced per
sequence then over sequences (TRL ``loss_type="grpo"`` = ppokit's ``seq-mean-token-mean``); one
optimizer step per generation batch (TRL: ``per_device_train_batch_size=128``,
``gradient_accumulation_steps=1``, ``num_iterations=1``); ``torch.optim.AdamW(lr=1e-3)`` with torch's
defaults (TRL is handed the same optimizer object, with a constant schedule); gradient norm
clipped to 1. The prompts are the same too: TRL's in-memory ``datasets.Dataset`` holds the
``steps x 16`` prompts that ppokit's generator draws from ``random.Random(seed)``, in the order
ppokit draws them (``shuffle_dataset=False``). TRL runs on the CPU in fp32 with gradient
checkpointing off (TRL turns it on by default; ppokit does not recompute activations), no
logging, saving, evaluation or reporting. What differs is listed under ``MISMATCHES``.

**Measured.** Per step: the mean sampled reward (ppokit: its ``reward_mean`` metric; TRL: the
mean of what its reward function was given) and the seconds per step, by one clock on both
sides (``sampling_clock``): each framework samples a step's completions in one ``generate``
call, and the time between consecutive sampling calls is one whole step (so ``steps - 1`` steps
are timed). After training: greedy exact success and mean reward on the same 128
prompts (``ppokit.lm.trainer.evaluate``, ``random.Random(seed + 1)``) for both models. Every run
is a fresh process (``subprocess`` of this script, ``torch.set_num_threads(--threads)``)
that reports ``ru_maxrss`` after its imports and at its end. Speed: ``--speed-repeats`` pairs of
``--speed-steps``-step runs from the seed-1 model, interleaved (the pair's order alternates),
each run's median seconds per step after ``WARMUP_STEPS``; the ratio ppokit / TRL steps/s is
the median over pairs of TRL's median over ppokit's. The full-length runs (ppokit then TRL, per
seed) give their step medians and totals too.

``--quick`` (1 seed, 10 steps, 2 speed pairs of 6 steps) checks the script end to end.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedModel
    from transformers import PreTrainedTokenizerBase as Tokenizer

    from ppokit.lm.config import LMConfig

TASK = "sort"
PROMPTS_PER_STEP = 16
GROUP_SIZE = 8
LEARNING_RATE = 1e-3
KL_COEF = 0.04
CLIP = 0.2
MAX_GRAD_NORM = 1.0
EVAL_PROMPTS = 128
WARMUP_STEPS = 2  # speed: each run's first steps are left out of its median
FRAMEWORKS = ("ppokit", "trl")
DEFAULT_FIGURE = Path(__file__).resolve().parent.parent / "docs" / "img" / "lm" / "trl-grpo-sort.png"

MISMATCHES = (
    "group std: TRL divides by the unbiased std (n - 1) + 1e-4, ppokit by the population std + 1e-8: "
    "TRL's advantages are sqrt(7/8) = 0.935x ppokit's on a group of 8 with spread",
    "log-probs: TRL's fused LM head (chunked, from the hidden states); ppokit's logits then logsumexp",
    "sampling RNG: the same seeds, but the frameworks consume torch's RNG differently, so completions differ",
    "model mode: TRL trains in train() mode, ppokit in eval() mode (the tiny model has no dropout: no effect)",
)


@dataclass
class RunResult:
    framework: str
    seed: int
    steps: int
    rewards: list[float]  # mean sampled reward per step
    success: list[float]  # sampled exact-success rate per step
    kl: list[float]  # mean per-token k3 KL to the reference per step (as each framework logs it)
    step_seconds: list[float]
    eval_success: float  # greedy, EVAL_PROMPTS prompts
    eval_reward: float
    threads: int = 0
    rss_after_imports_mb: float = math.nan
    peak_rss_mb: float = math.nan
    wall_seconds: float = math.nan  # the whole child process after its imports
    warnings: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)  # torch, transformers, trl, and ppokit's lm source


# --- The shared start: the SFT model, saved --------------------------------------------------


def build_sft_model(folder: Path, seed: int, sft_steps: int) -> None:
    """ppokit's SFT stage on the sort task, saved with ``save_pretrained`` (model + tokenizer)."""
    from ppokit.lm.config import LMConfig
    from ppokit.lm.trainer import make_model, make_task, sft

    config = LMConfig(task=TASK, seed=seed, sft_steps=sft_steps).validate()
    task = make_task(config)
    model, tokenizer = make_model(config, task)
    sft(model, tokenizer, task, config, random.Random(seed))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def sft_eval(folder: Path, seed: int) -> tuple[float, float]:
    """The saved SFT model's greedy (success, reward) on the evaluation prompts."""
    from ppokit.lm.models import load_causal_lm

    model, tokenizer = load_causal_lm(str(folder))
    return greedy_eval(model, tokenizer, seed)


def rl_config(folder: Path, seed: int, steps: int) -> LMConfig:
    from ppokit.lm.config import LMConfig

    return LMConfig(task=TASK, model=str(folder), sft_steps=0, method="grpo", seed=seed, steps=steps,
                    prompts_per_step=PROMPTS_PER_STEP, group_size=GROUP_SIZE, temperature=1.0,
                    learning_rate=LEARNING_RATE, epochs=1, minibatch_size=PROMPTS_PER_STEP * GROUP_SIZE,
                    clip_low=CLIP, kl_coef=KL_COEF, max_grad_norm=MAX_GRAD_NORM,
                    eval_prompts=EVAL_PROMPTS).validate()  # fmt: skip


def training_prompts(seed: int, steps: int) -> list[str]:
    """The prompts ppokit's GRPO draws, in its order: ``PROMPTS_PER_STEP`` per step from
    ``random.Random(seed)`` (``train`` seeds it so when ``sft_steps`` is 0)."""
    from ppokit.lm.tasks import get_task

    rng = random.Random(seed)
    task = get_task(TASK)
    return [task.prompt(rng) for _ in range(steps * PROMPTS_PER_STEP)]


def greedy_eval(model: PreTrainedModel, tokenizer: Tokenizer, seed: int) -> tuple[float, float]:
    """(success, mean reward) of greedy completions on ``EVAL_PROMPTS`` prompts of ``Random(seed + 1)``."""
    from ppokit.lm.tasks import get_task
    from ppokit.lm.trainer import evaluate

    model.eval()  # type: ignore[no-untyped-call]
    result = evaluate(model, tokenizer, get_task(TASK), EVAL_PROMPTS, random.Random(seed + 1))
    return result.success, result.reward


# --- The clock: one sampling ``generate`` call per step, in both frameworks -------------------


@contextmanager
def sampling_clock(stamps: list[float]) -> Iterator[None]:
    """Stamp the start of every sampling ``generate`` call of any model (greedy ones are not
    stamped): each framework samples a step's 128 completions in one call, so consecutive stamps
    bound one whole step (sampling, scoring, reference log-probs, loss, backward, optimizer step,
    the framework's bookkeeping and the next step's prompts), measured the same way on both."""
    from transformers.generation.utils import GenerationMixin

    original = GenerationMixin.generate

    def generate(self: Any, *args: Any, **kwargs: Any) -> Any:
        config = kwargs.get("generation_config")
        if kwargs.get("do_sample", getattr(config, "do_sample", False)):
            stamps.append(time.perf_counter())
        return original(self, *args, **kwargs)

    GenerationMixin.generate = generate  # type: ignore[method-assign]
    try:
        yield
    finally:
        GenerationMixin.generate = original  # type: ignore[method-assign]


def step_times(stamps: list[float], steps: int) -> list[float]:
    """Seconds of steps 1 .. steps - 1 (the last step has no next sampling call to end it)."""
    if len(stamps) != steps:
        raise RuntimeError(f"{len(stamps)} sampling generate calls, expected one per step ({steps})")
    return [b - a for a, b in itertools.pairwise(stamps)]


# --- ppokit ----------------------------------------------------------------------------------


def run_ppokit(folder: Path, seed: int, steps: int) -> RunResult:
    from ppokit.lm.trainer import train

    stamps: list[float] = []
    with sampling_clock(stamps):
        result = train(rl_config(folder, seed, steps))
    success, reward = greedy_eval(result.model, result.tokenizer, seed)
    m = result.metrics
    return RunResult("ppokit", seed, steps, [x["reward_mean"] for x in m], [x["success"] for x in m],
                     [x["kl_ref"] for x in m], step_times(stamps, steps), success, reward)  # fmt: skip


# --- TRL -------------------------------------------------------------------------------------


def trl_reward(log: dict[str, list[float]]) -> Callable[..., list[float]]:
    """``sort_reward`` with TRL's reward signature; it records each step's mean reward and success."""
    from ppokit.lm.tasks import get_task, sort_reward

    task = get_task(TASK)

    def sort(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
        rewards = sort_reward(prompts, completions)
        log["rewards"].append(sum(rewards) / len(rewards))
        hits = task.success(prompts, completions)
        log["success"].append(sum(hits) / len(hits))
        return rewards

    return sort


def run_trl(folder: Path, seed: int, steps: int, work_dir: Path) -> RunResult:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from ppokit.lm.models import load_causal_lm

    model, tokenizer = load_causal_lm(str(folder))
    if model.dtype != torch.float32:
        raise RuntimeError(f"the model loaded as {model.dtype}, expected float32")
    batch = PROMPTS_PER_STEP * GROUP_SIZE
    args = GRPOConfig(
        output_dir=str(work_dir), use_cpu=True, bf16=False, fp16=False, seed=seed, data_seed=seed,
        max_steps=steps, per_device_train_batch_size=batch, gradient_accumulation_steps=1, num_iterations=1,
        num_generations=GROUP_SIZE, max_completion_length=6, temperature=1.0, top_k=0, top_p=1.0,
        learning_rate=LEARNING_RATE, lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=MAX_GRAD_NORM,
        beta=KL_COEF, epsilon=CLIP, loss_type="grpo", scale_rewards="group", shuffle_dataset=False,
        activation_checkpointing=False, disable_dropout=True, report_to="none", logging_strategy="no",
        save_strategy="no", eval_strategy="no", disable_tqdm=True, log_completions=False,
        dataloader_num_workers=0,
    )  # fmt: skip
    dataset = Dataset.from_dict({"prompt": training_prompts(seed, steps)})
    log: dict[str, list[float]] = {"rewards": [], "success": []}
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)  # ppokit's: torch's defaults
    kl: list[float] = []
    trainers: list[GRPOTrainer] = []

    class KLLog(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            kl.append(float(trainers[0]._metrics["train"]["kl"][-1]))  # logging is off: nothing clears it

    trainer = GRPOTrainer(model=model, reward_funcs=trl_reward(log), args=args, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[KLLog()],
                          optimizers=(optimizer, None))  # fmt: skip
    trainers.append(trainer)
    stamps: list[float] = []
    with sampling_clock(stamps):
        trainer.train()
    if len(log["rewards"]) != steps:
        raise RuntimeError(f"TRL called its reward function {len(log['rewards'])} times, expected {steps}")
    times = step_times(stamps, steps)
    success, reward = greedy_eval(trainer.model, tokenizer, seed)
    return RunResult("trl", seed, steps, log["rewards"], log["success"], kl, times, success, reward)


# --- One run per process ---------------------------------------------------------------------


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def versions() -> dict[str, str]:
    """The libraries' versions, and a hash of the ppokit.lm source this process imported."""
    import hashlib
    import importlib.metadata

    import ppokit.lm

    lm = Path(ppokit.lm.__file__).parent
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(lm.glob("*.py")))).hexdigest()[:12]
    found = {name: importlib.metadata.version(name) for name in ("torch", "transformers", "trl", "datasets")}
    return found | {"ppokit_lm_dir": str(lm), "ppokit_lm_sha256": digest}


def child(framework: str, folder: Path, seed: int, steps: int, threads: int, out: Path) -> None:
    """One run in this process: the framework's imports, then the run; its RunResult as JSON."""
    import warnings

    import torch
    import transformers

    import ppokit.lm.trainer  # noqa: F401

    if framework == "trl":
        import datasets  # noqa: F401
        import trl  # noqa: F401
    torch.set_num_threads(threads)
    transformers.logging.set_verbosity_error()
    after_imports = _rss_mb()
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught, tempfile.TemporaryDirectory() as work:
        warnings.simplefilter("always")
        result = run_ppokit(folder, seed, steps) if framework == "ppokit" else run_trl(folder, seed, steps, Path(work))
    result.wall_seconds = time.perf_counter() - start
    result.threads = torch.get_num_threads()
    result.rss_after_imports_mb = after_imports
    result.peak_rss_mb = _rss_mb()
    result.versions = versions()
    result.warnings = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0][:200]}" for w in caught})
    out.write_text(json.dumps(asdict(result)))


def run_in_process(framework: str, folder: Path, seed: int, steps: int, threads: int) -> RunResult:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, __file__, "--child", framework, "--model-dir", str(folder), "--seeds", str(seed),
               "--steps", str(steps), "--threads", str(threads), "--out", str(out)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{framework} seed {seed} failed ({done.returncode}):\n{done.stderr[-4000:]}")
        return RunResult(**json.loads(out.read_text()))


# --- Summaries -------------------------------------------------------------------------------


def mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def steady_median(times: Sequence[float]) -> float:
    """The median seconds per step after the first ``WARMUP_STEPS`` (all of them if there are no more)."""
    rest = times[WARMUP_STEPS:] if len(times) > WARMUP_STEPS else times
    return statistics.median(rest)


def full_run_table(runs: list[RunResult]) -> str:
    head = ("| framework | seed | reward, first 10 steps | reward, last 10 steps | greedy success | greedy reward "
            "| s/step (median) | training s (sum of steps) | process s | KL last 10 | RSS after imports MB "
            "| peak RSS MB | peak - imports MB |")  # fmt: skip
    rows = [head, "|" + "---|" * 13]
    for r in runs:
        rows.append(f"| {r.framework} | {r.seed} | {mean(r.rewards[:10]):.3f} | {mean(r.rewards[-10:]):.3f} "
                    f"| {r.eval_success:.3f} | {r.eval_reward:.3f} | {steady_median(r.step_seconds):.4f} "
                    f"| {sum(r.step_seconds):.1f} | {r.wall_seconds:.1f} | {mean(r.kl[-10:]):.4f} "
                    f"| {r.rss_after_imports_mb:.0f} | {r.peak_rss_mb:.0f} "
                    f"| {r.peak_rss_mb - r.rss_after_imports_mb:.0f} |")  # fmt: skip
    for fw in FRAMEWORKS:
        mine = [r for r in runs if r.framework == fw]
        if len(mine) > 1:
            med = statistics.median
            rows.append(f"| **{fw} median** | - | {med(mean(r.rewards[:10]) for r in mine):.3f} "
                        f"| {med(mean(r.rewards[-10:]) for r in mine):.3f} | {med(r.eval_success for r in mine):.3f} "
                        f"| {med(r.eval_reward for r in mine):.3f} "
                        f"| {med(steady_median(r.step_seconds) for r in mine):.4f} "
                        f"| {med(sum(r.step_seconds) for r in mine):.1f} | {med(r.wall_seconds for r in mine):.1f} "
                        f"| {med(mean(r.kl[-10:]) for r in mine):.4f} "
                        f"| {med(r.rss_after_imports_mb for r in mine):.0f} "
                        f"| {med(r.peak_rss_mb for r in mine):.0f} "
                        f"| {med(r.peak_rss_mb - r.rss_after_imports_mb for r in mine):.0f} |")  # fmt: skip
    return "\n".join(rows)


def speed_table(pairs: list[tuple[RunResult, RunResult]], full: list[RunResult]) -> tuple[str, dict[str, float]]:
    """Per interleaved pair: each side's median s/step and the ratio; then the medians, and the full runs'."""
    rows = ["| pair | order | ppokit s/step | TRL s/step | ppokit/TRL steps/s |", "|---|---|---|---|---|"]
    ratios = []
    for i, (p, t) in enumerate(pairs):
        ratio = steady_median(t.step_seconds) / steady_median(p.step_seconds)
        ratios.append(ratio)
        order = "ppokit, TRL" if i % 2 == 0 else "TRL, ppokit"
        rows.append(f"| {i + 1} | {order} | {steady_median(p.step_seconds):.4f} | {steady_median(t.step_seconds):.4f} "
                    f"| {ratio:.2f} |")  # fmt: skip
    summary: dict[str, float] = {}
    if pairs:
        summary = {
            "ppokit_s_per_step": statistics.median(steady_median(p.step_seconds) for p, _ in pairs),
            "trl_s_per_step": statistics.median(steady_median(t.step_seconds) for _, t in pairs),
            "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
        }
        rows.append(f"| **median** | - | {summary['ppokit_s_per_step']:.4f} | {summary['trl_s_per_step']:.4f} "
                    f"| **{summary['ratio_median']:.2f}** "
                    f"(range {summary['ratio_min']:.2f}-{summary['ratio_max']:.2f}) |")  # fmt: skip
    by_seed = {(r.framework, r.seed): r for r in full}
    full_ratios = [sum(by_seed["trl", s].step_seconds) / sum(by_seed["ppokit", s].step_seconds)
                   for fw, s in by_seed if fw == "ppokit" and ("trl", s) in by_seed]  # fmt: skip
    if full_ratios:
        summary["full_runs_total_ratio_median"] = statistics.median(full_ratios)
        rows.append(f"| full runs (total training s) | ppokit, TRL per seed | - | - "
                    f"| {summary['full_runs_total_ratio_median']:.2f} (per seed: "
                    f"{', '.join(f'{x:.2f}' for x in full_ratios)}) |")  # fmt: skip
    return "\n".join(rows), summary


def plot(runs: list[RunResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"ppokit": "tab:blue", "trl": "tab:orange"}
    fig, ax = plt.subplots(figsize=(7, 4))
    for fw in FRAMEWORKS:
        mine = [r for r in runs if r.framework == fw]
        for r in mine:
            ax.plot(range(1, r.steps + 1), r.rewards, color=colors[fw], alpha=0.25, lw=0.8)
        if mine:
            n = min(r.steps for r in mine)
            avg = [mean([r.rewards[i] for r in mine]) for i in range(n)]
            label = f"{'ppokit' if fw == 'ppokit' else 'TRL GRPOTrainer'} (mean of {len(mine)} seeds)"
            ax.plot(range(1, n + 1), avg, color=colors[fw], lw=2, label=label)
    ax.set_xlabel("RL step (128 completions)")
    ax.set_ylabel("mean sampled reward")
    ax.set_title("GRPO on sort from the same SFT model: ppokit vs TRL")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- Main ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=150, help="RL steps of the full runs")
    parser.add_argument("--sft-steps", type=int, default=15)
    parser.add_argument("--speed-repeats", type=int, default=5, help="interleaved pairs of short runs")
    parser.add_argument("--speed-steps", type=int, default=20, help="RL steps of each short run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every run")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "lm_trl.json")
    parser.add_argument("--figure", type=Path, default=DEFAULT_FIGURE)
    parser.add_argument("--no-figure", action="store_true")
    parser.add_argument("--quick", action="store_true", help="1 seed, 10 steps, 2 speed pairs of 6 steps")
    parser.add_argument("--child", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    a = parser.parse_args(argv)
    if a.child is not None:
        child(a.child, a.model_dir, a.seeds[0], a.steps, a.threads, a.out)
        return
    if a.quick:
        a.seeds, a.steps, a.speed_repeats, a.speed_steps = a.seeds[:1], 10, 2, 6

    started = time.perf_counter()
    full: list[RunResult] = []
    pairs: list[tuple[RunResult, RunResult]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folders: dict[int, Path] = {}
        start: dict[int, tuple[float, float]] = {}  # the SFT model's greedy (success, reward): where RL starts
        for seed in a.seeds:
            folders[seed] = Path(tmp) / f"sft-seed{seed}"
            build_sft_model(folders[seed], seed, a.sft_steps)
            start[seed] = sft_eval(folders[seed], seed)
        for seed in a.seeds:  # ppokit then TRL, per seed
            for fw in FRAMEWORKS:
                full.append(run_in_process(fw, folders[seed], seed, a.steps, a.threads))
                print(f"full run: {fw} seed {seed}: {sum(full[-1].step_seconds):.1f} s of steps", flush=True)
        for i in range(a.speed_repeats):  # the order alternates within pairs
            order = FRAMEWORKS if i % 2 == 0 else FRAMEWORKS[::-1]
            done = {fw: run_in_process(fw, folders[a.seeds[0]], a.seeds[0], a.speed_steps, a.threads) for fw in order}
            pairs.append((done["ppokit"], done["trl"]))
            print(f"speed pair {i + 1}: {[fw for fw in order]} done", flush=True)

    print(f"\n## Full runs: {a.steps} RL steps x {PROMPTS_PER_STEP * GROUP_SIZE} completions, "
          f"SFT {a.sft_steps} steps, seeds {a.seeds}, {a.threads} torch thread(s)\n")  # fmt: skip
    print(full_run_table(full))
    print("\nThe SFT model both start from, greedy on the same prompts: "
          + "; ".join(f"seed {s}: success {x[0]:.3f}, reward {x[1]:.3f}" for s, x in start.items()))  # fmt: skip
    speed, summary = speed_table(pairs, full)
    print(f"\n## Speed: {a.speed_repeats} interleaved pairs of {a.speed_steps}-step runs (seed {a.seeds[0]}), "
          f"medians after {WARMUP_STEPS} warm-up steps\n")  # fmt: skip
    print(speed)
    print("\n## Setup differences left\n")
    print("\n".join(f"- {m}" for m in MISMATCHES))
    for fw in FRAMEWORKS:
        seen = sorted({w for r in full if r.framework == fw for w in r.warnings})
        print(f"\n{fw} warnings ({len(seen)}):" + "".join(f"\n- {w}" for w in seen))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    record = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()},
              "full": [asdict(r) for r in full], "speed_pairs": [[asdict(p), asdict(t)] for p, t in pairs],
              "sft_start": {s: {"success": x[0], "reward": x[1]} for s, x in start.items()},
              "speed": summary, "mismatches": MISMATCHES}  # fmt: skip
    a.out.write_text(json.dumps(record, indent=1))
    print(f"\nwrote {a.out}")
    if not a.no_figure:
        plot(full, a.figure)
        print(f"wrote {a.figure}")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
