"""``ppokit lm train|sft|eval|tasks``: each verb's work (its flags: ``ppokit.flags``).

``ppokit lm train --nproc N`` runs the same command under torchrun (``ppokit.parallel.launch``);
a command that torchrun started joins the process group and trains one rank of the run
(``ppokit.lm.ranks``). With ``--max-restarts K`` a job that torchrun restarted after a failure
resumes its run folder from the last checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
from pathlib import Path
from typing import Any

from rich.console import Console

from ppokit import parallel
from ppokit.errors import ConfigError
from ppokit.lm import trainer
from ppokit.lm.checkpoint import check_world_size, latest_checkpoint, read_config
from ppokit.lm.config import LMConfig
from ppokit.lm.policy import device_of
from ppokit.lm.tasks import TASKS


def lm_command(args: argparse.Namespace, console: Console) -> int:
    if args.lm_verb == "tasks":
        for name, task in TASKS.items():
            console.print(f"[bold]{name}[/bold]: {task.help}")
        return 0
    if args.lm_verb == "eval":
        return _eval(args, console)
    given = {k.removeprefix("lm."): v for k, v in vars(args).items() if k.startswith("lm.")}
    if args.lm_verb == "sft":
        config = LMConfig(**given).validate()
        folder, before = trainer.supervise(config)
        console.print(f"SFT on {config.task}, {config.sft_steps} steps: greedy success {before.success:.3f}, "
                      f"reward {before.reward:.3f}; model: {folder} (RL from it: ppokit lm train --model {folder} "
                      "--sft-steps 0)")  # fmt: skip
        return 0
    return _train(args, given, console)


def _train(args: argparse.Namespace, given: dict[str, Any], console: Console) -> int:
    if args.nproc < 1:
        raise ConfigError("nproc", f"{args.nproc}; allowed: an integer >= 1")
    torchrun = parallel.launched_by_torchrun()
    resume: Path | None = args.lm_resume
    if resume is None and torchrun and (restarted := _restarted(given)) is not None:
        resume, given = restarted, {}  # torchrun restarted the job after a failure: go on from the checkpoint
    elif resume is not None and sorted(set(given) - {"steps"}):
        raise ConfigError(
            "resume", f"a resumed run keeps its saved config; drop {', '.join(sorted(set(given) - {'steps'}))}"
        )
    config: LMConfig | None = None
    if resume is not None:
        device = read_config(resume).device
    else:
        config = LMConfig(**given).validate()
        device = config.device
    if args.nproc > 1 and not torchrun:
        run_dir = resume if config is None else config.run_dir
        parallel.check_restarts(args.max_restarts, run_dir is not None)
        if resume is not None:
            check_world_size(resume, args.nproc)  # another number of processes: one line here, not one per rank
        return parallel.launch(args.argv, args.nproc, args.max_restarts, threads=1)
    comm = parallel.init(device_of(device).type, args.rendezvous_timeout) if torchrun else None
    try:
        result = trainer.train(config, resume=resume, steps=given.get("steps") if resume else None, comm=comm)
    finally:
        if comm is not None:
            parallel.shutdown()
    if comm is not None and not comm.process.writes:
        return 0
    return _print_result(result, console)


def _restarted(given: dict[str, Any]) -> Path | None:
    """The run folder of a job that torchrun restarted (``--max-restarts``), when it holds a
    checkpoint to resume; None on a first attempt."""
    folder = given.get("run_dir")
    if parallel.restart_count() == 0 or folder is None or latest_checkpoint(Path(folder)) is None:
        return None
    return Path(folder)


def _print_result(result: trainer.LMResult, console: Console) -> int:
    if result.stopped:
        if result.config.run_dir is None:
            console.print(f"Stopped after step {len(result.metrics)}; nothing was saved (no --run-dir)")
            return 130
        console.print(f"Stopped after step {len(result.metrics)}; resume with: ppokit lm train --resume "
                      f"{result.config.run_dir}")  # fmt: skip
        return 0
    last = result.metrics[-1] if result.metrics else {}
    console.print(
        f"{result.config.method} on {result.config.task}, {result.config.steps} steps: greedy success "
        f"{result.success_after_sft:.3f} after SFT -> {result.success:.3f} after RL; last step: reward "
        f"{last.get('reward_mean', float('nan')):.3f}, KL to the reference {last.get('kl_ref', float('nan')):.3f}"
    )
    return 0


def _eval(args: argparse.Namespace, console: Console) -> int:
    from ppokit.lm.evaluation import evaluate

    if args.lm_eval_n < 1 or args.lm_samples < 0:
        raise ConfigError("eval", f"--prompts-n {args.lm_eval_n}, --samples {args.lm_samples}; allowed: >= 1, >= 0")
    config, model, tokenizer, reference = trainer.load_run(args.run)
    seed = args.lm_eval_seed if args.lm_eval_seed is not None else config.seed + 1
    task = trainer.make_task(
        dataclasses.replace(config, device="cpu")
    )  # the models load on the CPU: a reward model too
    result = evaluate(model, tokenizer, task, args.lm_eval_n, random.Random(seed), reference, args.lm_samples)
    console.print(f"{args.run}: {args.lm_eval_n} greedy completions: success {result.success:.3f}, reward "
                  f"{result.reward:.3f}, KL to the reference {result.kl_ref_seq:.3f} per completion")  # fmt: skip
    for prompt, completion, reward in result.samples:
        console.print(f"  {prompt!r} -> {completion!r}  reward {reward:.3f}", markup=False)
    return 0
