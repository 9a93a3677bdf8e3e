"""What the classic trainer does differently under several processes (``ppokit.parallel``).

- **The batch is the union** of every rank's rollout: ``env.num_envs`` envs per rank, and
  ``total_steps`` counts the env steps of all ranks together (``num_updates``).
- **Episodes are shared**: every rank gets the union of the episodes all ranks finished
  (``shared_episodes``), so that the episode metrics, the health checks and the step counter
  are the same on every rank. Loss metrics are means over the ranks.
- **Evaluations are dealt out**: rank r plays its share of the episodes with its own seed
  (``shared_evaluation``), and every rank gets the union.
- **A checkpoint holds every rank's part**: the rollout's carry-over, the RNGs and the envs'
  state of each rank (``rank_parts``), written by rank 0 next to the shared state; a resume
  with the same world size gives each rank its own part back (``for_rank``); one with another
  world size is refused.

With one process (``Solo``) every function here returns its input.
"""

from __future__ import annotations

import io
from typing import Any

import torch

from ppokit.classic.envs import VecEnv, snapshot
from ppokit.classic.evaluation import EvalResult
from ppokit.classic.rollout import Episodes
from ppokit.classic.state import TrainState
from ppokit.config import RunConfig
from ppokit.errors import CheckpointError, ConfigError
from ppokit.parallel import Comm, union

PER_RANK = ("rollout", "rng")  # the parts of TrainState that differ between ranks (with the envs' state)


def num_updates(config: RunConfig, world_size: int) -> int:
    """Updates of the run: every update takes ``batch_size`` env steps on every rank."""
    return max(1, config.total_steps // (config.batch_size * world_size))


def check_world_size(config: RunConfig, world_size: int) -> None:
    """ConfigError unless ``world_size`` processes can take one update of the run."""
    if config.total_steps < config.batch_size * world_size:
        raise ConfigError("nproc", f"{world_size} processes take {config.batch_size * world_size:,} env steps per "
                                   f"update ({config.batch_size:,} each), more than total_steps "
                                   f"({config.total_steps:,}); allowed: at most "
                                   f"{max(1, config.total_steps // config.batch_size)}")  # fmt: skip


def shared_episodes(comm: Comm, episodes: Episodes) -> Episodes:
    """The union of every rank's finished episodes, info sums and env steps."""
    if comm.process.world_size == 1:
        return episodes
    parts: list[Episodes] = comm.all_gather(episodes)
    merged = Episodes(union([p.returns for p in parts]), union([p.lengths for p in parts]))
    for part in parts:
        for key, value in part.info_sums.items():
            merged.info_sums[key] = merged.info_sums.get(key, 0.0) + value
            merged.info_counts[key] = merged.info_counts.get(key, 0) + part.info_counts[key]
    merged.env_steps = sum(p.env_steps for p in parts)
    return merged


def shared_evaluation(comm: Comm, mine: EvalResult | None, deterministic: bool) -> EvalResult:
    """Every rank's evaluation episodes together (a rank whose share was 0 sends None)."""
    if comm.process.world_size == 1 and mine is not None:
        return mine
    parts = [p for p in comm.all_gather(mine) if p is not None]
    return EvalResult(union([p.returns for p in parts]), union([p.lengths for p in parts]), deterministic)


def rank_parts(comm: Comm, state: TrainState, vec: VecEnv) -> list[dict[str, Any]] | None:
    """Every rank's own part of a checkpoint, in rank order (None with one process: the state
    itself holds it)."""
    if comm.process.world_size == 1:
        return None
    saved = state.state_dict()
    mine = {name: saved[name] for name in PER_RANK} | {"env_state": snapshot(vec)}
    buffer = io.BytesIO()
    torch.save(mine, buffer)  # tensors travel as torch's own bytes (all_gather_object cannot pickle some)
    parts = comm.all_gather(buffer.getvalue())
    return [torch.load(io.BytesIO(part), weights_only=False) for part in parts]  # this run's own ranks


def for_rank(saved: dict[str, Any], rank: int, world_size: int) -> dict[str, Any]:
    """The checkpoint as rank ``rank`` resumes it: the shared state with its own part in place.
    CheckpointError when the checkpoint was written by another number of processes."""
    parts = saved.get("ranks")
    if parts is not None and not isinstance(parts, list):
        raise CheckpointError(f"checkpoint: ranks is {type(parts).__name__}; expected a list of each rank's part")
    written_by = 1 if parts is None else len(parts)
    if written_by != world_size:
        raise CheckpointError(f"checkpoint: written by {written_by} process(es), resumed with {world_size}; "
                              f"resume with --nproc {written_by}: each rank's envs and RNGs are its own")  # fmt: skip
    if parts is None:
        return saved
    part = parts[rank]
    if not isinstance(part, dict) or set(part) != {*PER_RANK, "env_state"}:
        raise CheckpointError(f"checkpoint: ranks[{rank}] is not a rank's part ({', '.join(PER_RANK)}, env_state)")
    state = dict(saved["state"]) | {name: part[name] for name in PER_RANK}
    return saved | {"state": state, "env_state": part["env_state"]}
