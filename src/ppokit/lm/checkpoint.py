"""A language-model run folder: what it holds, and checkpoints that resume a run exactly.

    config.toml        the run's configuration (an ``[lm]`` table)
    metrics.jsonl      one line per RL step (``global_step`` counts completions)
    tensorboard/       the same metrics as TensorBoard events
    reference/         the model after SFT with its tokenizer (``save_pretrained``): the
                       reference, and with LoRA the base the adapters sit on
    checkpoints/last/  model/ (``save_pretrained``: the whole policy, or its LoRA adapter),
                       critic/ (PPO with its own critic model), state.pt (step, metrics so far,
                       optimizer, value head, RNGs)
    eval.json          greedy success and reward after SFT and after RL
    model/             the trained model with its tokenizer (adapters merged in):
                       ``AutoModelForCausalLM.from_pretrained`` reads it
    adapter/           with LoRA: the adapter alone (``peft``)

A checkpoint is written beside the last one and swapped in by renames, so a crash while
writing leaves the previous one whole; its manifest.json holds the SHA-256 of every file in
it, checked before a resume reads anything.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, cast

import torch
from transformers import PreTrainedModel
from transformers import PreTrainedTokenizerBase as Tokenizer

from ppokit.errors import CheckpointError, ConfigError
from ppokit.io.checkpoint import atomic_write_bytes, atomic_write_text
from ppokit.lm.config import LMConfig
from ppokit.lm.policy import AdamW, Policy, ValueHead, device_of
from ppokit.runtime import Process

FORMAT, VERSION = "ppokit-lm-checkpoint", 1
REFERENCE, LAST, STATE, MANIFEST = "reference", "last", "state.pt", "manifest.json"


@dataclass
class RunState:
    """What a step changes besides the weights: enough to continue exactly."""

    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    before: dict[str, float] = field(default_factory=dict)  # the evaluation after SFT
    health: dict[str, Any] | None = None  # the health rules' state at the checkpoint


def write_config(root: Path, config: LMConfig) -> None:
    import tomli_w

    root.mkdir(parents=True, exist_ok=True)
    values = {k: v for k, v in asdict(config).items() if v is not None}
    atomic_write_text(root / "config.toml", tomli_w.dumps({"lm": values}))


def read_config(root: Path, name: str = "resume") -> LMConfig:
    """The configuration of the run in ``root``; ConfigError naming ``name`` if there is none."""
    path = root / "config.toml"
    if not path.is_file():
        raise ConfigError(name, f"{root} holds no language-model run (no config.toml)")
    table = tomllib.loads(path.read_text()).get("lm")
    if not isinstance(table, dict):
        raise ConfigError(name, f"{path} has no [lm] table: not a language-model run")
    known = {f.name for f in fields(LMConfig)}
    return LMConfig(**{k: v for k, v in table.items() if k in known})


def save_reference(root: Path, model: PreTrainedModel, tokenizer: Tokenizer) -> None:
    """The SFT model and its tokenizer, once, before adapters or RL change anything."""
    model.save_pretrained(root / REFERENCE)
    tokenizer.save_pretrained(root / REFERENCE)


def rng_state(rng: random.Random, generator: torch.Generator) -> dict[str, Any]:
    """This process's RNGs: the prompts', torch's (sampling draws from it) and the shuffle's."""
    return {"prompts": _plain(rng.getstate()), "torch": torch.get_rng_state(), "shuffle": generator.get_state(),
            **({"cuda": torch.cuda.get_rng_state_all()} if torch.cuda.is_available() else {})}  # fmt: skip


def set_rng_state(saved: dict[str, Any], rng: random.Random, generator: torch.Generator) -> None:
    rng.setstate(_tuple(saved["prompts"]))
    torch.set_rng_state(saved["torch"])
    generator.set_state(saved["shuffle"])
    if "cuda" in saved and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda"])  # sampling on cuda draws from its generators


def save_checkpoint(
    root: Path, policy: Policy, optimizer: AdamW, state: RunState, rngs: list[dict[str, Any]],
    health: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    """``rngs``: every rank's ``rng_state``, in rank order (one with one process); ``health``:
    the health rules' state (``LMHealth.state_dict``), restored as it was."""
    checkpoints = root / "checkpoints"
    tmp, last, old = checkpoints / f"{LAST}.tmp", checkpoints / LAST, checkpoints / f"{LAST}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    policy.model.save_pretrained(tmp / "model")
    policy.tokenizer.save_pretrained(tmp / "model")
    if policy.critic is not None:
        policy.critic.save_pretrained(tmp / "critic")
    payload = {"format": FORMAT, "version": VERSION, "step": state.step, "history": state.history,
               "before": state.before, "optimizer": optimizer.state_dict(),
               "head": None if policy.head is None else policy.head.state_dict(),
               "health": health, "rng": rngs[0], "ranks": rngs if len(rngs) > 1 else None}  # fmt: skip
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(tmp / STATE, buffer.getvalue())
    atomic_write_text(tmp / MANIFEST, json.dumps(_digests(tmp), indent=1))
    if last.exists():
        shutil.rmtree(old, ignore_errors=True)
        last.rename(old)
    tmp.rename(last)
    shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(root: Path) -> Path | None:
    """The last whole checkpoint (the previous one if a swap was cut short)."""
    for name in (LAST, f"{LAST}.old"):
        folder = root / "checkpoints" / name
        if (folder / STATE).is_file():
            return folder
    return None


def restore(
    root: Path, config: LMConfig, rng: random.Random, generator: torch.Generator, critic: bool,
    process: Process | None = None,
) -> tuple[Policy, AdamW, RunState]:  # fmt: skip
    """The policy, optimizer and run state of the last checkpoint in ``root``, and the RNGs set
    to where this rank of ``process`` (one process: None) stopped."""
    from transformers import AutoModelForCausalLM

    from ppokit.lm.models import load_causal_lm

    folder, data = _load_state(root)
    rank_rngs(data, process or Process())  # another world size: refused before the models load
    reference, tokenizer = load_causal_lm(str(root / REFERENCE))
    if config.lora_rank > 0:
        from peft import PeftModel

        adapted = PeftModel.from_pretrained(reference, str(folder / "model"), is_trainable=True)
        adapted.eval()
        policy = Policy(cast(PreTrainedModel, adapted), tokenizer, None)  # a PeftModel: the same interface
    else:
        model, _ = load_causal_lm(str(folder / "model"))
        policy = Policy(model, tokenizer, reference.requires_grad_(False))
    policy = _to_device(policy, config)
    if critic:
        if config.critic == "model":
            policy.critic = AutoModelForCausalLM.from_pretrained(folder / "critic")
            policy.critic.eval()  # type: ignore[no-untyped-call]  # transformers' override is untyped
            torch.nn.Module.to(policy.critic, policy.device)
        policy.head = ValueHead(policy.model.config.hidden_size).to(policy.device)
        policy.head.load_state_dict(data["head"])
    optimizer = AdamW(policy.trainable(), config.learning_rate, config.weight_decay)
    optimizer.load_state_dict(data["optimizer"])
    set_rng_state(rank_rngs(data, process or Process()), rng, generator)
    return policy, optimizer, RunState(data["step"], data["history"], data["before"], data.get("health"))


def check_world_size(root: Path, world_size: int) -> None:
    """CheckpointError unless the last checkpoint in ``root`` was written by ``world_size``
    processes (checked before a resume starts them)."""
    rank_rngs(_load_state(root)[1], Process(0, world_size))


def _load_state(root: Path) -> tuple[Path, dict[str, Any]]:
    """The last checkpoint's folder and its ``state.pt``, checked against its manifest, format
    and version (CheckpointError, one line, otherwise)."""
    folder = latest_checkpoint(root)
    if folder is None:
        raise CheckpointError(f"checkpoint: {root} holds no checkpoint to resume (none was written yet)")
    _verify(folder)
    try:
        data = torch.load(folder / STATE, weights_only=True, map_location="cpu")  # the optimizer moves its state
    except Exception as e:
        raise CheckpointError(f"checkpoint: {folder / STATE} is corrupt ({type(e).__name__})") from None
    if data.get("format") != FORMAT or data.get("version") != VERSION:
        raise CheckpointError(f"checkpoint: {folder / STATE} is not a ppokit language-model checkpoint of version "
                              f"{VERSION}")  # fmt: skip
    return folder, data


def rank_rngs(data: dict[str, Any], process: Process) -> dict[str, Any]:
    """This rank's RNGs in a checkpoint; CheckpointError when another number of processes wrote
    it (each rank samples its own prompts and completions)."""
    parts = data.get("ranks")
    written_by = 1 if parts is None else len(parts)
    if written_by != process.world_size:
        raise CheckpointError(f"checkpoint: written by {written_by} process(es), resumed with {process.world_size}; "
                              f"resume with --nproc {written_by}: each rank samples its own prompts")  # fmt: skip
    return cast(dict[str, Any], data["rng"] if parts is None else parts[process.rank])


def _digests(folder: Path) -> dict[str, str]:
    """The SHA-256 of every file of a checkpoint folder, by relative path."""
    return {str(p.relative_to(folder)): _sha256(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MANIFEST}  # fmt: skip


def _sha256(path: Path) -> str:
    with path.open("rb") as f:  # streamed: a model's weights need not fit in memory twice
        return hashlib.file_digest(f, "sha256").hexdigest()


def _verify(folder: Path) -> None:
    """CheckpointError unless every file the manifest lists is there with its digest."""
    if not (folder / MANIFEST).exists():
        return  # written before checkpoints had manifests: nothing to check against
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        raise CheckpointError(f"checkpoint: {folder}/{MANIFEST} is unreadable: the checkpoint is damaged") from None
    if not isinstance(manifest, dict):
        raise CheckpointError(f"checkpoint: {folder}/{MANIFEST} is not a table of checksums")
    found = _digests(folder)
    damaged = sorted(name for name, digest in manifest.items() if found.get(name) != digest)
    if damaged:
        raise CheckpointError(f"checkpoint: {folder} is damaged: {', '.join(damaged[:3])} do not match their checksums")


def _to_device(policy: Policy, config: LMConfig) -> Policy:
    device = device_of(config.device)
    torch.nn.Module.to(policy.model, device)
    if policy.reference is not None:
        torch.nn.Module.to(policy.reference, device)
    return policy


def _plain(state: tuple[Any, ...]) -> list[Any]:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _tuple(state: list[Any]) -> tuple[Any, ...]:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
