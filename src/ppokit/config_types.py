"""Type checks of configuration values against their fields' type hints, shared by every
route a configuration takes (TOML, flags, ``--set``, the Python API, a saved config) and by
both trainers' configs: one error shape, ``field: got X (type), expected Y``; the choices of
the run configuration's string fields, and a field with its help text."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import field
from typing import Any, Literal, get_args, get_origin

from ppokit.errors import ConfigError

Vectorization = Literal["auto", "native", "sync", "async"]
Activation = Literal["tanh", "relu"]
EncoderName = Literal["auto", "mlp", "nature-cnn", "small-cnn"]
ImageLayout = Literal["auto", "hwc", "chw"]
WandbMode = Literal["online", "offline"]
VECTORIZATIONS: tuple[str, ...] = get_args(Vectorization)
ACTIVATIONS: tuple[str, ...] = get_args(Activation)


def described(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field with its help text (and, for a string chosen from a table, the choices)."""
    metadata: dict[str, Any] = {"help": help} if choices is None else {"help": help, "choices": choices}
    return field(default=default, metadata=metadata)


def typed(path: str, value: Any, kind: Any) -> Any:
    """``value`` as a value of the field ``path`` of type ``kind`` (an int where a float is
    expected becomes a float, a list a tuple); ConfigError "got X, expected Y" otherwise. A
    TOML string is never a bool or a number: ``norm_obs = "false"`` is refused, not true."""
    if get_origin(kind) in (typing.Union, types.UnionType):
        if value is None:
            return None
        kind = next(a for a in get_args(kind) if a is not type(None))
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and number and isinstance(value, int):
        return value
    if kind is float and number:
        if value != value:  # NaN: no range check can hold for it, no rule with it can fire
            raise ConfigError(path, "got nan, expected a number (not NaN)")
        return float(value)
    if kind is str and isinstance(value, str):
        return value
    if get_origin(kind) is Literal and isinstance(value, str) and value in get_args(kind):
        return value
    if get_origin(kind) is tuple and isinstance(value, list | tuple):
        item = get_args(kind)[0]
        return tuple(typed(f"{path}[{i}]", x, item) for i, x in enumerate(value))
    raise ConfigError(path, f"got {shown(value)}, expected {_describe(kind)}")


def _describe(kind: Any, plural: bool = False) -> str:
    if get_origin(kind) is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(kind))
    if get_origin(kind) is tuple:
        return f"a list of {_describe(get_args(kind)[0], plural=True)}"
    names = {bool: ("true or false", "booleans"), int: ("an integer", "integers"), float: ("a number", "numbers"),
             str: ("a string", "strings")}  # fmt: skip
    return names[kind][plural] if kind in names else str(kind)


def shown(value: Any) -> str:
    text = repr(value)
    return f"{text if len(text) <= 40 else text[:37] + '...'} ({type(value).__name__})"


def check_types(config: Any, where: str = "") -> None:
    """ConfigError for the first leaf of ``config`` (a config dataclass tree, however it was
    built: TOML, flags, the Python API, a checkpoint) whose value does not have its field's type."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):  # a section
            check_types(value, f"{where}{f.name}.")
        else:
            typed(f"{where}{f.name}", value, hints[f.name])
