"""ppokit: a production-grade PPO in PyTorch."""

from ppokit.api import Policy, load
from ppokit.classic.evaluation import EvalResult
from ppokit.classic.trainer import TrainResult, train
from ppokit.classic.verification_envs import register_envs as _register_verification_envs
from ppokit.config import AlgoConfig, EnvConfig, PolicyConfig, RunConfig
from ppokit.errors import CheckpointError, ConfigError, NonFiniteError, PPOKitError
from ppokit.presets import PRESETS

_register_verification_envs()  # ppokit/Bandit-v0, ppokit/GridWorld-v0

__all__ = [
    "PRESETS",
    "AlgoConfig",
    "CheckpointError",
    "ConfigError",
    "EnvConfig",
    "EvalResult",
    "NonFiniteError",
    "PPOKitError",
    "Policy",
    "PolicyConfig",
    "RunConfig",
    "TrainResult",
    "load",
    "train",
]
__version__ = "0.1.0"
