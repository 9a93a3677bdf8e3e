"""``ppokit <verb>``: each verb's work, one-line errors, exit 2 (the flags: ``ppokit.flags``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from ppokit.config import RunConfig
from ppokit.errors import ConfigError, PPOKitError
from ppokit.flags import build_parser, given_flags, parse_grid, resolve_config, train_flags
from ppokit.io.run_dir import RunDir, check_writable, checkpoint_path, run_folder_of
from ppokit.presets import PRESETS

console = Console(soft_wrap=True)  # long paths are not wrapped
if not console.is_terminal:
    console.width = 160  # tables in logs and pipes: wider than rich's 80-column default


def _train(args: argparse.Namespace) -> int:
    from ppokit import parallel
    from ppokit.classic.trainer import train
    from ppokit.io import checkpoint as ckpt

    if args.nproc < 1:
        raise ConfigError("nproc", f"{args.nproc}; allowed: an integer >= 1")
    if args.resume is not None:
        ignored = [*given_flags(args), *(["config"] if args.config else []), *(["preset"] if args.preset else [])]
        if ignored:
            raise ConfigError("resume", f"a resumed run keeps its saved config; drop {', '.join(ignored)}")
        config = None
        saved = ckpt.load(args.resume)
        device = ckpt.saved_config(saved).device  # the backend: gloo for CPU, nccl for CUDA
        if args.nproc > 1 and not parallel.launched_by_torchrun():
            from ppokit.classic.ranks import for_rank

            for_rank(saved, 0, args.nproc)  # another number of processes: one line here, not one per rank
    else:
        config = resolve_config(args).validate()
        device = config.device
    torchrun = parallel.launched_by_torchrun()
    if args.nproc > 1 and not torchrun:
        return _launch(args, config)
    resume = args.resume
    folder = Path(config.run_dir) if config is not None and config.run_dir is not None else None
    if torchrun and parallel.restart_count() > 0 and folder is not None and RunDir(folder).last.exists():
        config, resume = None, folder  # torchrun restarted the job after a failure: go on from the checkpoint
    comm = parallel.init(device, args.rendezvous_timeout) if torchrun else None
    try:
        result = train(config, resume=resume, comm=comm)
    finally:
        if comm is not None:
            parallel.shutdown()
    if comm is not None and not comm.process.writes:
        return 0
    _print_result(result)
    return 0


def _launch(args: argparse.Namespace, config: RunConfig | None) -> int:
    """``ppokit train --nproc N``: the same command under torchrun (``--standalone``: one machine,
    a free port), which starts N processes and stops them all if one fails; with
    ``--max-restarts K`` it starts them again, up to K times, and they resume the run folder."""
    from ppokit import parallel
    from ppokit.classic.ranks import check_world_size
    from ppokit.classic.trainer import run_dir_of

    if config is not None:
        check_world_size(config, args.nproc)
        if config.async_workers:
            raise ConfigError("async_workers", f"{config.async_workers} with --nproc {args.nproc}; allowed: "
                                               "asynchronous workers or data-parallel processes, not both")  # fmt: skip
        run_dir_of(config, resuming=False)  # writable, and no run there yet: one line here, not one per rank
    parallel.check_restarts(args.max_restarts, (config is not None and config.run_dir is not None) or
                            args.resume is not None)  # fmt: skip
    threads = config.torch_threads if config is not None and config.torch_threads > 0 else 1
    return parallel.launch(args.argv, args.nproc, args.max_restarts, threads)


def _print_result(result: Any) -> None:
    if result.interrupted:
        console.print(f"Stopped at step {result.global_step:,}; resume with: ppokit train --resume {result.run_dir}")
        return
    console.print(f"Run folder: {result.run_dir}")
    if result.evaluation is not None:
        s = result.evaluation.summary()
        console.print(
            f"Final evaluation ({int(s['eval_episodes'])} episodes, "
            f"{'deterministic' if result.evaluation.deterministic else 'sampled'}): "
            f"return {s['eval_return_mean']:.2f} +- {s['eval_return_std']:.2f} "
            f"(min {s['eval_return_min']:.2f}, max {s['eval_return_max']:.2f})"
        )


def _eval(args: argparse.Namespace) -> int:
    from ppokit.api import load
    from ppokit.classic.evaluation import evaluate
    from ppokit.io import checkpoint as ckpt
    from ppokit.runtime import torch_threads

    if args.episodes < 1:
        raise ConfigError("episodes", f"{args.episodes}; allowed: an integer >= 1")
    policy = load(args.checkpoint)
    mode = "sampled" if args.sampled else "deterministic"
    run = run_folder_of(checkpoint_path(args.checkpoint))
    out = args.output or run / f"eval-{mode}-{args.episodes}.json"
    check_writable(out, "output", folder=False)  # before the episodes are played
    video = None if args.video is None else (run / "videos" / "eval.mp4" if args.video == Path() else args.video)
    if video is not None:
        check_writable(video, "video", folder=False)
    with torch_threads(policy.config.torch_threads):  # the run's thread count (1 for the small MLPs)
        result = evaluate(policy.model, policy.config.env, args.episodes, not args.sampled, args.seed)
        s = result.summary()
        console.print(
            f"{int(s['eval_episodes'])} episodes ({mode}): return mean {s['eval_return_mean']:.2f}, "
            f"std {s['eval_return_std']:.2f}, min {s['eval_return_min']:.2f}, max {s['eval_return_max']:.2f}"
        )
        ckpt.atomic_write_text(out, json.dumps(result.to_dict(), indent=2))
        console.print(f"Written to {out}")
        if video is not None:
            from ppokit.classic.video import record

            rec = record(lambda obs: policy.act(obs, not args.sampled), policy.config.env, video, seed=args.seed)
            console.print(f"Video: {rec.path} ({rec.frames} frames, return {rec.returns[0]:.2f})")
    return 0


def _export(args: argparse.Namespace) -> int:
    from ppokit.api import load
    from ppokit.classic.export import export_onnx

    out = args.output or run_folder_of(checkpoint_path(args.checkpoint)) / "policy.onnx"
    check_writable(out, "output", folder=False)
    policy = load(args.checkpoint)  # CheckpointError for a run without a policy
    report = export_onnx(policy.model, policy.observation_space, policy.action_space, out)
    console.print(f"Exported to {out}: onnxruntime against torch on {report.samples} random observations: "
                  f"largest parameter difference {report.max_param_error:.2g}, actions agree on "
                  f"{report.actions_equal:.0%} (largest action difference {report.max_action_error:.2g})")  # fmt: skip
    return 0


def _experiment(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ppokit.analysis import experiment as exp

    if args.seeds < 1:
        raise ConfigError("seeds", f"{args.seeds}; allowed: an integer >= 1")
    if args.workers is not None and args.workers < 1:
        raise ConfigError("workers", f"{args.workers}; allowed: an integer >= 1 (omit it: one per core)")
    check_writable(args.out, "out")
    grid = parse_grid(args.set)
    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    base = resolve_config(args)
    runs = exp.plan_runs(args.out, base, grid, seeds)  # validates every run before any work
    exp.load_or_write_spec(args.out, base, grid, seeds)
    done = sum(exp.run_status(r) == "done" for r in runs)
    console.print(f"Experiment {args.out}: {len(runs)} runs ({done} already done)")

    def on_result(variant: str, seed: int, score: float) -> None:
        console.print(f"  {variant} seed {seed}: final eval {score:.2f}")

    summary = exp.run_experiment(args.out, runs, args.workers or exp.default_workers(), on_result)
    table = Table(title="Final deterministic evaluation over seeds (95% bootstrap CI)")
    for column in ("variant", "seeds", "mean", "median", "IQM"):
        table.add_column(column)
    for variant, s in summary.items():
        cells = [f"{s[k]['point']:.1f} [{s[k]['low']:.1f}, {s[k]['high']:.1f}]" for k in ("mean", "median", "iqm")]
        table.add_row(variant, str(len(s["scores"])), *cells)
    console.print(table)
    console.print(f"Summary: {args.out / 'summary.json'}; report: ppokit report {args.out}")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ppokit.plan import make_plan, plan_rows

    # The plan explains its settings by their short names (dotted paths for the method sections).
    user = {path.rsplit(".", 1)[-1] if path.count(".") <= 1 else path: v for path, v in given_flags(args).items()}
    env_id = user.pop("id", RunConfig().env.id)
    if args.steps < 1:
        raise ConfigError("steps", f"{args.steps}; allowed: an integer >= 1")
    plan = make_plan(env_id, args.steps, user, args.preset)
    table = Table(title=f"Training plan: {env_id}, {args.steps:,} steps")
    for column in ("setting", "value", "why"):
        table.add_column(column, overflow="fold")
    for row in plan_rows(plan):
        table.add_row(*row)
    console.print(table)
    watch = Table(title="Health diagnostics watched during training")
    for column in ("rule", "warns when", "patience (updates)"):
        watch.add_column(column)
    for name, condition, patience in plan.watch:
        watch.add_row(name, condition, str(patience))
    console.print(watch)
    for note in plan.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    console.print(f"Run it: ppokit train {' '.join(train_flags(plan.config))}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from ppokit.analysis.experiment import default_workers

    if args.steps < 1:
        raise ConfigError("steps", f"{args.steps}; allowed: an integer >= 1")
    if args.workers is not None and args.workers < 1:  # as for experiment: omit it for every core
        raise ConfigError("workers", f"{args.workers}; allowed: an integer >= 1 (omit it: one per core)")
    check_writable(args.out, "out")
    try:
        from ppokit.analysis.compare import compare, markdown
    except ImportError:
        raise ConfigError("compare", "needs Stable-Baselines3: pip install 'ppokit[compare]'") from None
    config = resolve_config(args)

    def on_result(record: Any) -> None:
        console.print(f"  {record.library} seed {record.seed}: final eval {record.eval_mean:.2f}")

    result = compare(config.env.id, args.seeds, args.steps, args.out, args.workers or default_workers(),
                     config, on_result)  # fmt: skip
    console.print(markdown(result))
    console.print(f"Written to {args.out}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from ppokit.analysis.report import write_report

    path = write_report(args.folder, fmt=args.format, threshold=args.threshold)
    console.print(f"Report written to {path}")
    return 0


def _tune(args: argparse.Namespace) -> int:
    from ppokit.analysis import tune

    if args.trials < 1:
        raise ConfigError("trials", f"{args.trials}; allowed: an integer >= 1")
    space = tune.load_space(args.space)  # every bad input before the study is touched
    base = resolve_config(args).validate()
    check_writable(args.study, "study")
    study = tune.tune(base, space, args.study, args.trials)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    best = f"best: trial {study.best_trial.number}, {study.best_value:.2f}" if done else "no trial completed"
    console.print(f"Study {args.study}: {len(study.trials)} trials ({best}); {args.study / 'best.toml'}, "
                  f"{args.study / 'report.md'}")  # fmt: skip
    return 0


def _presets(args: argparse.Namespace) -> int:
    for name, preset in PRESETS.items():
        settings = ", ".join(f"{k}={v}" for k, v in preset.overrides.items())
        console.print(f"[bold]{name}[/bold]: {settings}\n  source: {preset.source}")
    return 0


def _lm(args: argparse.Namespace) -> int:
    try:
        from ppokit.lm.commands import lm_command
    except ImportError:
        raise ConfigError("lm", "needs transformers: pip install 'ppokit[lm]'") from None
    return lm_command(args, console)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    verbs = {"train": _train, "eval": _eval, "export": _export, "experiment": _experiment, "report": _report,
             "plan": _plan, "compare": _compare, "tune": _tune, "presets": _presets, "lm": _lm}  # fmt: skip
    try:
        code = verbs[args.verb](args)
    except PPOKitError as e:
        print(f"ppokit: error: {e}", file=sys.stderr)
        code = e.exit_code
    if args.verb == "train" or (args.verb == "lm" and args.lm_verb == "train"):
        from ppokit import parallel

        if parallel.launched_by_torchrun():
            parallel.exit_process(code)  # everything is written: no interpreter teardown (parallel.exit_process)
    return code


if __name__ == "__main__":
    sys.exit(main())
