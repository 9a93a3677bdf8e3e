"""Each health rule driven with synthetic metrics: threshold, patience, once per episode."""

from __future__ import annotations

import math

import pytest

from ppokit.config import DiagnosticsConfig
from ppokit.diagnostics import Diagnostics, in_annealing_tail

HEALTHY = {
    "approx_kl": 0.01,
    "clip_fraction": 0.1,
    "explained_variance": 0.8,
    "entropy": 0.6,
    "grad_norm": 1.0,
    "loss": 0.1,
    "obs_rms": 1.0,
}


def feed(diag: Diagnostics, rows: list[dict[str, float]], progress: float = 0.5, tail: bool = False) -> list[str]:
    fired: list[str] = []
    for i, row in enumerate(rows, start=1):
        fired += diag.observe(i, {**HEALTHY, **row}, progress, tail)
    return fired


@pytest.mark.parametrize(
    ("rule", "metric", "bad", "patience"),
    [
        ("kl_high", "approx_kl", 0.2, 2),
        ("clip_fraction_low", "clip_fraction", 0.0, 10),
        ("clip_fraction_high", "clip_fraction", 0.6, 10),
        ("value_broken", "explained_variance", -0.5, 5),
        ("grad_norm_exploding", "grad_norm", 500.0, 2),
        ("non_finite", "loss", math.nan, 1),
        ("obs_scale_high", "obs_rms", 500.0, 1),
    ],
)
def test_rule_fires_after_patience_once_per_episode(rule: str, metric: str, bad: float, patience: int) -> None:
    diag = Diagnostics(DiagnosticsConfig())
    assert feed(diag, [{}] * 3) == []
    # One update short of the patience: silent (unless the patience is 1).
    short = feed(diag, [{metric: bad}] * (patience - 1) + [{}])
    assert short == []
    # A long episode warns exactly once, at the update where the patience is reached.
    fired = feed(diag, [{metric: bad}] * (patience + 5))
    assert len(fired) == 1
    assert f"update {patience}:" in fired[0]
    # Cleared, then back: a second episode, a second warning.
    fired = feed(diag, [{}] + [{metric: bad}] * patience)
    assert len(fired) == 1
    summary = diag.summary()["rules"][rule]
    assert summary["warnings"] == 2
    assert summary["advice"] and summary["episodes"][0]["first_update"] == 1
    assert diag.summary()["total_warnings"] == 2


def test_value_rule_ignores_nearly_constant_targets() -> None:
    diag = Diagnostics(DiagnosticsConfig())
    solved = {"explained_variance": -1.0, "value_target_mean": 49.0, "value_target_std": 0.5}
    assert feed(diag, [solved] * 10) == []
    varied = {"explained_variance": -1.0, "value_target_mean": 20.0, "value_target_std": 8.0}
    assert len(feed(diag, [varied] * 10)) == 1


def test_value_rule_waits_for_the_warmup() -> None:
    diag = Diagnostics(DiagnosticsConfig())
    assert feed(diag, [{"explained_variance": -0.5}] * 10, progress=0.05) == []
    assert len(feed(diag, [{"explained_variance": -0.5}] * 10, progress=0.2)) == 1


def test_entropy_collapse_only_early_and_relative_to_start() -> None:
    diag = Diagnostics(DiagnosticsConfig())
    assert diag.observe(1, {**HEALTHY, "entropy": 0.69}, 0.01, False) == []
    fired = diag.observe(2, {**HEALTHY, "entropy": 0.05}, 0.1, False)
    assert len(fired) == 1 and "raise ent_coef" in fired[0]
    late = Diagnostics(DiagnosticsConfig())
    late.observe(1, {**HEALTHY, "entropy": 0.69}, 0.01, False)
    assert late.observe(2, {**HEALTHY, "entropy": 0.05}, 0.9, False) == []  # converging late is fine


def test_update_size_rules_are_skipped_in_the_annealing_tail() -> None:
    diag = Diagnostics(DiagnosticsConfig())
    assert feed(diag, [{"clip_fraction": 0.0, "approx_kl": 0.5}] * 20, tail=True) == []
    assert in_annealing_tail(lr=0.1, lr0=1.0, clip=0.2, clip0=0.2)
    assert in_annealing_tail(lr=1.0, lr0=1.0, clip=0.01, clip0=0.2)
    assert not in_annealing_tail(lr=0.5, lr0=1.0, clip=0.2, clip0=0.2)


def test_thresholds_and_patience_are_configurable() -> None:
    diag = Diagnostics(DiagnosticsConfig(kl_max=0.5, kl_patience=1))
    assert feed(diag, [{"approx_kl": 0.2}] * 5) == []
    assert len(feed(diag, [{"approx_kl": 0.6}])) == 1


def test_disabled_never_warns() -> None:
    diag = Diagnostics(DiagnosticsConfig(health_checks=False))
    assert feed(diag, [{"approx_kl": 1.0, "loss": math.inf}] * 10) == []


def test_undefined_metric_is_not_a_violation() -> None:
    diag = Diagnostics(DiagnosticsConfig())
    assert feed(diag, [{"explained_variance": math.nan}] * 10) == []


def test_state_round_trip_continues_streaks() -> None:
    a = Diagnostics(DiagnosticsConfig())
    feed(a, [{"approx_kl": 0.2}])
    b = Diagnostics(DiagnosticsConfig())
    b.load_state_dict(a.state_dict())
    assert len(b.observe(2, {**HEALTHY, "approx_kl": 0.2}, 0.5, False)) == 1  # patience 2 reached across


def test_summary_names_each_rules_metric_and_threshold() -> None:
    rules = Diagnostics(DiagnosticsConfig(kl_max=0.07)).summary()["rules"]
    assert rules["kl_high"]["metric"] == "approx_kl" and rules["kl_high"]["threshold"] == 0.07
    assert rules["entropy_collapse"]["threshold"] is None  # a ratio to the start, not an entropy


def test_a_loss_never_logged_is_not_non_finite() -> None:
    diag = Diagnostics(DiagnosticsConfig())
    assert diag.observe(1, {"approx_kl": 0.01}, 0.5, False) == []
    assert len(diag.observe(2, {"approx_kl": 0.01, "loss": math.nan}, 0.5, False)) == 1


def _returns(diag: Diagnostics, means: list[float], std: float = 5.0) -> list[str]:
    return feed(diag, [{"episode_return_mean": m, "episode_return_std": std} for m in means])


def test_return_rule_fires_when_the_return_stays_below_its_start() -> None:
    # Start 20 +- 5: 10 is two spreads below; three updates there warn once (patience 3).
    fired = _returns(Diagnostics(DiagnosticsConfig()), [20.0, 10.0, 10.0, 10.0, 10.0])
    assert len(fired) == 1 and "update 4:" in fired[0] and "sign of the advantages" in fired[0]
    # A dip of under one spread, or one that recovers before the patience, is no warning.
    assert _returns(Diagnostics(DiagnosticsConfig()), [20.0, 16.0, 16.0, 16.0, 16.0]) == []
    assert _returns(Diagnostics(DiagnosticsConfig()), [20.0, 10.0, 10.0, 30.0, 10.0, 10.0]) == []
    # An update without a finished episode (NaN) breaks the streak, as any undefined metric.
    assert _returns(Diagnostics(DiagnosticsConfig()), [20.0, 10.0, 10.0, math.nan, 10.0, 10.0]) == []


def test_return_rule_spread_has_a_floor_when_every_first_episode_scores_the_same() -> None:
    # Acrobot's untrained policy times out at -500 every episode: spread 0, floored at 5% (25).
    assert _returns(Diagnostics(DiagnosticsConfig()), [-500.0] * 8, std=0.0) == []
    assert len(_returns(Diagnostics(DiagnosticsConfig(return_drop_patience=1)), [-500.0, -530.0], std=0.0)) == 1
    assert _returns(Diagnostics(DiagnosticsConfig(return_drop_patience=1)), [-500.0, -520.0], std=0.0) == []


def test_return_rule_start_survives_a_checkpoint_and_old_checkpoints_load() -> None:
    a = Diagnostics(DiagnosticsConfig())
    _returns(a, [20.0, 10.0])
    b = Diagnostics(DiagnosticsConfig())
    b.load_state_dict(a.state_dict())
    assert b.initial_return == (20.0, 5.0)
    assert len(feed(b, [{"episode_return_mean": 10.0}] * 2)) == 1  # the streak of 1 goes on to 3
    old = {k: v for k, v in a.state_dict().items() if k != "initial_return"}
    c = Diagnostics(DiagnosticsConfig())
    c.load_state_dict(old)
    assert c.initial_return is None
