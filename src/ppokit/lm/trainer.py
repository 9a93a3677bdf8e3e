"""The language-model loop: SFT on the task (the reference), then RL steps, each one
prompts -> a group of sampled completions each -> scores -> advantages -> the shared update
loop (``ppokit.core``), until ``config.steps``; checkpoints on the way, and resume.

Methods differ in one table entry (``ppokit.lm.methods``): the group methods take
``group.group_step``, PPO (a value head) ``ppo.ppo_step``.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from rich.console import Console
from transformers import PreTrainedModel
from transformers import PreTrainedTokenizerBase as Tokenizer

from ppokit.errors import ConfigError
from ppokit.io.checkpoint import atomic_write_text
from ppokit.io.loggers import JsonlLogger, Loggers, TensorBoardLogger
from ppokit.lm import ranks
from ppokit.lm.checkpoint import RunState, read_config, restore, save_checkpoint, save_reference, write_config
from ppokit.lm.config import LMConfig
from ppokit.lm.evaluation import Evaluation, evaluate
from ppokit.lm.group import group_step
from ppokit.lm.health import LMHealth
from ppokit.lm.methods import LM_METHODS
from ppokit.lm.models import context_length, load_causal_lm, tiny_causal_lm
from ppokit.lm.policy import AdamW, Policy, attach, device_of, merged, replicate
from ppokit.lm.ppo import next_kl_coef, ppo_step
from ppokit.lm.reward_model import RewardModel
from ppokit.lm.rewards import UserReward, load_prompts, load_reward, weighted
from ppokit.lm.sft import sft
from ppokit.lm.tasks import Task, file_task, get_task
from ppokit.lm.tokenizer import char_tokenizer
from ppokit.parallel import Comm, Solo, any_rank, reduced_metrics
from ppokit.runtime import GracefulInterrupt

_console = Console(stderr=True)

__all__ = ["LM_METHODS", "Evaluation", "LMResult", "evaluate", "make_model", "make_task", "sft", "train"]


@dataclass
class LMResult:
    config: LMConfig
    model: PreTrainedModel  # the trained model (LoRA adapters merged in)
    tokenizer: Tokenizer
    success_after_sft: float  # greedy exact-success rate of the reference (NaN: no answer known)
    success: float  # greedy exact-success rate after RL (NaN too when stopped early)
    reward_after_sft: float  # mean reward of the reference's greedy completions
    reward: float  # mean reward of the greedy completions after RL
    metrics: list[dict[str, float]] = field(default_factory=list)  # one per RL step
    stopped: bool = False  # stopped before config.steps (Ctrl-C, stop_after): a checkpoint holds the state


def train(
    config: LMConfig | None = None, *, resume: str | Path | None = None, steps: int | None = None,
    stop_after: int | None = None, comm: Comm | None = None,
) -> LMResult:  # fmt: skip
    """SFT on the task's optimal completions, then ``config.steps`` RL steps of the method.
    ``resume``: continue the run in that folder from its last checkpoint, exactly (``steps``
    may extend it). ``stop_after``: stop, checkpointed, after that many steps of this call.
    ``comm``: this process's place in a data-parallel run (``ppokit.lm.ranks``); only rank 0
    writes the run folder."""
    comm = comm or Solo()
    config, root = _configure(config, resume, steps)
    task = make_task(config)  # loads the rewards and prompts: their errors come before any work
    comm.all_gather(None)  # every rank has checked the folder before rank 0 writes into it
    rng, generator = random.Random(config.seed), torch.Generator().manual_seed(config.seed)
    critic, writes = LM_METHODS[config.method].critic, comm.process.writes
    if resume is not None:
        assert root is not None
        policy, optimizer, state = restore(root, config, rng, generator, critic, comm.process)
        if config.steps < state.step:
            raise ConfigError("steps", f"{config.steps}: the run in {root} is at step {state.step} already; "
                                       f"allowed: >= {state.step}")  # fmt: skip
        if writes:
            write_config(root, config)  # a longer run stays longer when resumed again
    else:
        policy, state = _start(config, task, rng, root if writes else None)
        ranks.seed_rank(comm, config.seed, rng, generator)  # after the supervised stage, the same on every rank
        optimizer = AdamW(policy.trainable(), config.learning_rate, config.weight_decay)
    policy = replicate(policy, comm)
    stopped = _loop(policy, task, config, optimizer, (rng, generator), state, root, stop_after, comm)
    policy.replicas = None  # the wrappers go before the process group does
    if stopped and state.step < config.steps:
        return LMResult(config, policy.model, policy.tokenizer, state.before["success"], math.nan,
                        state.before["reward"], math.nan, state.history, stopped=True)  # fmt: skip
    return _finish(policy, task, config, root if writes else None, state)


def supervise(config: LMConfig) -> tuple[Path, Evaluation]:
    """Only the supervised stage (``ppokit lm sft``): the model after SFT in ``run_dir/model``
    (start RL from it with ``--model`` and ``--sft-steps 0``), and its greedy evaluation."""
    if config.run_dir is None:
        raise ConfigError("lm.run_dir", "ppokit lm sft writes its model there; allowed: a folder")
    if config.answer_free:
        raise ConfigError("lm.prompts", "ppokit lm sft imitates a built-in task's answers; a prompts file has none")
    root = Path(config.run_dir)
    if any((root / name).exists() for name in ("model", "config.toml", "checkpoints")):
        raise ConfigError("lm.run_dir", f"{root} already holds a model or a run; allowed: a new folder")
    task = make_task(config)
    model, tokenizer = make_model(config, task)
    check_context(model, tokenizer, task, config)
    with _precision(config):
        sft(model, tokenizer, task, config, random.Random(config.seed))
    write_config(root, config)
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    return root / "model", evaluate(model, tokenizer, task, config.eval_prompts, random.Random(config.seed + 1))


def _loop(
    policy: Policy, task: Task, config: LMConfig, optimizer: AdamW, rngs: tuple[random.Random, torch.Generator],
    state: RunState, root: Path | None, stop_after: int | None, comm: Comm,
) -> bool:  # fmt: skip
    """RL steps until ``config.steps``, each logged and watched by the health rules; a
    checkpoint every ``save_every`` steps, at the end and on a stop (seen by any rank: every rank
    stops after the same step). Whether it stopped early."""
    first, stopped, writes = state.step, False, comm.process.writes
    health = LMHealth(config.steps, LM_METHODS[config.method].critic)
    if state.health is not None:  # a resumed run: the rules' streaks and episodes as they were
        health.load_state_dict(state.health)
    logger = _loggers(root, state.step) if writes else None
    try:
        with GracefulInterrupt() as interrupt, _precision(config):
            while state.step < config.steps and not stopped:
                state.history.append(_step(policy, task, config, optimizer, rngs, state.history, comm))
                state.step += 1
                if logger is not None:
                    completions = state.step * config.batch_size * comm.process.world_size
                    logger.log(completions, state.history[-1] | {"update": float(state.step)})
                for warning in health.observe(state.step, state.history[-1]):
                    if writes:
                        _console.print(f"[yellow]ppokit health:[/yellow] {warning}", highlight=False, soft_wrap=True)
                stopped = any_rank(comm, interrupt.requested) or (stop_after is not None and
                                                                  state.step - first >= stop_after)  # fmt: skip
                if root is not None and (state.step % config.save_every == 0 or state.step == config.steps or stopped):
                    _save(root, policy, optimizer, state, rngs, health, comm)
    finally:
        if logger is not None:
            logger.close()
    return stopped


def _save(
    root: Path, policy: Policy, optimizer: AdamW, state: RunState, rngs: tuple[random.Random, torch.Generator],
    health: LMHealth, comm: Comm,
) -> None:  # fmt: skip
    """Rank 0 writes the checkpoint (with every rank's RNGs) and the diagnostics, once every
    rank's weights are checked to be the same."""
    every_rank = ranks.gathered_rngs(comm, *rngs)
    ranks.check_replicas(comm, policy)
    if comm.process.writes:
        save_checkpoint(root, policy, optimizer, state, every_rank, health.state_dict())
        health.write(root / "diagnostics.json")


def _configure(config: LMConfig | None, resume: str | Path | None, steps: int | None) -> tuple[LMConfig, Path | None]:
    if resume is not None:
        if config is not None:
            raise ConfigError("resume", "a resumed run keeps its own configuration; allowed: resume alone (or steps)")
        root = Path(resume)
        stored = read_config(root)
        config = replace(stored, run_dir=str(root), steps=steps if steps is not None else stored.steps)
        return config.validate(new_run=False), root  # the steps are checked against the checkpoint's
    config = (config or LMConfig()).validate()
    if steps is not None:
        config = replace(config, steps=steps).validate()
    return config, Path(config.run_dir) if config.run_dir is not None else None


def _start(config: LMConfig, task: Task, rng: random.Random, root: Path | None) -> tuple[Policy, RunState]:
    """The model, its SFT stage (the reference), the reference's evaluation, the run folder."""
    model, tokenizer = make_model(config, task)
    check_context(model, tokenizer, task, config)
    with _precision(config):
        sft(model, tokenizer, task, config, rng)
    before = evaluate(model, tokenizer, task, config.eval_prompts, random.Random(config.seed + 1))
    if root is not None:
        write_config(root, config)
        save_reference(root, model, tokenizer)
    policy = attach(model, tokenizer, config.lora_rank, config.lora_alpha, LM_METHODS[config.method].critic,
                    separate_critic=config.critic == "model")  # fmt: skip
    return policy, RunState(before={"success": before.success, "reward": before.reward})


def _step(
    policy: Policy, task: Task, config: LMConfig, optimizer: AdamW, rngs: tuple[random.Random, torch.Generator],
    history: list[dict[str, float]], comm: Comm,
) -> dict[str, float]:  # fmt: skip
    """One RL step of the method; its metrics averaged over the ranks."""
    if not LM_METHODS[config.method].critic:
        return reduced_metrics(comm, group_step(policy, task, config, optimizer, *rngs))
    beta = history[-1]["kl_coef"] if history else config.kl_coef  # the adaptive controller's
    metrics = reduced_metrics(comm, ppo_step(policy, task, config, optimizer, *rngs, beta))
    samples = config.batch_size * comm.process.world_size  # the completions of every rank
    return metrics | {"kl_coef": next_kl_coef(config, beta, metrics["kl_ref"], samples)}


def _finish(policy: Policy, task: Task, config: LMConfig, root: Path | None, state: RunState) -> LMResult:
    """The evaluation after RL; in the run folder eval.json, model/ (merged) and adapter/."""
    if root is not None and policy.lora:
        policy.model.save_pretrained(root / "adapter")
    model = merged(policy)
    after = evaluate(model, policy.tokenizer, task, config.eval_prompts, random.Random(config.seed + 1))
    result = LMResult(config, model, policy.tokenizer, state.before["success"], after.success,
                      state.before["reward"], after.reward, state.history)  # fmt: skip
    if root is not None:
        model.save_pretrained(root / "model")
        policy.tokenizer.save_pretrained(root / "model")
        scores = {"success_after_sft": result.success_after_sft, "success": result.success,
                  "reward_after_sft": result.reward_after_sft, "reward": result.reward,
                  "eval_prompts": config.eval_prompts}  # fmt: skip
        atomic_write_text(root / "eval.json", json.dumps(scores, indent=2))
    return result


def _loggers(root: Path | None, step: int) -> Loggers | None:
    """metrics.jsonl (lines past a resumed checkpoint dropped) and TensorBoard events."""
    if root is None:
        return None
    jsonl = JsonlLogger(root / "metrics.jsonl", keep_until_update=step)
    return Loggers([jsonl, TensorBoardLogger(root / "tensorboard")])


@contextlib.contextmanager
def _precision(config: LMConfig) -> Iterator[None]:
    """bf16: autocast the forward passes (weights, optimizer and log-probs stay float32)."""
    device = device_of(config.device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
        yield


def make_task(config: LMConfig) -> Task:
    """The built-in task, or the prompts scored by the user's rewards; weighted, with a reward
    model beside them when given."""
    weights = config.weights
    extra: list[UserReward] = []
    if config.reward_model is not None:
        extra.append(RewardModel(config.reward_model, device_of(config.device)))
    if config.prompts is not None:
        rewards = [load_reward(spec) for spec in config.reward_specs] + extra
        rows = load_prompts(config.prompts, config.prompt_column)
        fn = rewards[0] if len(rewards) == 1 and weights == [1.0] else weighted(rewards, weights)
        task = file_task(rows, fn, config.max_new_tokens or 16)
    else:
        task = get_task(config.task)
        if extra or weights != [1.0]:
            task = replace(task, reward=weighted([task.reward, *extra], weights))
    return task if config.max_new_tokens is None else replace(task, max_new_tokens=config.max_new_tokens)


def make_model(config: LMConfig, task: Task) -> tuple[PreTrainedModel, Tokenizer]:
    """The tiny model over the task's characters, or a local folder's model and tokenizer, on
    the configured device."""
    if config.model != "tiny":
        torch.manual_seed(config.seed)  # sampling draws from torch's RNG; tiny_causal_lm seeds it too
        model, tokenizer = load_causal_lm(config.model)
    else:
        tokenizer = char_tokenizer(task.alphabet)
        model = tiny_causal_lm(config.arch, tokenizer, width=config.width, layers=config.layers, seed=config.seed)
    torch.nn.Module.to(model, device_of(config.device))
    return model, tokenizer


def check_context(model: PreTrainedModel, tokenizer: Tokenizer, task: Task, config: LMConfig) -> None:
    """ConfigError when the longest prompt and ``max_new_tokens`` exceed the model's context."""
    limit = context_length(model)
    if limit is None:
        return
    if task.prompts is not None:
        prompts = list(task.prompts)
    else:  # a built-in task: its prompts have a fixed form, a sample shows their length
        draw = random.Random(0)
        prompts = [task.prompt(draw) for _ in range(256)]
    longest = max(len(ids) for ids in tokenizer(prompts)["input_ids"])
    if longest + task.max_new_tokens > limit:
        name = "lm.prompts" if longest >= limit else "lm.max_new_tokens"
        raise ConfigError(name, f"the longest prompt has {longest} tokens and completions up to {task.max_new_tokens}: "
                                f"more than the model's context of {limit}; allowed: prompt + max_new_tokens <= "
                                f"{limit}")  # fmt: skip


def load_run(folder: str | Path) -> tuple[LMConfig, PreTrainedModel, Tokenizer, PreTrainedModel | None]:
    """A finished run's configuration, trained model and tokenizer, and its reference."""
    root = Path(folder)
    config = read_config(root, "run")
    if not (root / "model" / "config.json").is_file():
        raise ConfigError("run", f"{root} has no trained model (model/): the run did not finish; resume it first")
    model, tokenizer = load_causal_lm(str(root / "model"))
    reference = load_causal_lm(str(root / "reference"))[0] if (root / "reference" / "config.json").is_file() else None
    return config, model, tokenizer, reference
