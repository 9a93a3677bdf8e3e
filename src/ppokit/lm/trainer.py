"""The language-model loop: prompts -> sample a group of completions each -> score -> group
advantages -> the shared update loop (``ppokit.core``) with a per-token clipped loss and the
KL to a frozen reference in it.

The reference is the model after the supervised (SFT) stage, as in practice: RL starts from
it and the KL term keeps the policy near it. Methods differ in one table entry (``LM_METHODS``):
how rewards become advantages, and how per-token terms are reduced.
"""

from __future__ import annotations

import copy
import json
import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Self

import torch
from torch import Tensor
from transformers import PreTrainedModel
from transformers import PreTrainedTokenizerBase as Tokenizer

from ppokit.core import losses
from ppokit.core.advantages import group_relative_advantages, rloo_advantages
from ppokit.core.reduce import Aggregation, aggregate
from ppokit.core.update import UpdatePlan, run_epochs, select_rows
from ppokit.io.checkpoint import atomic_write_text
from ppokit.io.loggers import JsonlLogger
from ppokit.io.run_dir import RunDir
from ppokit.lm.config import LMConfig
from ppokit.lm.generate import Completions, decode, sample
from ppokit.lm.metrics import completion_metrics
from ppokit.lm.models import load_causal_lm, tiny_causal_lm, token_logprobs
from ppokit.lm.ppo import ValueHead, ppo_step, sample_and_score
from ppokit.lm.rewards import load_prompts, load_reward
from ppokit.lm.tasks import Task, file_task, get_task
from ppokit.lm.tokenizer import char_tokenizer


@dataclass(frozen=True)
class LMMethod:
    help: str
    advantages: Callable[[Tensor], Tensor] | None  # rewards [groups, G] -> advantages; None: GAE with a critic
    aggregation: Aggregation  # how per-token terms are reduced, unless the config says otherwise
    critic: bool = False  # a value head on the policy (ppo.py), the KL in the per-token reward


LM_METHODS: dict[str, LMMethod] = {
    "grpo": LMMethod("GRPO (Shao et al. 2024): group z-scores, per-sequence mean of token means.",
                     partial(group_relative_advantages, scale="group"), "seq-mean-token-mean"),
    "dr-grpo": LMMethod("Dr. GRPO (Liu et al. 2025): no std division, a constant normalizer (no length bias).",
                        partial(group_relative_advantages, scale="none"), "constant"),
    "rloo": LMMethod("RLOO (Ahmadian et al. 2024): leave-one-out group baselines, token-mean.",
                     rloo_advantages, "token-mean"),
    "ppo": LMMethod("PPO (Ziegler et al. 2019): value head, k1 KL in the per-token reward, GAE, token-mean.",
                    None, "token-mean", critic=True),
}  # fmt: skip


@dataclass
class LMBatch:
    """One step's completions ``[B, P + L]`` with what the loss needs, selectable by sequence."""

    input_ids: Tensor
    attention_mask: Tensor
    mask: Tensor  # [B, L] the completion tokens (to the first EOS)
    old_logprobs: Tensor  # [B, L] under the sampling policy
    ref_logprobs: Tensor  # [B, L] under the reference
    advantages: Tensor  # [B] one per completion
    prompt_len: int

    @property
    def device(self) -> torch.device:
        return self.input_ids.device

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, index: Tensor | slice) -> Self:
        return select_rows(self, index)


class AdamW:
    """torch's AdamW with the shared loop's interface (zero, clip and report the norm, step)."""

    def __init__(self, modules: list[torch.nn.Module], lr: float) -> None:
        self.params = [p for m in modules for p in m.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=lr)

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()

    def clip_grad_norm(self, max_norm: float) -> Tensor:
        return torch.nn.utils.clip_grad_norm_(self.params, max_norm)

    def step(self) -> None:
        self.optimizer.step()


@dataclass
class LMResult:
    config: LMConfig
    model: PreTrainedModel
    tokenizer: Tokenizer
    success_after_sft: float  # greedy exact-success rate of the reference (NaN: no answer known)
    success: float  # greedy exact-success rate after RL
    reward_after_sft: float  # mean reward of the reference's greedy completions
    reward: float  # mean reward of the greedy completions after RL
    metrics: list[dict[str, float]] = field(default_factory=list)  # one per RL step


def train(config: LMConfig | None = None) -> LMResult:
    """SFT on the task's optimal completions, then ``config.steps`` RL steps of the method."""
    config = (config or LMConfig()).validate()
    task = make_task(config)
    rng = random.Random(config.seed)
    model, tokenizer = make_model(config, task)
    sft(model, tokenizer, task, config, rng)
    reference = copy.deepcopy(model).requires_grad_(False)
    before = evaluate(model, tokenizer, task, config.eval_prompts, random.Random(config.seed + 1))
    method = LM_METHODS[config.method]
    head = ValueHead(model.config.hidden_size) if method.critic else None
    optimizer = AdamW([model] if head is None else [model, head], config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    paths = RunDir(Path(config.run_dir)) if config.run_dir is not None else None
    logger = _start_run_folder(paths, config)
    history: list[dict[str, float]] = []
    try:
        for step in range(config.steps):
            if head is None:
                history.append(rl_step(model, reference, tokenizer, task, config, optimizer, rng, generator))
            else:
                beta = history[-1]["kl_coef"] if history else config.kl_coef  # the adaptive controller's
                history.append(ppo_step(model, head, reference, tokenizer, task, config, optimizer, rng, generator,
                                        beta))  # fmt: skip
            if logger is not None:
                logger.log((step + 1) * config.batch_size, history[-1] | {"update": float(step + 1)})
    finally:
        if logger is not None:
            logger.close()
    after = evaluate(model, tokenizer, task, config.eval_prompts, random.Random(config.seed + 1))
    result = LMResult(config, model, tokenizer, before.success, after.success, before.reward, after.reward, history)
    if paths is not None:
        _finish_run_folder(paths, result)
    return result


def _start_run_folder(paths: RunDir | None, config: LMConfig) -> JsonlLogger | None:
    """config.toml, and the logger of metrics.jsonl (one line per RL step; ``global_step``
    counts completions)."""
    if paths is None:
        return None
    import tomli_w

    paths.root.mkdir(parents=True, exist_ok=True)
    values = {k: v for k, v in asdict(config).items() if v is not None}
    atomic_write_text(paths.config, tomli_w.dumps({"lm": values}))
    return JsonlLogger(paths.metrics)


def _finish_run_folder(paths: RunDir, result: LMResult) -> None:
    """eval.json (greedy success before and after RL) and model/ (``save_pretrained`` of the
    model and its tokenizer: ``AutoModelForCausalLM.from_pretrained`` reads it back)."""
    result.model.save_pretrained(paths.model)
    result.tokenizer.save_pretrained(paths.model)
    scores = {"success_after_sft": result.success_after_sft, "success": result.success,
              "reward_after_sft": result.reward_after_sft, "reward": result.reward,
              "eval_prompts": result.config.eval_prompts}  # fmt: skip
    atomic_write_text(paths.final_eval, json.dumps(scores, indent=2))


def sft(model: PreTrainedModel, tokenizer: Tokenizer, task: Task, config: LMConfig, rng: random.Random) -> None:
    """Maximize log pi(optimal completion + EOS | prompt) over fresh prompts each step."""
    answer = task.answer
    if answer is None or not config.sft_steps:
        return  # validation refuses SFT steps for tasks without answers
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.sft_learning_rate)
    for _ in range(config.sft_steps):
        prompts = [task.prompt(rng) for _ in range(config.sft_batch)]
        prompt_ids = tokenizer(prompts, padding=True, return_tensors="pt")
        answers = tokenizer([answer(p) + tokenizer.eos_token for p in prompts], padding=True,
                            padding_side="right", return_tensors="pt")  # fmt: skip
        input_ids = torch.cat([prompt_ids["input_ids"], answers["input_ids"]], 1)
        attention = torch.cat([prompt_ids["attention_mask"], answers["attention_mask"]], 1)
        logp = token_logprobs(model, input_ids, attention, prompt_ids["input_ids"].shape[1])
        mask = answers["attention_mask"].float()
        loss = -(logp * mask).sum() / mask.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def rl_step(
    model: PreTrainedModel, reference: PreTrainedModel, tokenizer: Tokenizer, task: Task, config: LMConfig,
    optimizer: AdamW, rng: random.Random, generator: torch.Generator,
) -> dict[str, float]:  # fmt: skip
    """One step: a group of completions per prompt, their rewards, the update; its metrics."""
    method = LM_METHODS[config.method]
    assert method.advantages is not None  # group methods; ppo takes ppo_step
    prompts, out, texts, rewards = sample_and_score(model, tokenizer, task, config, rng)
    advantages = method.advantages(rewards.view(-1, config.group_size)).reshape(-1)
    batch = _batch(model, reference, out, advantages, config.temperature)
    aggregation = config.aggregation or method.aggregation
    loss_fn = partial(_loss, model, config, aggregation, task.max_new_tokens)
    plan = UpdatePlan(config.epochs, config.minibatch_size, config.max_grad_norm)
    result = run_epochs(batch, loss_fn, optimizer, plan, generator)
    return result.metrics | completion_metrics(rewards, out, task.success(prompts, texts), config.group_size)


def _batch(
    model: PreTrainedModel, reference: PreTrainedModel, out: Completions, advantages: Tensor, temperature: float
) -> LMBatch:
    start = out.prompt_ids.shape[1]
    with torch.no_grad():
        old = token_logprobs(model, out.input_ids, out.attention_mask, start, temperature)
        ref = token_logprobs(reference, out.input_ids, out.attention_mask, start, temperature)
    return LMBatch(out.input_ids, out.attention_mask, out.completion_mask, old, ref, advantages, start)


def _loss(
    model: PreTrainedModel, config: LMConfig, aggregation: Aggregation, max_len: int, mb: LMBatch
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped surrogate per token, every token of a completion weighted by its advantage,
    plus beta times the k3 KL to the reference, both reduced by ``aggregation``."""
    logp = token_logprobs(model, mb.input_ids, mb.attention_mask, mb.prompt_len, config.temperature)
    high = config.clip_high if config.clip_high is not None else config.clip_low
    adv = mb.advantages[:, None].expand_as(logp)
    terms = losses.clipped_surrogate(logp, mb.old_logprobs, adv, config.clip_low, high)

    def reduce(x: Tensor) -> Tensor:  # Dr. GRPO's constant: completions x the longest allowed
        return aggregate(x, mb.mask, aggregation, constant=float(len(mb) * max_len))

    policy_loss = -reduce(terms.objective)
    kl_ref = reduce(losses.reference_kl(logp, mb.ref_logprobs))
    loss = policy_loss + config.kl_coef * kl_ref
    return loss, {"policy_loss": policy_loss, "kl_ref": kl_ref, **losses.policy_diagnostics(terms, mb.mask),
                  "loss": loss}  # fmt: skip


@dataclass(frozen=True)
class Evaluation:
    success: float  # greedy exact-success rate (NaN when the task knows no answer)
    reward: float  # mean reward of the greedy completions


def evaluate(model: PreTrainedModel, tokenizer: Tokenizer, task: Task, n: int, rng: random.Random) -> Evaluation:
    """Greedy completions of ``n`` fresh prompts: their success rate and mean reward."""
    prompts = [task.prompt(rng) for _ in range(n)]
    texts = decode(tokenizer, sample(model, tokenizer, prompts, task.max_new_tokens, greedy=True))
    success = task.success(prompts, texts)
    rewards = task.reward(prompts, texts)
    return Evaluation(_rate(success), sum(rewards) / len(rewards))


def _rate(hits: list[bool]) -> float:
    """The fraction of hits; NaN when the task knows no answer to hit."""
    return sum(hits) / len(hits) if hits else math.nan


def make_task(config: LMConfig) -> Task:
    """The built-in task, or prompts from a file scored by the user's reward function."""
    if config.prompts is not None and config.reward is not None:
        task = file_task(load_prompts(config.prompts), load_reward(config.reward), config.max_new_tokens or 16)
    else:
        task = get_task(config.task)
    return task if config.max_new_tokens is None else replace(task, max_new_tokens=config.max_new_tokens)


def make_model(config: LMConfig, task: Task) -> tuple[PreTrainedModel, Tokenizer]:
    """The tiny model over the task's characters, or a local folder's model and tokenizer."""
    if config.model != "tiny":
        torch.manual_seed(config.seed)  # sampling draws from torch's RNG; tiny_causal_lm seeds it too
        return load_causal_lm(config.model)
    tokenizer = char_tokenizer(task.alphabet)
    model = tiny_causal_lm(config.arch, tokenizer, width=config.width, layers=config.layers, seed=config.seed)
    return model, tokenizer
