"""The language-model learning tests start from supervised models built once per session,
as RL starts from an SFT model in practice (and as ``benchmarks/lm_results.py`` does)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

SFTModel = Callable[[str, int, int], Path]


@pytest.fixture(scope="session")
def sft_model(tmp_path_factory: pytest.TempPathFactory) -> SFTModel:
    """``sft_model(task, seed, sft_steps)``: the folder of that supervised model, built on
    first use (``ppokit.lm.trainer.supervise``) and shared by every test that asks again."""
    pytest.importorskip("transformers")
    from ppokit.lm.config import LMConfig
    from ppokit.lm.trainer import supervise

    built: dict[tuple[str, int, int], Path] = {}

    def get(task: str, seed: int, sft_steps: int) -> Path:
        key = (task, seed, sft_steps)
        if key not in built:
            run_dir = tmp_path_factory.mktemp(f"sft-{task}-{seed}-{sft_steps}") / "sft"
            built[key], _ = supervise(LMConfig(task=task, seed=seed, sft_steps=sft_steps, run_dir=str(run_dir)))
        return built[key]

    return get
