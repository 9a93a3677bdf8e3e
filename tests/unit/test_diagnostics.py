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
    "value_step": 0.01,
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
        ("critic_frozen", "value_step", 1e-7, 3),
        ("grad_norm_exploding", "grad_norm", 5000.0, 2),
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


def test_value_rule_spares_a_critic_that_tracks_its_targets() -> None:
    # A slow critic (values of the wrong size, but following the targets) is not broken.
    lagging = {"explained_variance": -0.5, "value_corr": 0.5}
    assert feed(Diagnostics(DiagnosticsConfig()), [lagging] * 10) == []
    assert len(feed(Diagnostics(DiagnosticsConfig()), [{**lagging, "value_corr": 0.0}] * 10)) == 1


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


def test_entropy_collapse_spares_a_policy_that_got_better() -> None:
    # A bandit solved early: deterministic at 5% of training, its return well above the start.
    diag = Diagnostics(DiagnosticsConfig())
    start = {"entropy": 1.6, "episodes": 10.0, "episode_return_mean": 0.5, "episode_return_std": 0.2}
    assert diag.observe(1, {**HEALTHY, **start}, 0.01, False) == []
    solved = {"entropy": 0.05, "episodes": 10.0, "episode_return_mean": 0.9, "episode_return_std": 0.05}
    assert diag.observe(2, {**HEALTHY, **solved}, 0.05, False) == []
    stuck = {**solved, "episode_return_mean": 0.45}
    assert len(diag.observe(3, {**HEALTHY, **stuck}, 0.06, False)) == 1  # deterministic, no better: collapse


def test_update_size_rules_are_skipped_in_the_annealing_tail() -> None:
    diag = Diagnostics(DiagnosticsConfig())
    assert feed(diag, [{"clip_fraction": 0.0, "approx_kl": 0.5, "value_step": 0.0}] * 20, tail=True) == []
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


def _returns(diag: Diagnostics, updates: list[tuple[float, float, float]]) -> list[str]:
    """Feed updates of (episodes, mean return, std of the returns)."""
    rows = [{"episodes": n, "episode_return_mean": m if n else math.nan, "episode_return_std": sd if n else math.nan}
            for n, m, sd in updates]  # fmt: skip
    return feed(diag, rows)


START = (10.0, 20.0, 5.0)  # ten episodes of 20 +- 5: the start is ready after one update


def test_return_rule_fires_when_the_return_stays_below_its_start() -> None:
    # 10 is two spreads below 20, and 4.5 standard errors: three updates there warn once.
    fired = _returns(Diagnostics(DiagnosticsConfig()), [START] + [(10.0, 10.0, 5.0)] * 4)
    assert len(fired) == 1 and "update 4:" in fired[0] and "sign of the advantages" in fired[0]
    # A dip of under half a spread, or one that recovers before the patience, is no warning.
    assert _returns(Diagnostics(DiagnosticsConfig()), [START] + [(10.0, 18.0, 5.0)] * 6) == []
    assert _returns(Diagnostics(DiagnosticsConfig()), [START, *[(10.0, 10.0, 5.0)] * 2, (10.0, 30.0, 5.0),
                                                       *[(10.0, 10.0, 5.0)] * 2]) == []  # fmt: skip
    # An update without a finished episode breaks the streak, as any undefined metric.
    assert _returns(Diagnostics(DiagnosticsConfig()), [START, *[(10.0, 10.0, 5.0)] * 2, (0.0, 0.0, 0.0),
                                                       *[(10.0, 10.0, 5.0)] * 2]) == []  # fmt: skip


def test_return_rule_needs_evidence_not_noise() -> None:
    # One episode per update 1.6 spreads below: 1.5 standard errors, noise for a random policy.
    assert _returns(Diagnostics(DiagnosticsConfig()), [START] + [(1.0, 12.0, 0.0)] * 20) == []


def test_return_rule_start_pools_the_first_ten_episodes() -> None:
    diag = Diagnostics(DiagnosticsConfig())
    _returns(diag, [(4.0, 10.0, 0.0), (4.0, 20.0, 0.0)])
    assert not diag.return_start.ready  # 8 episodes: still pooling, no check yet
    _returns(diag, [(4.0, 30.0, 0.0)])
    start = diag.return_start
    assert start.ready and start.count == 12 and start.mean == pytest.approx(20.0)
    assert start.spread == pytest.approx(math.sqrt(200 / 3))  # the population std of 4 x 10, 4 x 20, 4 x 30


def test_return_rule_spread_has_a_floor_when_every_first_episode_scores_the_same() -> None:
    # Acrobot's untrained policy times out at -500 every episode: spread 0, floored at 5% (25).
    timeouts = (10.0, -500.0, 0.0)
    assert _returns(Diagnostics(DiagnosticsConfig()), [timeouts] * 8) == []
    once = DiagnosticsConfig(return_drop_patience=1)
    assert len(_returns(Diagnostics(once), [timeouts, (10.0, -530.0, 0.0)])) == 1  # 1.2 spreads, 3.8 errors
    assert _returns(Diagnostics(once), [timeouts, (10.0, -510.0, 0.0)]) == []  # 0.4 spreads


def test_return_rule_start_survives_a_checkpoint_and_old_checkpoints_load() -> None:
    a = Diagnostics(DiagnosticsConfig())
    _returns(a, [START, (10.0, 10.0, 5.0)])
    b = Diagnostics(DiagnosticsConfig())
    b.load_state_dict(a.state_dict())
    assert (b.return_start.count, b.return_start.mean, b.return_start.spread) == (10.0, 20.0, 5.0)
    assert len(_returns(b, [(10.0, 10.0, 5.0)] * 2)) == 1  # the streak of 1 goes on to 3
    old = {k: v for k, v in a.state_dict().items() if k != "return_start"}
    c = Diagnostics(DiagnosticsConfig())
    c.load_state_dict(old)
    assert c.return_start.count == 0
