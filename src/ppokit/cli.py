"""``ppokit <verb>``: flags generated from the config dataclasses, one-line errors, exit 2."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, get_args, get_origin

from rich.console import Console

from ppokit.config import SECTIONS, RunConfig, from_dict, override
from ppokit.errors import ConfigError, PPOKitError
from ppokit.presets import PRESETS, get_preset

console = Console()
# Flags named differently from their field, for the flags users type most.
_FLAG_NAMES = {"id": "env"}


def _add_field_flag(group: argparse._ArgumentGroup, f: dataclasses.Field[Any], hints: dict[str, Any]) -> None:
    name = _FLAG_NAMES.get(f.name, f.name)
    flag = "--" + name.replace("_", "-")
    kind = hints[f.name]
    help_text = f"{f.metadata.get('help', '')} (default: {f.default!r})"
    common: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
    optional = get_origin(kind) in (typing.Union, types.UnionType) and type(None) in get_args(kind)
    if optional:
        kind = next(a for a in get_args(kind) if a is not type(None))
    if kind is bool:
        group.add_argument(flag, action=argparse.BooleanOptionalAction, **common)
    elif get_origin(kind) is typing.Literal:
        group.add_argument(flag, choices=list(get_args(kind)), **common)
    elif get_origin(kind) is tuple:
        group.add_argument(flag, type=int, nargs="+", metavar="N", **common)
    else:
        base = {int: int, float: float, str: str}[kind]
        group.add_argument(flag, type=_none_or(base) if optional else base, metavar=name.upper(), **common)


def _none_or(base: type) -> Any:
    def parse(text: str) -> Any:
        return None if text.lower() == "none" else base(text)

    parse.__name__ = base.__name__
    return parse


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    groups = {"run": RunConfig, **SECTIONS}
    for title, cls in groups.items():
        group = parser.add_argument_group(f"{title} options")
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name not in SECTIONS:
                _add_field_flag(group, f, hints)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ppokit", description="Proximal Policy Optimization you can trust.")
    verbs = parser.add_subparsers(dest="verb", required=True)

    train = verbs.add_parser("train", help="Train a policy (flags override --config, which overrides --preset).")
    train.add_argument("--config", type=Path, help="TOML file with [env], [algo], [policy] tables and run keys.")
    train.add_argument(
        "--preset",
        help=f"Known-good hyperparameters: {', '.join(PRESETS)}, or none. Default: the env's preset if any.",
    )
    train.add_argument("--resume", type=Path, help="Continue the run in this folder (or checkpoint file).")
    _add_config_flags(train)

    ev = verbs.add_parser("eval", help="Evaluate a checkpoint on fresh envs with the normalization frozen.")
    ev.add_argument("checkpoint", type=Path, help="A checkpoint file or a run folder (its last checkpoint).")
    ev.add_argument("--episodes", type=int, default=20, help="Episodes to play (default: 20).")
    ev.add_argument("--sampled", action="store_true", help="Sample actions instead of the distribution's mode.")
    ev.add_argument("--seed", type=int, default=0, help="Seed of the evaluation envs (default: 0).")
    ev.add_argument("--output", type=Path, help="Write the results as JSON here (default: in the run folder).")

    verbs.add_parser("presets", help="List the presets and where their numbers come from.")
    return parser


def resolve_config(args: argparse.Namespace) -> RunConfig:
    """defaults < preset < --config file < flags."""
    given = {f.name for cls in (RunConfig, *SECTIONS.values()) for f in dataclasses.fields(cls)} & vars(args).keys()
    flags = {name: getattr(args, name) for name in given}
    file_data: dict[str, Any] = {}
    if args.config is not None:
        try:
            file_data = tomllib.loads(args.config.read_text())
        except FileNotFoundError:
            raise ConfigError("config", f"{args.config} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError("config", f"{args.config} is not valid TOML ({e})") from None
    env_id = flags.get("id") or file_data.get("env", {}).get("id") or RunConfig().env.id
    config = RunConfig()
    preset_name = args.preset if args.preset is not None else (env_id if env_id in PRESETS else "none")
    if preset_name != "none":
        preset = get_preset(preset_name)
        config = override(config, {"id": preset.env_id, **preset.overrides})
    config = from_dict(file_data, base=config)
    return override(config, flags)


def _train(args: argparse.Namespace) -> int:
    from ppokit.trainer import train

    if args.resume is not None:
        result = train(RunConfig(), resume=args.resume)
    else:
        result = train(resolve_config(args).validate())
    if result.interrupted:
        console.print(f"Stopped at step {result.global_step:,}; resume with: ppokit train --resume {result.run_dir}")
        return 0
    console.print(f"Run folder: {result.run_dir}")
    if result.evaluation is not None:
        s = result.evaluation.summary()
        console.print(
            f"Final evaluation ({int(s['eval_episodes'])} episodes, "
            f"{'deterministic' if result.evaluation.deterministic else 'sampled'}): "
            f"return {s['eval_return_mean']:.2f} +- {s['eval_return_std']:.2f} "
            f"(min {s['eval_return_min']:.2f}, max {s['eval_return_max']:.2f})"
        )
    return 0


def _eval(args: argparse.Namespace) -> int:
    from ppokit import checkpoint as ckpt
    from ppokit.api import load
    from ppokit.evaluation import evaluate

    if args.episodes < 1:
        raise ConfigError("episodes", f"{args.episodes}; allowed: an integer >= 1")
    policy = load(args.checkpoint)
    result = evaluate(policy.model, policy.config.env, args.episodes, not args.sampled, args.seed)
    s = result.summary()
    console.print(
        f"{int(s['eval_episodes'])} episodes ({'sampled' if args.sampled else 'deterministic'}): "
        f"return mean {s['eval_return_mean']:.2f}, std {s['eval_return_std']:.2f}, "
        f"min {s['eval_return_min']:.2f}, max {s['eval_return_max']:.2f}"
    )
    ckpt_path = args.checkpoint if args.checkpoint.is_file() else args.checkpoint / "checkpoints" / "last.pt"
    mode = "sampled" if args.sampled else "deterministic"
    out = args.output or ckpt_path.parent.parent / f"eval-{mode}-{args.episodes}.json"
    ckpt.atomic_write_text(out, json.dumps(result.to_dict(), indent=2))
    console.print(f"Written to {out}")
    return 0


def _presets() -> int:
    for name, preset in PRESETS.items():
        settings = ", ".join(f"{k}={v}" for k, v in preset.overrides.items())
        console.print(f"[bold]{name}[/bold]: {settings}\n  source: {preset.source}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.verb == "train":
            return _train(args)
        if args.verb == "eval":
            return _eval(args)
        return _presets()
    except PPOKitError as e:
        print(f"ppokit: error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
