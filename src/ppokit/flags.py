"""The command line's arguments: one flag per leaf of the config tree, and the config they resolve to.

Every leaf field gets its dotted flag (``--algo.ppo-kl.target``) and its short names as aliases
(``--kl-target``); precedence is defaults < preset < ``--config`` file < flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, NoReturn, get_args, get_origin

from ppokit.config import RunConfig, from_dict, leaf_types, leaves, override, parse_value, resolve, short_names
from ppokit.errors import ConfigError
from ppokit.presets import PRESETS, get_preset, preset_for

# Short flags named differently from their field, for the flags users type most.
_FLAG_NAMES = {"id": "env", "method": "algo"}


def _flags_of(path: str) -> list[str]:
    """A field's flags: its dotted path (``--algo.clip-coef``), then its short names (``--clip-coef``)."""
    shorts = [name for name, target in short_names().items() if target == path and name != "group_scale_std"]
    flags = ["--" + path.replace("_", "-")]
    flags += ["--" + _FLAG_NAMES.get(name, name).replace("_", "-") for name in shorts]
    return list(dict.fromkeys(flags))


def _add_field_flag(group: argparse._ArgumentGroup, path: str, f: dataclasses.Field[Any], kind: Any) -> None:
    flags = _flags_of(path)
    help_text = f"{f.metadata.get('help', '')} (default: {f.default!r})".replace("%", "%%")  # argparse formats help
    common: dict[str, Any] = {"dest": path, "default": argparse.SUPPRESS, "help": help_text}
    if kind is bool:
        group.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
    elif get_origin(kind) is typing.Literal:
        group.add_argument(*flags, choices=list(get_args(kind)), **common)
    elif "choices" in f.metadata:
        group.add_argument(*flags, choices=list(f.metadata["choices"]), **common)
    elif get_origin(kind) is tuple:
        item = get_args(kind)[0]
        group.add_argument(*flags, type=item, nargs="+", metavar="N" if item is int else "KEY", **common)
    else:
        metavar = path.rsplit(".", 1)[-1].upper()
        group.add_argument(*flags, type=_flag_parser(path), metavar=metavar, **common)


def _flag_parser(path: str) -> Any:
    """An argparse ``type`` that reads a value the way ``--set`` does (``none`` for optional fields)."""

    def parse(text: str) -> Any:
        try:
            return parse_value(path, text)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return parse


def _add_config_flags(parser: argparse.ArgumentParser, skip: frozenset[str] | set[str] = frozenset()) -> None:
    """One flag per leaf of the config tree, grouped by section; ``skip``: run fields left out."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    kinds = leaf_types()
    for path, f in leaves().items():
        if path in skip:
            continue
        section = path.rsplit(".", 1)[0] if "." in path else "run"
        if section not in groups:
            groups[section] = parser.add_argument_group(f"{section} options")
        _add_field_flag(groups[section], path, f, kinds[path])
    legacy = groups["algo.group"]
    legacy.add_argument(
        "--group-scale-std",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS,
        dest="group_scale_std",
        help="Old form of --algo.group.scale: true is group, false none.",
    )


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``--set KEY=V1,V2`` items as a grid; KEY is a short name or a dotted path."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise ConfigError("set", f"{item!r}; allowed: KEY=V1,V2,... e.g. update_epochs=1,4,10,30")
        try:
            path = resolve(key)
        except ConfigError:
            path = None
        if path is None or path in ("seed", "run_dir"):
            raise ConfigError("set", f"unknown field {key!r}; allowed: fields of ppokit train --help")
        grid[key] = [parse_value(key, v) for v in values.split(",")]
        repeated = [v for i, v in enumerate(grid[key]) if v in grid[key][:i]]
        if repeated:
            raise ConfigError("set", f"{key} lists {repeated[0]!r} twice; allowed: distinct values (each is a variant "
                                     "with its own folder)")  # fmt: skip
        if path in {resolve(k) for k in grid if k != key}:
            raise ConfigError("set", f"{key} is set twice (as {path}); allowed: one --set per field")
    return grid


class _Parser(argparse.ArgumentParser):
    """argparse with ppokit's one-line errors (argparse prints the usage as well by default)."""

    def error(self, message: str) -> NoReturn:
        print(f"ppokit: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ppokit", description="Proximal Policy Optimization you can trust.")
    verbs = parser.add_subparsers(dest="verb", required=True)
    _train_parser(verbs)
    _eval_parser(verbs)
    _export_parser(verbs)
    _experiment_parser(verbs)
    plan = verbs.add_parser("plan", help="Print the configuration ppokit would use for an env and budget, and why.")
    plan.add_argument("--steps", type=int, required=True, help="Env steps of the budget.")
    plan.add_argument("--preset", help="Start from this preset (default: the env's, if any; none for derived).")
    _add_config_flags(plan, skip={"total_steps", "run_dir", "progress"})
    rep = verbs.add_parser("report", help="Write a report (Markdown or HTML with figures) for a run or experiment.")
    rep.add_argument("folder", type=Path, help="A run folder or an experiment folder.")
    rep.add_argument("--format", choices=["md", "html"], default="md", help="Report format (default: md).")
    rep.add_argument("--threshold", type=float, help="Return threshold for steps-to-threshold (optional).")
    _compare_parser(verbs)
    _tune_parser(verbs)
    _lm_parser(verbs)
    verbs.add_parser("presets", help="List the presets and where their numbers come from.")
    return parser


if typing.TYPE_CHECKING:
    Verbs = argparse._SubParsersAction[_Parser]


def _train_parser(verbs: Verbs) -> None:
    train = verbs.add_parser("train", help="Train a policy (flags override --config, which overrides --preset).")
    train.add_argument("--config", type=Path, help="TOML file: run keys, [env], [algo], [algo.ppo_kl], ... tables.")
    train.add_argument(
        "--preset",
        help=f"Known-good hyperparameters: {', '.join(PRESETS)}, or none. Default: the env's preset if any.",
    )
    train.add_argument("--resume", type=Path, help="Continue the run in this folder (or checkpoint file).")
    _parallel_flags(train, "env.num_envs")
    _add_config_flags(train)


def _parallel_flags(parser: argparse.ArgumentParser, per_process: str) -> None:
    parser.add_argument("--nproc", type=int, default=1, help="Data-parallel processes on this machine (DD-PPO on "
                        f"torch.distributed, started by torchrun; {per_process} per process; default: 1).")  # fmt: skip
    parser.add_argument("--max-restarts", type=int, default=0, help="With --nproc: restart every process up to this "
                        "many times after one fails; they resume the last checkpoint (needs --run-dir).")  # fmt: skip
    parser.add_argument("--rendezvous-timeout", type=float, default=300.0, metavar="SECONDS",
                        help="How long the processes of a run wait to meet (default: 300).")  # fmt: skip


def _eval_parser(verbs: Verbs) -> None:
    ev = verbs.add_parser("eval", help="Evaluate a checkpoint on fresh envs with the normalization frozen.")
    ev.add_argument("checkpoint", type=Path, help="A checkpoint file or a run folder (its last checkpoint).")
    ev.add_argument("--episodes", type=int, default=20, help="Episodes to play (default: 20).")
    ev.add_argument("--sampled", action="store_true", help="Sample actions instead of the distribution's mode.")
    ev.add_argument("--seed", type=int, default=0, help="Seed of the evaluation envs (default: 0).")
    ev.add_argument("--output", type=Path, help="Write the results as JSON here (default: in the run folder).")
    ev.add_argument("--video", type=Path, nargs="?", const=Path(), metavar="FILE.mp4",
                    help="Also record one episode to this MP4 (no FILE: the run's videos/eval.mp4).")  # fmt: skip


def _export_parser(verbs: Verbs) -> None:
    ex = verbs.add_parser("export", help="Export a run's policy (raw observations in, actions out), checked.")
    ex.add_argument("checkpoint", type=Path, help="A checkpoint file or a run folder (its last checkpoint).")
    ex.add_argument("--format", choices=["onnx"], default="onnx", help="The file format (default: onnx).")
    ex.add_argument("--output", type=Path, help="The file to write (default: policy.onnx in the run folder).")


def _experiment_parser(verbs: Verbs) -> None:
    exp = verbs.add_parser(
        "experiment", help="Run a configuration (or a grid of them) over several seeds in parallel processes."
    )
    exp.add_argument("--out", type=Path, required=True, help="Experiment folder; the same command resumes it.")
    exp.add_argument("--seeds", type=int, default=5, help="Number of seeds (default: 5).")
    exp.add_argument("--seed-start", type=int, default=1, help="First seed; seeds are consecutive (default: 1).")
    exp.add_argument("--workers", type=int, help="Parallel processes (default: the number of cores).")
    exp.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="A grid axis: the field (short name or dotted path) and its values, e.g. --set update_epochs=1,4,10 "
        "(repeatable).",
    )
    exp.add_argument("--config", type=Path, help="TOML file, as for train.")
    exp.add_argument("--preset", help="As for train.")
    _add_config_flags(exp, skip={"seed", "run_dir", "progress"})


def _tune_parser(verbs: Verbs) -> None:
    tune = verbs.add_parser("tune", help="Search hyperparameters with Optuna (TPE, median pruning) over a TOML space.")
    tune.add_argument(
        "--space", type=Path, required=True, help="TOML: one [field] table each, low/high/log or choices."
    )
    tune.add_argument("--study", type=Path, required=True, help="Study folder (study.db, trials/, best.toml, report).")
    tune.add_argument("--trials", type=int, default=20, help="Finished trials the study should have (default: 20).")
    tune.add_argument("--config", type=Path, help="TOML file, as for train: the base of every trial.")
    tune.add_argument("--preset", help="As for train.")
    _add_config_flags(tune, skip={"run_dir", "progress"})


def _lm_parser(verbs: Verbs) -> None:
    """``ppokit lm train|sft``: one flag per field of ``LMConfig`` (read lazily: transformers is
    the ``lm`` extra's); ``ppokit lm eval RUN``, ``ppokit lm tasks``."""
    lm = verbs.add_parser("lm", help="Language models: RL on a built-in task (ppokit lm train --help).")
    lm_verbs = lm.add_subparsers(dest="lm_verb", required=True)
    train = lm_verbs.add_parser("train", help="SFT on the task, then RL with --method; prints success before/after.")
    train.add_argument("--resume", type=Path, dest="lm_resume", help="Continue the run in this folder from its last "
                       "checkpoint (its config kept; --steps may extend it).")  # fmt: skip
    _parallel_flags(train, "prompts_per_step")
    _lm_config_flags(train)
    sft = lm_verbs.add_parser("sft", help="Only the supervised stage: writes RUN_DIR/model to start RL from.")
    _lm_config_flags(sft)
    ev = lm_verbs.add_parser("eval", help="A finished run's model: greedy success, reward, KL to the reference.")
    ev.add_argument("run", type=Path, help="A run folder of ppokit lm train.")
    ev.add_argument("--prompts-n", type=int, default=128, dest="lm_eval_n", help="Fresh prompts (default: 128).")
    ev.add_argument("--samples", type=int, default=5, dest="lm_samples", help="Completions to print (default: 5).")
    ev.add_argument("--seed", type=int, dest="lm_eval_seed", help="Seed of the prompts (default: the run's + 1).")
    lm_verbs.add_parser("tasks", help="List the built-in language-model tasks.")


def _lm_config_flags(parser: argparse.ArgumentParser) -> None:
    from ppokit.lm.config import LMConfig  # no transformers import: the config is plain

    hints = typing.get_type_hints(LMConfig)
    for f in dataclasses.fields(LMConfig):
        kind, flag = hints[f.name], "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata.get('help', '')} (default: {f.default!r})".replace("%", "%%")
        common: dict[str, Any] = {"dest": f"lm.{f.name}", "default": argparse.SUPPRESS, "help": help_text}
        if get_origin(kind) is typing.Literal:
            parser.add_argument(flag, choices=list(get_args(kind)), **common)
        elif get_origin(kind) in (typing.Union, types.UnionType):
            item = next(a for a in get_args(kind) if a is not type(None))
            parser.add_argument(flag, type=_optional(item), metavar=f.name.upper(), **common)
        else:
            parser.add_argument(flag, type=kind, metavar=f.name.upper(), **common)


def _optional(item: Any) -> Any:
    """An argparse ``type`` for an optional field: ``none`` or a value of ``item``'s type."""

    def parse(text: str) -> Any:
        if text.lower() == "none":
            return None
        if get_origin(item) is typing.Literal:
            if text not in get_args(item):
                raise argparse.ArgumentTypeError(f"{text!r}; allowed: none, {', '.join(get_args(item))}")
            return text
        return item(text)

    return parse


def _compare_parser(verbs: Verbs) -> None:
    cmp = verbs.add_parser(
        "compare", help="Train ppokit and Stable-Baselines3's PPO with the same hyperparameters, side by side."
    )
    cmp.add_argument("--steps", type=int, required=True, help="Env steps per run, for both libraries.")
    cmp.add_argument("--seeds", type=int, default=5, help="Seeds 1..S, the same for both (default: 5).")
    cmp.add_argument("--out", type=Path, required=True, help="Output folder (runs, comparison.md/json/png).")
    cmp.add_argument("--workers", type=int, help="Parallel processes (default: the number of cores).")
    cmp.add_argument("--config", type=Path, help="TOML file, as for train.")
    cmp.add_argument("--preset", help="As for train (default: the env's preset).")
    _add_config_flags(cmp, skip={"seed", "run_dir", "progress", "total_steps", "eval_episodes", "eval_every"})


def given_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields the user gave as flags, by dotted path (absent flags are not in ``args``)."""
    given = {path: getattr(args, path) for path in leaves() if hasattr(args, path)}
    if hasattr(args, "group_scale_std"):
        given["group_scale_std"] = args.group_scale_std
    return given


def resolve_config(args: argparse.Namespace) -> RunConfig:
    """defaults < preset < --config file < flags."""
    flags = given_flags(args)
    file_data: dict[str, Any] = {}
    if args.config is not None:
        try:
            file_data = tomllib.loads(args.config.read_text())
        except FileNotFoundError:
            raise ConfigError("config", f"{args.config} does not exist") from None
        except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
            raise ConfigError("config", f"{args.config} cannot be read as a TOML file ({type(e).__name__})") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError("config", f"{args.config} is not valid TOML ({e})") from None
    env_table = file_data.get("env")
    file_env = env_table.get("id") if isinstance(env_table, dict) else None  # from_dict names a non-table
    env_id = flags.get("env.id") or file_env or RunConfig().env.id
    config = RunConfig()
    preset_name = args.preset if args.preset is not None else preset_for(env_id)
    if preset_name != "none":
        preset = get_preset(preset_name)
        config = override(config, {"id": env_id if preset.covers(env_id) else preset.env_id, **preset.overrides})
    config = from_dict(file_data, base=config)
    return override(config, flags)


def train_flags(config: RunConfig) -> list[str]:
    """The ``ppokit train`` flags that reproduce ``config`` (fields that differ from the defaults),
    each by its shortest flag."""
    defaults, flags = RunConfig(), ["--preset", "none"]
    for path in leaves():
        value, default = _get(config, path), _get(defaults, path)
        if value == default:
            continue
        flag = _flags_of(path)[-1]
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, tuple):
            flags += [flag, *map(str, value)]
        else:
            flags += [flag, str(value)]
    return flags


def _get(config: RunConfig, path: str) -> Any:
    value: Any = config
    for part in path.split("."):
        value = getattr(value, part)
    return value
