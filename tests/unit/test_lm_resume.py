"""Language-model runs stop and resume exactly: a run cut after two steps and resumed equals
the run straight through (group methods, PPO's value head and KL coefficient, LoRA adapters);
a reward that fails mid-run leaves the last checkpoint whole; bad resumes are one line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from ppokit.errors import CheckpointError, ConfigError
from ppokit.lm.checkpoint import latest_checkpoint
from ppokit.lm.config import LMConfig
from ppokit.lm.rewards import RewardError
from ppokit.lm.trainer import train

TINY = {"steps": 4, "sft_steps": 2, "prompts_per_step": 4, "group_size": 4, "minibatch_size": 8, "eval_prompts": 8,
        "width": 32, "save_every": 3}  # fmt: skip


def _lines(run: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("extra", [{"method": "grpo"}, {"method": "ppo", "kl_target": 0.05, "kl_horizon": 32},
                                   {"method": "rloo", "lora_rank": 4},
                                   {"method": "ppo", "critic": "model"}])  # fmt: skip
def test_a_stopped_run_resumes_exactly(tmp_path: Path, extra: dict[str, object]) -> None:
    straight = train(LMConfig(run_dir=str(tmp_path / "a"), **TINY, **extra))  # type: ignore[arg-type]  # Literal strs
    cut = train(LMConfig(run_dir=str(tmp_path / "b"), **TINY, **extra), stop_after=2)  # type: ignore[arg-type]
    assert cut.stopped and len(cut.metrics) == 2 and math.isnan(cut.success)
    assert not (tmp_path / "b" / "model").exists()  # not finished: only the checkpoint
    resumed = train(resume=tmp_path / "b")
    assert resumed.metrics == straight.metrics  # two minibatches a step: the shuffle, the optimizer, every RNG
    assert (resumed.success, resumed.reward) == (straight.success, straight.reward)
    assert resumed.success_after_sft == straight.success_after_sft
    assert _lines(tmp_path / "b") == _lines(tmp_path / "a")
    diagnostics = [json.loads((tmp_path / x / "diagnostics.json").read_text()) for x in "ab"]
    assert diagnostics[0] == diagnostics[1]  # the health rules' state travels in the checkpoint


def test_resume_extends_a_finished_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(LMConfig(run_dir=str(run), **TINY))
    assert train(resume=run, steps=6, stop_after=1).stopped  # at step 5 of the 6 it was extended to
    longer = train(resume=run)  # the extension was written to config.toml: it runs on to step 6
    assert len(longer.metrics) == 6 and [row["update"] for row in _lines(run)] == [1, 2, 3, 4, 5, 6]
    straight = train(LMConfig(run_dir=str(tmp_path / "straight"), **{**TINY, "steps": 6}))
    assert longer.metrics == straight.metrics
    with pytest.raises(ConfigError, match=r"steps: 3: the run in .* is at step 6 already; allowed: >= 6"):
        train(resume=run, steps=3)


def test_resume_needs_only_the_run_folder(tmp_path: Path) -> None:
    """The model folder a run started from may be gone: the run holds its reference."""
    import shutil

    train(LMConfig(run_dir=str(tmp_path / "sft"), **TINY))
    start = tmp_path / "start"
    shutil.copytree(tmp_path / "sft" / "model", start)
    run = tmp_path / "run"
    train(LMConfig(model=str(start), run_dir=str(run), **{**TINY, "sft_steps": 0}), stop_after=2)
    shutil.rmtree(start)
    assert len(train(resume=run).metrics) == 4


_CALLS = {"n": 0}


def fails_on_the_fifth_call(prompts: list[str], completions: list[str]) -> list[float]:
    _CALLS["n"] += 1
    if _CALLS["n"] == 5:
        raise RuntimeError("the scoring service went away")
    return [float(len(c) == 4) for c in completions]


def test_a_reward_failing_mid_run_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    rows = tmp_path / "prompts.jsonl"
    rows.write_text("".join(json.dumps({"prompt": f"{d}="}) + "\n" for d in "123"))
    run = tmp_path / "run"
    config = LMConfig(prompts=str(rows), reward="tests.unit.test_lm_resume:fails_on_the_fifth_call", run_dir=str(run),
                      **{**TINY, "sft_steps": 0, "steps": 8, "save_every": 2})  # fmt: skip
    _CALLS["n"] = 0
    with pytest.raises(RewardError, match="the reward function raised RuntimeError: the scoring service went away"):
        train(config)  # call 1 is the evaluation after SFT, calls 2-4 steps 1-3: step 4 fails
    folder = latest_checkpoint(run)
    assert folder is not None and folder.name == "last"
    assert [row["update"] for row in _lines(run)] == [1, 2, 3]  # steps 1-3 logged; the checkpoint holds step 2
    _CALLS["n"] = -100  # the service is back
    resumed = train(resume=run)
    assert len(resumed.metrics) == 8 and [row["update"] for row in _lines(run)] == list(range(1, 9))


def test_bad_resumes_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"resume: .* holds no language-model run"):
        train(resume=tmp_path)
    run = tmp_path / "run"
    train(LMConfig(run_dir=str(run), **TINY), stop_after=1)  # save_every 3: the stop wrote the only checkpoint
    weights = run / "checkpoints" / "last" / "model" / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # one flipped bit in the weights
    with pytest.raises(CheckpointError, match=r"is damaged: model/model.safetensors do not match"):
        train(resume=run)
    weights.write_bytes(good)
    (run / "checkpoints" / "last" / "state.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"is damaged: state.pt do not match"):
        train(resume=run)
    with pytest.raises(ConfigError, match="a resumed run keeps its own configuration"):
        train(LMConfig(), resume=run)
