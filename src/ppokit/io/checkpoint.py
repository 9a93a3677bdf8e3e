"""One versioned checkpoint file, written atomically and loaded without executing code.

The file holds plain containers of tensors, numbers and strings only, so that
``torch.load(weights_only=True)`` can read it: weights, optimizer state, normalizer
statistics (inside the policy's state dict and the return normalizer), RNG states, the
global step, the update index (the schedule position), the env snapshot and the config.
"""

from __future__ import annotations

import io
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppokit.errors import CheckpointError
from ppokit.io.run_dir import checkpoint_path

FORMAT = "ppokit-checkpoint"
# 4: the training state under "state", one key per TrainState field (3: at the top level);
# 3: Adam's state is one flat tensor (optim.FlatAdam; 2: one per parameter);
# 2: the MLP trunks' weights are named actor_trunk.layers.N (1: actor_trunk.N)
VERSION = 4
# The file's parts; what "state" must hold is TrainState's to say (ppokit.classic.state.check_keys).
REQUIRED_KEYS = ("format", "version", "config", "state", "env_state", "spaces")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save(path: Path, payload: dict[str, Any]) -> None:
    payload = {"format": FORMAT, "version": VERSION, **payload}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely; CheckpointError if it is missing, corrupt or not ppokit's."""
    p = Path(path)
    p = checkpoint_path(p)
    if not p.is_file():
        raise CheckpointError(f"checkpoint: {p} does not exist")
    try:
        data = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint: {p} is corrupt or not a ppokit checkpoint ({first_line})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint: {p} is not a ppokit checkpoint")
    if data.get("version") != VERSION:
        raise CheckpointError(f"checkpoint: {p} has format version {data.get('version')}; this ppokit reads {VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"checkpoint: {p} lacks {', '.join(missing)}")
    return data


def rng_states(generator: torch.Generator) -> dict[str, Any]:
    """Every RNG the trainer draws from, as plain data."""
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    keys = np.asarray(keys)
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "shuffle": generator.get_state(),
        "numpy": [name, torch.from_numpy(keys.copy()), pos, has_gauss, cached],
        "python": _python_state_to_plain(random.getstate()),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(states["torch"])
    generator.set_state(states["shuffle"])
    n = states["numpy"]
    np.random.set_state((n[0], n[1].numpy(), *n[2:]))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _python_state_to_plain(state: tuple[Any, ...]) -> list[Any]:
    version, internal, gauss = state
    return [version, list(internal), gauss]
