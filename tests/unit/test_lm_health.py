"""The LM health rules driven with synthetic per-step metrics: threshold, patience, once per
episode, which methods each applies to; and a real tiny run that stays quiet."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from ppokit.config import DiagnosticsConfig
from ppokit.diagnostics import Diagnostics
from ppokit.lm.config import LMConfig, LMMethodName
from ppokit.lm.health import LMHealth, LMHealthConfig, lm_rules

HEALTHY = {
    "reward_mean": 0.4,
    "success": 0.3,
    "kl_ref": 0.05,
    "kl_ref_seq": 0.25,
    "completion_length_mean": 5.0,
    "truncated_fraction": 0.05,
    "entropy": 0.8,
    "zero_std_groups": 0.1,
    "loss": 0.01,
}


def feed(health: LMHealth, rows: list[dict[str, float]], start: int = 1) -> list[str]:
    fired: list[str] = []
    for step, row in enumerate(rows, start=start):
        fired += health.observe(step, {**HEALTHY, **row})
    return fired


@pytest.mark.parametrize(
    ("rule", "metric", "bad", "patience"),
    [
        ("kl_ref_high", "kl_ref_seq", 50.0, 5),
        ("kl_ref_negative", "kl_ref_seq", -1.0, 3),
        ("length_collapse", "completion_length_mean", 1.0, 5),
        ("length_at_limit", "truncated_fraction", 1.0, 5),
        ("zero_std_groups", "zero_std_groups", 1.0, 5),
        ("non_finite", "loss", math.nan, 1),
    ],
)
def test_rule_fires_after_patience_once_per_episode(rule: str, metric: str, bad: float, patience: int) -> None:
    health = LMHealth(total_steps=1000, critic=False)
    assert feed(health, [{}] * 3) == []
    assert feed(health, [{metric: bad}] * (patience - 1) + [{}], start=4) == []  # one step short: silent
    fired = feed(health, [{metric: bad}] * (patience + 5), start=10)
    assert len(fired) == 1
    assert fired[0].startswith(f"step {10 + patience - 1}: ")
    assert f"({metric} = " in fired[0]
    assert len(feed(health, [{}] + [{metric: bad}] * patience, start=100)) == 1  # cleared, back: warns again
    summary = health.summary()
    info = summary["rules"][rule]
    assert info["warnings"] == 2 and summary["total_warnings"] == 2
    assert info["episodes"][0]["first_update"] == 10 and info["episodes"][0]["last_update"] == 10 + patience + 4
    assert info["updates_affected"] == 2 * patience + 5
    assert info["advice"] and info["metric"] == metric


def test_thresholds_are_configurable_and_in_the_summary() -> None:
    config = LMHealthConfig(length_min=3.0, length_patience=1, truncated_max=0.5)
    health = LMHealth(10, critic=False, config=config)
    assert len(feed(health, [{"completion_length_mean": 2.5}])) == 1
    assert health.summary()["rules"]["length_collapse"]["threshold"] == 3.0
    assert health.summary()["rules"]["length_at_limit"]["threshold"] == 0.5


def test_kl_rising_needs_a_run_of_rises_after_the_start() -> None:
    rising = [{"kl_ref": 0.01 * (i + 1)} for i in range(30)]
    early = LMHealth(total_steps=1000, critic=False)
    assert feed(early, rising) == []  # the KL climbs from 0 in the first quarter by design
    late = LMHealth(total_steps=40, critic=False)
    fired = feed(late, rising)
    assert len(fired) == 1 and "kl_coef" in fired[0]
    # From step 10 (a quarter of 40) on, each step rises: the 10th rise warns, at step 19.
    assert fired[0].startswith("step 19: ")
    plateau = LMHealth(total_steps=40, critic=False)
    noisy = [{"kl_ref": 0.5 + (0.01 if i % 3 == 0 else -0.01)} for i in range(40)]
    assert feed(plateau, noisy) == []


def test_entropy_collapse_only_early_and_relative_to_the_first_step() -> None:
    health = LMHealth(total_steps=100, critic=False)
    assert feed(health, [{"entropy": 1.0}, {"entropy": 0.05}]) == []  # patience 2
    fired = feed(health, [{"entropy": 0.05}], start=3)
    assert len(fired) == 1 and "temperature" in fired[0]
    late = LMHealth(total_steps=100, critic=False)
    feed(late, [{"entropy": 1.0}])
    assert feed(late, [{"entropy": 0.05}] * 10, start=50) == []  # converging late is fine


def test_zero_std_groups_is_a_group_method_rule_only() -> None:
    group = {r.name for r in lm_rules(critic=False)}
    ppo = {r.name for r in lm_rules(critic=True)}
    assert "zero_std_groups" in group and "zero_std_groups" not in ppo
    assert group - {"zero_std_groups"} == ppo
    assert {r.name for r in lm_rules()} == group
    health = LMHealth(total_steps=100, critic=True)
    assert feed(health, [{"zero_std_groups": 1.0}] * 10) == []


def test_missing_metrics_and_disabled_checks_never_warn() -> None:
    health = LMHealth(total_steps=10, critic=False)
    for step in range(1, 11):  # a trainer that does not log kl_ref_seq, entropy or loss
        assert health.observe(step, {"completion_length_mean": 5.0}) == []
    off = LMHealth(10, critic=False, config=LMHealthConfig(health_checks=False))
    assert feed(off, [{"loss": math.inf, "truncated_fraction": 1.0}] * 10) == []


def test_summary_has_the_classic_format_and_writes(tmp_path: Path) -> None:
    health = LMHealth(total_steps=10, critic=False)
    feed(health, [{"truncated_fraction": 1.0}] * 6)
    classic = Diagnostics(DiagnosticsConfig()).summary()
    summary = health.summary()
    assert summary.keys() == classic.keys()
    assert summary["rules"]["length_at_limit"].keys() == classic["rules"]["kl_high"].keys()
    path = health.write(tmp_path / "diagnostics.json")
    assert json.loads(path.read_text()) == summary


def test_state_round_trip_continues_streaks() -> None:
    a = LMHealth(total_steps=100, critic=False)
    feed(a, [{"kl_ref_seq": -1.0}] * 2)
    b = LMHealth(total_steps=100, critic=False)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert len(feed(b, [{"kl_ref_seq": -1.0}], start=3)) == 1  # patience 3 reached across


def test_the_rules_import_no_transformers() -> None:
    code = "import sys, ppokit.lm.health, ppokit.diagnostics; assert 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def _warned(config: LMConfig) -> set[str]:
    """The rules that warned over a real run's steps."""
    pytest.importorskip("transformers")
    from ppokit.lm.trainer import train

    result = train(config)
    health = LMHealth(config.steps, critic=config.method == "ppo")
    for step, metrics in enumerate(result.metrics, start=1):
        health.observe(step, metrics)
    return {name for name, info in health.summary()["rules"].items() if info["warnings"]}


@pytest.mark.parametrize("method", ["grpo", "ppo"])
def test_a_healthy_run_stays_quiet(method: LMMethodName) -> None:
    config = LMConfig(method=method, steps=20, prompts_per_step=8, group_size=4, minibatch_size=32, eval_prompts=8)
    assert _warned(config) == set()


def test_a_reward_for_empty_answers_collapses_the_length(tmp_path: Path) -> None:
    """Rewarding the EOS alone: the completions collapse to it."""
    (tmp_path / "prompts.jsonl").write_text("".join(f'{{"prompt": "{p}="}}\n' for p in ("12", "34", "56")))
    (tmp_path / "reward.py").write_text(
        "def score(prompts, completions, **columns):\n    return [float(c == '') for c in completions]\n"
    )
    config = LMConfig(prompts=str(tmp_path / "prompts.jsonl"), reward=f"{tmp_path / 'reward.py'}:score",
                      sft_steps=0, seed=2, steps=30, prompts_per_step=8, group_size=4, minibatch_size=32,
                      eval_prompts=8, learning_rate=3e-3, max_new_tokens=8)  # fmt: skip
    assert "length_collapse" in _warned(config)
