"""ppokit: a production-grade PPO in PyTorch.

The public names below are imported on first use, so that ``import ppokit.core`` (pure tensor
math) loads neither Gymnasium nor the trainer. Importing ``ppokit.classic`` (which ``train``,
``load`` and the CLI do) registers the verification envs ``ppokit/Bandit-v0`` and
``ppokit/GridWorld-v0`` with Gymnasium.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ppokit.errors import CheckpointError, ConfigError, NonFiniteError, PPOKitError

if TYPE_CHECKING:
    from ppokit.api import Policy, load
    from ppokit.classic.evaluation import EvalResult
    from ppokit.classic.hooks import Hooks, RolloutEvent, UpdateEvent
    from ppokit.classic.trainer import TrainResult, train
    from ppokit.config import AlgoConfig, EnvConfig, PolicyConfig, RunConfig
    from ppokit.presets import PRESETS
    from ppokit.runtime import Process

_LAZY = {
    "Policy": "ppokit.api",
    "load": "ppokit.api",
    "EvalResult": "ppokit.classic.evaluation",
    "Hooks": "ppokit.classic.hooks",
    "RolloutEvent": "ppokit.classic.hooks",
    "UpdateEvent": "ppokit.classic.hooks",
    "TrainResult": "ppokit.classic.trainer",
    "train": "ppokit.classic.trainer",
    "AlgoConfig": "ppokit.config",
    "EnvConfig": "ppokit.config",
    "PolicyConfig": "ppokit.config",
    "RunConfig": "ppokit.config",
    "PRESETS": "ppokit.presets",
    "Process": "ppokit.runtime",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module the first time the name is used (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'ppokit' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "PRESETS",
    "AlgoConfig",
    "CheckpointError",
    "ConfigError",
    "EnvConfig",
    "EvalResult",
    "Hooks",
    "NonFiniteError",
    "PPOKitError",
    "Policy",
    "PolicyConfig",
    "Process",
    "RolloutEvent",
    "RunConfig",
    "TrainResult",
    "UpdateEvent",
    "load",
    "train",
]
__version__ = "0.1.0"
