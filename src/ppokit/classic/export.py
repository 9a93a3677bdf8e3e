"""Export a trained policy to ONNX: raw observations in, env actions out.

The exported graph is ``DeployedPolicy``: the observation normalization the policy was trained
with (its frozen statistics, as constants), the encoders and the action head's deterministic
action (argmax, or the Gaussian's mean), mapped to the env's space (Box actions clipped to the
bounds, Discrete and MultiDiscrete shifted by their ``start``), exactly as ``ppokit.load(...).act``
does. A second output, ``params``, holds the head's distribution parameters (logits, or the
mean) for whoever wants to sample or check. The batch axis is dynamic.

``export_onnx`` checks the file with onnxruntime against torch on random observations from
the observation space and reports the largest difference. It uses torch's own exporter
(``torch.onnx.export(dynamo=True)``, which needs ``onnxscript``); onnxruntime is only for the
check. For language models, ``model/`` of an LM run is already a ``save_pretrained`` folder.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from ppokit.classic.envs import obs_dtype
from ppokit.classic.policy import ActorCritic
from ppokit.errors import ConfigError

PARITY_SAMPLES = 256  # random observations of the onnxruntime check
BOX_TOLERANCE = 1e-5  # continuous actions agree within this (float32 graphs differ by ~1e-8); discrete: exactly


class DeployedPolicy(nn.Module):
    """The policy as deployed: raw observations ``[B, *obs_shape]`` -> ``(action, params)``."""

    def __init__(self, policy: ActorCritic, action_space: gym.Space[Any]) -> None:
        super().__init__()
        self.policy = policy
        self.box = isinstance(action_space, gym.spaces.Box)
        low, high = (action_space.low, action_space.high) if isinstance(action_space, gym.spaces.Box) else (0, 0)
        self.low: Tensor
        self.high: Tensor
        self.start: Tensor
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))
        self.register_buffer("start", torch.as_tensor(np.asarray(getattr(action_space, "start", 0)), dtype=torch.int64))

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        params, _ = self.policy(self.policy.normalize(obs))
        action = self.policy.head.mode(params)
        if self.box:
            return torch.clamp(action, self.low, self.high), params
        return action + self.start, params


@dataclass(frozen=True)
class ExportReport:
    path: Path
    samples: int
    max_param_error: float  # largest |params(onnxruntime) - params(torch)|
    max_action_error: float  # Box: largest |action| difference; discrete: 0 or 1 per differing action
    actions_equal: float  # fraction of the samples whose actions agree (discrete: identical; Box: BOX_TOLERANCE)


def export_onnx(policy: ActorCritic, obs_space: gym.Space[Any], action_space: gym.Space[Any], path: Path,
                seed: int = 0) -> ExportReport:  # fmt: skip
    """Write ``path`` (ONNX) for ``policy`` and check it with onnxruntime; ConfigError when the
    export packages are missing."""
    try:
        import onnxruntime
        import onnxscript  # noqa: F401  # torch's dynamo exporter needs it
    except ImportError as e:
        raise ConfigError("format", f"onnx export needs {e.name}, which is not installed; allowed: pip install "
                                    "'ppokit[export]'") from None  # fmt: skip
    module = DeployedPolicy(policy.cpu(), action_space).eval()
    obs = random_observations(obs_space, PARITY_SAMPLES, seed)
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad(), _quiet_exporter():
        program = torch.onnx.export(module, (obs[:2],), dynamo=True, input_names=["obs"],
                                    output_names=["action", "params"], dynamic_shapes=({0: batch},),
                                    verbose=False)  # fmt: skip
        assert program is not None  # dynamo=True returns the program
        path.parent.mkdir(parents=True, exist_ok=True)
        program.save(str(path))
        want_action, want_params = module(obs)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got_action, got_params = session.run(["action", "params"], {"obs": obs.numpy()})
    tolerance = BOX_TOLERANCE if module.box else 0.0
    equal = np.all((np.abs(got_action - want_action.numpy()) <= tolerance).reshape(len(obs), -1), axis=1)
    return ExportReport(
        path=path,
        samples=len(obs),
        max_param_error=float(np.max(np.abs(got_params - want_params.numpy()))),
        max_action_error=float(np.max(np.abs(got_action.astype(np.float64) - want_action.double().numpy()))),
        actions_equal=float(equal.mean()),
    )


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """torch's exporter logs a warning per torchvision op it cannot register, and warns of a
    deprecation inside itself: neither is the user's business."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        logger.setLevel(level)


def random_observations(space: gym.Space[Any], n: int, seed: int) -> Tensor:
    """``n`` observations drawn from ``space`` (normal draws on unbounded Box axes), in the
    dtype the policy takes them in."""
    if not isinstance(space, gym.spaces.Box):
        raise ConfigError("observation_space", f"{space}; allowed: Box observations")
    seeded = gym.spaces.Box(space.low, space.high, space.shape, space.dtype, seed=seed)
    return torch.as_tensor(np.stack([seeded.sample() for _ in range(n)]), dtype=obs_dtype(space))
