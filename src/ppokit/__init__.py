"""ppokit: a production-grade PPO in PyTorch."""

from ppokit.api import Policy, load
from ppokit.config import AlgoConfig, EnvConfig, PolicyConfig, RunConfig
from ppokit.errors import CheckpointError, ConfigError, NonFiniteError, PPOKitError
from ppokit.evaluation import EvalResult
from ppokit.presets import PRESETS
from ppokit.trainer import TrainResult, train
from ppokit.verification_envs import register_envs as _register_verification_envs

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
