"""benchmarks/lm_trl.py in a few steps: ppokit's GRPO and TRL's GRPOTrainer from one saved SFT model."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("trl")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "lm_trl.py"
STEPS = 3


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lm_trl_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return _load()


@pytest.fixture(scope="module")
def sft_folder(bench: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lm-trl") / "sft"
    bench.build_sft_model(folder, seed=1, sft_steps=2)
    return folder


def test_the_sft_folder_loads_as_both_frameworks_load_it(sft_folder: Path) -> None:
    from ppokit.lm.models import load_causal_lm

    model, tokenizer = load_causal_lm(str(sft_folder))
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token_id != tokenizer.eos_token_id  # the char tokenizer's <pad> and <eos>
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert (model.config.n_layer, model.config.n_embd) == (2, 64)


def test_trl_gets_the_prompts_ppokit_draws(bench: ModuleType) -> None:
    prompts = bench.training_prompts(seed=1, steps=2)
    assert len(prompts) == 2 * bench.PROMPTS_PER_STEP
    assert prompts == bench.training_prompts(seed=1, steps=2)  # deterministic
    assert all(len(p) == 5 and p.endswith("=") for p in prompts)  # 5 tokens: no prompt is padded


def _check(run: object, framework: str) -> None:
    assert run.framework == framework  # type: ignore[attr-defined]
    for name in ("rewards", "success", "kl"):
        values = getattr(run, name)
        assert len(values) == STEPS, name
        assert all(math.isfinite(v) for v in values), name
    assert all(0.0 <= r <= 1.0 for r in run.rewards)  # type: ignore[attr-defined]
    assert run.kl[0] == pytest.approx(0.0, abs=1e-6)  # type: ignore[attr-defined]  # step 1: the policy is the reference
    times = run.step_seconds  # type: ignore[attr-defined]
    assert len(times) == STEPS - 1 and all(t > 0 for t in times)
    assert 0.0 <= run.eval_success <= 1.0  # type: ignore[attr-defined]
    assert 0.0 <= run.eval_reward <= 1.0  # type: ignore[attr-defined]


def test_both_frameworks_train_from_the_same_model(bench: ModuleType, sft_folder: Path, tmp_path: Path) -> None:
    ppokit_run = bench.run_ppokit(sft_folder, seed=1, steps=STEPS)
    trl_run = bench.run_trl(sft_folder, seed=1, steps=STEPS, work_dir=tmp_path / "trl")
    _check(ppokit_run, "ppokit")
    _check(trl_run, "trl")
    # The same start, the same prompts and reward: the first step's mean sampled rewards are close
    # (the completions differ: the frameworks draw from torch's RNG differently).
    assert abs(ppokit_run.rewards[0] - trl_run.rewards[0]) < 0.1


def test_the_tables_hold_every_run(bench: ModuleType) -> None:
    def run(framework: str, seed: int, seconds: float) -> object:
        return bench.RunResult(framework, seed, 4, [0.1, 0.2, 0.3, 0.4], [0.0] * 4, [0.0, 0.1, 0.1, 0.2],
                               [seconds] * 3, 0.5, 0.7, rss_after_imports_mb=400.0, peak_rss_mb=450.0)  # fmt: skip

    full = [run("ppokit", 1, 0.1), run("trl", 1, 0.2)]
    table = bench.full_run_table(full)
    assert table.count("\n") == 3  # header, rule, two rows
    speed, summary = bench.speed_table([(full[0], full[1])], full)
    assert summary["ratio_median"] == pytest.approx(2.0)  # ppokit twice TRL's steps/s
    assert summary["full_runs_total_ratio_median"] == pytest.approx(2.0)
    assert "| 2.00 |" in speed
