"""Observation encoders: a batch of observations ``[B, *obs_shape]`` to features ``[B, F]``.

The policy composes an encoder for the actor and one for the critic (or one shared) with its
action and value heads; ``make_encoder`` picks the encoder for an observation space: the MLP
for vectors, a CNN for images (integer or bool Box spaces of two or three axes). A new
encoder is one class here and one case in ``make_encoder``.

Encoders take observations in the dtype the rollout stores them in (``envs.obs_dtype``):
float observations as float32, already normalized, integer ones raw (uint8 pixels). Each
encoder converts to float itself, because how to scale raw integers is its own business (a
CNN divides pixels by 255; the MLP takes integer vectors as they are, as SB3 does).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ppokit.config import PolicyConfig
from ppokit.errors import ConfigError


class Encoder(Protocol):
    """What the policy needs of an encoder. It must also be an ``nn.Module``, so that the
    policy registers its weights (and saves them in its ``state_dict``)."""

    out_features: int  # F, the width of the features

    def __call__(self, obs: Tensor) -> Tensor:
        """``[B, *obs_shape]`` observations, in their stored dtype -> ``[B, F]`` float features."""
        ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...


def linear_layer(n_in: int, n_out: int, gain: float, ortho: bool) -> nn.Linear:
    """An ``nn.Linear``; with ``ortho``, orthogonal weights of ``gain`` and zero bias
    (Engstrom et al. 2020, "Implementation matters in deep policy gradients")."""
    layer = nn.Linear(n_in, n_out)
    if ortho:
        nn.init.orthogonal_(layer.weight, gain)
        nn.init.zeros_(layer.bias)
    return layer


class MLP(nn.Module):
    """Linear layers over the flattened observation, each followed by the activation.

    ``forward`` applies the layers' weights with ``F.linear`` rather than calling a module per
    layer (as ``nn.Sequential`` would): the rollout's forward at batch 1 takes 0.74-0.90x the
    time (``benchmarks/forward.py``).
    """

    def __init__(self, n_in: int, hidden: tuple[int, ...], activation: str, ortho: bool) -> None:
        super().__init__()
        self.activation = torch.tanh if activation == "tanh" else torch.relu
        sizes = (n_in, *hidden)
        self.out_features = sizes[-1]
        self.layers = nn.ModuleList(linear_layer(a, b, math.sqrt(2), ortho) for a, b in itertools.pairwise(sizes))

    def forward(self, obs: Tensor) -> Tensor:
        # Flatten and convert only when needed: two dispatcher calls per forward cost more than
        # these checks on the rollout's per-step path (batch 1 to N).
        x = obs if obs.dim() == 2 else obs.flatten(1)
        x = x if x.is_floating_point() else x.float()
        for layer in self.layers:
            x = self.activation(F.linear(x, layer.weight, layer.bias))  # type: ignore[arg-type]  # items typed Module
        return x


def conv_layer(n_in: int, n_out: int, kernel: int, stride: int, ortho: bool) -> nn.Conv2d:
    """An ``nn.Conv2d``; with ``ortho``, orthogonal weights of gain sqrt 2 and zero bias
    (CleanRL's ``ppo_atari.py`` initialization)."""
    layer = nn.Conv2d(n_in, n_out, kernel, stride)
    if ortho:
        nn.init.orthogonal_(layer.weight, math.sqrt(2))
        nn.init.zeros_(layer.bias)  # type: ignore[arg-type]  # Conv2d's bias exists (bias=True)
    return layer


@dataclass(frozen=True)
class ImageShape:
    """An image observation space read as channels, height and width, and how to get there."""

    channels: int
    height: int
    width: int
    channels_last: bool  # stored HWC: the encoder permutes to CHW
    scale: float  # raw value -> [0, 1]: 1/255 for uint8 pixels, 1 for bool grids

    @classmethod
    def of(cls, space: gym.spaces.Box, layout: str) -> ImageShape:
        shape = tuple(space.shape)
        if len(shape) == 2:  # one grayscale frame
            return cls(1, shape[0], shape[1], True, _scale(space))
        channels_last = layout == "hwc" or (layout == "auto" and not shape[0] < shape[-1])
        c, h, w = (shape[2], shape[0], shape[1]) if channels_last else shape
        return cls(c, h, w, channels_last, _scale(space))


def _scale(space: gym.spaces.Box) -> float:
    high = float(np.max(space.high))
    return 1.0 / high if math.isfinite(high) and high > 0 else 1.0


class CNN(nn.Module):
    """Convolutions over an image, then one linear layer; every layer followed by ReLU.

    Raw observations go in (uint8 pixels or bool grids, as the rollout stores them), are
    converted to float and scaled to [0, 1] here (``ImageShape.scale``), never running-
    normalized; HWC images are permuted to CHW here, so the rollout stores frames as the env
    returns them.
    """

    def __init__(self, image: ImageShape, convs: tuple[tuple[int, int, int], ...], out_features: int, ortho: bool):
        super().__init__()
        self.image = image
        layers: list[nn.Module] = []
        n_in = image.channels
        for n_out, kernel, stride in convs:
            layers += [conv_layer(n_in, n_out, kernel, stride, ortho), nn.ReLU()]
            n_in = n_out
        self.convs = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            n_flat = int(self.convs(torch.zeros(1, image.channels, image.height, image.width)).shape[1])
        self.linear = linear_layer(n_flat, out_features, math.sqrt(2), ortho)
        self.out_features = out_features

    def forward(self, obs: Tensor) -> Tensor:
        x = obs.to(torch.float32, copy=True)  # one float copy of the frames, scaled in place
        if self.image.scale != 1.0:
            x.mul_(self.image.scale)
        if x.dim() == 3:  # [B, H, W]: one grayscale frame
            x = x.unsqueeze(1)
        elif self.image.channels_last:
            x = x.permute(0, 3, 1, 2)
        return torch.relu(self.linear(self.convs(x)))


# (out channels, kernel, stride) per convolution, the linear layer's width, the smallest image side.
NATURE_CNN = ((32, 8, 4), (64, 4, 2), (64, 3, 1)), 512, 36  # Mnih et al. 2015, "Human-level control"
SMALL_CNN = ((16, 3, 1),), 128, 3  # Young & Tian 2019, MinAtar's network


def is_image(space: gym.Space[Any]) -> bool:
    """An image-shaped Box: two or three axes of integers (pixels) or bools (MinAtar's grids)."""
    return (
        isinstance(space, gym.spaces.Box)
        and len(space.shape) in (2, 3)
        and (np.issubdtype(space.dtype, np.integer) or np.issubdtype(space.dtype, np.bool_))
    )


def encoder_name(obs_space: gym.Space[Any], config: PolicyConfig) -> str:
    """The encoder ``config.encoder`` names, with auto resolved for this space."""
    if config.encoder != "auto":
        return config.encoder
    if not is_image(obs_space):
        return "mlp"
    image = ImageShape.of(obs_space, config.image_layout)  # type: ignore[arg-type]  # is_image: a Box
    return "nature-cnn" if min(image.height, image.width) >= NATURE_CNN[2] else "small-cnn"


def make_encoder(obs_space: gym.Space[Any], config: PolicyConfig) -> Encoder:
    """The encoder for an observation space (a new one each call: the actor's and the
    critic's are separate unless ``config.shared_trunk``); ConfigError for a space that no
    encoder takes."""
    if not isinstance(obs_space, gym.spaces.Box):
        raise ConfigError("observation_space", f"{obs_space} is not supported; allowed: Box observations")
    name = encoder_name(obs_space, config)
    if name == "mlp":
        n_in = int(np.prod(obs_space.shape))
        return MLP(n_in, config.hidden_sizes, config.activation, config.ortho_init)
    if len(obs_space.shape) not in (2, 3):
        raise ConfigError("encoder", f"{name} needs image observations (H, W) or (H, W, C) or (C, H, W); got shape "
                                     f"{obs_space.shape}; allowed: mlp")  # fmt: skip
    image = ImageShape.of(obs_space, config.image_layout)
    convs, width, smallest = NATURE_CNN if name == "nature-cnn" else SMALL_CNN
    if min(image.height, image.width) < smallest:
        raise ConfigError("encoder", f"{name} needs images of at least {smallest}x{smallest}; got "
                                     f"{image.height}x{image.width} (channels {image.channels}, "
                                     f"{'last' if image.channels_last else 'first'}); allowed: "
                                     f"{'small-cnn, mlp' if name == 'nature-cnn' else 'mlp'}")  # fmt: skip
    return CNN(image, convs, width, config.ortho_init)
