"""One versioned checkpoint file, written atomically and loaded without executing code.

The file holds plain containers of tensors, numbers and strings only, so that
``torch.load(weights_only=True)`` can read it: weights, optimizer state, normalizer
statistics (inside the policy's state dict and the return normalizer), RNG states, the
global step, the update index (the schedule position), the env snapshot and the config.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ppokit.errors import CheckpointError, ConfigError
from ppokit.io.run_dir import checkpoint_path

if TYPE_CHECKING:
    from ppokit.config import RunConfig

FORMAT = "ppokit-checkpoint"
# 5: the payload is stored as bytes beside their SHA-256 (a flipped byte is refused), and
#    non-finite weights are refused on load (4 reads without the checksum);
# 4: the training state under "state", one key per TrainState field (3: at the top level);
# 3: Adam's state is one flat tensor (optim.FlatAdam; 2: one per parameter);
# 2: the MLP trunks' weights are named actor_trunk.layers.N (1: actor_trunk.N)
VERSION = 5
READS = (4, 5)
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


def _serialize(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def save(path: Path, payload: dict[str, Any]) -> None:
    """The payload serialized, and the file: format, version, the payload's bytes and their
    SHA-256, written atomically."""
    inner = _serialize({"format": FORMAT, "version": VERSION, **payload})
    body = torch.frombuffer(bytearray(inner), dtype=torch.uint8)
    outer = {"format": FORMAT, "version": VERSION, "sha256": hashlib.sha256(inner).hexdigest(), "payload": body}
    atomic_write_bytes(path, _serialize(outer))


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely; CheckpointError if it is missing, corrupt or not ppokit's."""
    p = Path(path)
    p = checkpoint_path(p)
    if not p.is_file():
        raise CheckpointError(f"checkpoint: {p} does not exist")
    data: dict[str, Any] = _read(p, p.read_bytes(), map_location)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint: {p} is not a ppokit checkpoint")
    if data.get("version") not in READS:
        raise CheckpointError(f"checkpoint: {p} has format version {data.get('version')}; this ppokit reads "
                              f"{', '.join(map(str, READS))}")  # fmt: skip
    if data["version"] >= 5:
        data = _unwrap(p, data, map_location)
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"checkpoint: {p} lacks {', '.join(missing)}")
    return data


def _read(p: Path, raw: bytes, map_location: str | torch.device) -> Any:
    try:
        return torch.load(io.BytesIO(raw), map_location=map_location, weights_only=True)
    except Exception as e:  # torch's unpickler fails in many ways on damaged bytes
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint: {p} is corrupt or not a ppokit checkpoint ({first_line})") from None


def _unwrap(p: Path, outer: dict[str, Any], map_location: str | torch.device) -> dict[str, Any]:
    """The payload of a version-5 file, after its checksum matched."""
    body, digest = outer.get("payload"), outer.get("sha256")
    if (
        not isinstance(body, torch.Tensor)
        or body.dtype != torch.uint8
        or body.dim() != 1
        or not isinstance(digest, str)
    ):
        raise CheckpointError(f"checkpoint: {p} is corrupt (no payload and checksum)")
    inner = body.numpy().tobytes()
    if hashlib.sha256(inner).hexdigest() != digest:
        raise CheckpointError(f"checkpoint: {p} is corrupt (its checksum does not match: the file was damaged)")
    data = _read(p, inner, map_location)
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint: {p} is corrupt (the payload is not a table)")
    return data


def check_finite(tensors: dict[str, Any], what: str) -> None:
    """CheckpointError naming the first tensor of ``tensors`` that holds a NaN or inf."""
    for name, value in tensors.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"checkpoint: {what} {name} holds NaN or inf; allowed: finite weights")


def saved_config(data: dict[str, Any]) -> RunConfig:
    """The ``RunConfig`` a checkpoint was saved with, type-checked; CheckpointError otherwise."""
    from ppokit.config import from_dict

    if not isinstance(data.get("config"), dict):
        raise CheckpointError("checkpoint: its config is not a table")
    try:
        return from_dict(data["config"])
    except ConfigError as e:
        raise CheckpointError(f"checkpoint: its saved config is invalid ({e})") from None


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
